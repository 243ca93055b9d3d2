"""Identity inside PostgreSQL, as the DuckDB engine does it (see `sql.identity`).

The graph input (`identity.prepare`) is loaded into temporary tables; components are labelled in
PostgreSQL by min-label propagation with pointer jumping, each round one statement driven from
here until nothing changes; a component that respects every limit is one profile whose id is
computed in SQL; only the messages of components where a limit bites are read back and go
through SPEC's sequential rule. The message -> profile and identity tables stay in PostgreSQL
(``_ap_profiles_of``, ``_ap_identities``) for the rest of the computation.
"""

from __future__ import annotations

import logging

import polars as pl
import psycopg

from audience_pipeline.identity.graph import sequential_components as sequential_rule
from audience_pipeline.identity.prepare import prepare
from audience_pipeline.identity.result import (
    IDENTITIES_SCHEMA,
    MESSAGE_PROFILES_SCHEMA,
    IdentityResult,
)
from audience_pipeline.spec.models import SpaceConfig
from audience_pipeline.sql.identity import MAX_ROUNDS
from audience_pipeline.sql.postgres_tables import copy_frame, fetch, load_temp

log = logging.getLogger(__name__)

# Fixed statements over our own temporary tables; no value enters them as text.
_SETUP = (
    "DROP TABLE IF EXISTS _id_edges, _id_label, _id_next",
    "CREATE TEMP TABLE _id_edges AS SELECT DISTINCT a, b FROM ("
    "SELECT m.first AS a, l.node AS b FROM _id_links l JOIN _id_messages m ON m.rank = l.rank "
    "UNION ALL SELECT l.node AS a, m.first AS b FROM _id_links l "
    "JOIN _id_messages m ON m.rank = l.rank) e WHERE a <> b",
    "CREATE INDEX ON _id_edges (a)",
    "CREATE TEMP TABLE _id_label AS SELECT node, node AS label FROM _id_nodes",
    "ANALYZE _id_edges",
)
_ROUND = (
    "CREATE TEMP TABLE _id_next AS "
    "WITH hooked AS ("
    "  SELECT l.node, LEAST(l.label, COALESCE(MIN(n.label), l.label)) AS label"
    "  FROM _id_label l LEFT JOIN _id_edges e ON e.a = l.node"
    "  LEFT JOIN _id_label n ON n.node = e.b GROUP BY l.node, l.label)"
    "SELECT h.node, j.label FROM hooked h JOIN hooked j ON j.node = h.label"
)
_CHANGED = (
    "SELECT COUNT(*) FROM _id_next x JOIN _id_label l ON l.node = x.node WHERE x.label <> l.label"
)
_SWAP = ("DROP TABLE _id_label", "ALTER TABLE _id_next RENAME TO _id_label")
_BITTEN = (
    "CREATE TEMP TABLE _id_bitten AS SELECT DISTINCT l.label AS comp FROM _id_nodes n "
    "JOIN _id_label l ON l.node = n.node JOIN _id_limits t ON t.trank = n.trank "
    'GROUP BY l.label, n.trank, t."limit" HAVING COUNT(*) > t."limit"'
)
# The profile id of a whole component: 'p_' + the first 20 hex digits of sha256 of the first
# identifier of its earliest message (`identity.result.profile_id`).
_PIDS = (
    "CREATE TEMP TABLE _id_pids AS "
    "WITH msgs AS (SELECT m.rank, m.first, l.label AS comp FROM _id_messages m "
    "  JOIN _id_label l ON l.node = m.first WHERE l.label NOT IN (SELECT comp FROM _id_bitten)),"
    " creators AS (SELECT DISTINCT ON (comp) comp, first FROM msgs ORDER BY comp, rank) "
    "SELECT c.comp, 'p_' || substr(encode(sha256(convert_to(n.id_type || ':' || n.id_value, "
    "'UTF8')), 'hex'), 1, 20) AS profile_id FROM creators c JOIN _id_nodes n ON n.node = c.first"
)
_MESSAGES = (
    "CREATE TEMP TABLE _ap_profiles_of AS SELECT m.seq, p.profile_id FROM _id_messages m "
    "JOIN _id_label l ON l.node = m.first JOIN _id_pids p ON p.comp = l.label"
)
_IDENTITIES = (
    "CREATE TEMP TABLE _ap_identities AS SELECT p.profile_id, n.id_type, n.id_value "
    "FROM _id_nodes n JOIN _id_label l ON l.node = n.node JOIN _id_pids p ON p.comp = l.label"
)
_BITTEN_MESSAGES = (
    "SELECT m.rank, m.seq, m.first FROM _id_messages m JOIN _id_label l ON l.node = m.first "
    "WHERE l.label IN (SELECT comp FROM _id_bitten) ORDER BY m.rank"
)


def _label_components(cur: psycopg.Cursor) -> int:
    for statement in _SETUP:
        cur.execute(statement)
    for rounds in range(1, MAX_ROUNDS + 1):
        cur.execute(_ROUND)
        changed = _count(cur, _CHANGED)
        for statement in _SWAP:
            cur.execute(statement)
        if not changed:
            return rounds
    msg = f"identity components did not converge in {MAX_ROUNDS} rounds"
    raise RuntimeError(msg)


def _count(cur: psycopg.Cursor, query: str) -> int:
    row = cur.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def resolve_identities_pg(
    cur: psycopg.Cursor, messages: pl.DataFrame, space: SpaceConfig
) -> IdentityResult:
    """Resolve messages to profiles inside PostgreSQL (temporary tables of `cur`'s session).

    Args:
        cur: a cursor; leaves ``_ap_profiles_of`` (seq, profile_id) and ``_ap_identities``
            (profile_id, id_type, id_value) as temporary tables.
        messages: cut at as-of (as for `identity.resolve_identities`).
        space: identifier types, priorities and limits.

    Returns:
        The same result as `identity.resolve_identities`.
    """
    for name in ("_ap_profiles_of", "_ap_identities", "_id_pids", "_id_bitten"):
        cur.execute(f"DROP TABLE IF EXISTS {name}")
    if messages.height == 0:
        load_temp(cur, "_ap_profiles_of", pl.DataFrame(schema=MESSAGE_PROFILES_SCHEMA))
        load_temp(cur, "_ap_identities", pl.DataFrame(schema=IDENTITIES_SCHEMA))
        stats = {"profiles": 0, "components": 0, "sequential_components": 0,
                 "sequential_messages": 0, "sql_rounds": 0}  # fmt: skip
        return IdentityResult(
            pl.DataFrame(schema=MESSAGE_PROFILES_SCHEMA),
            pl.DataFrame(schema=IDENTITIES_SCHEMA),
            stats,
        )
    prepared = prepare(messages, space)
    for name, frame in (("_id_messages", prepared.messages), ("_id_links", prepared.links),
                        ("_id_nodes", prepared.nodes), ("_id_limits", prepared.limits)):  # fmt: skip
        load_temp(cur, name, frame)
    rounds = _label_components(cur)
    for statement in (_BITTEN, _PIDS, _MESSAGES, _IDENTITIES):
        cur.execute(statement)
    bitten_messages = fetch(cur, _BITTEN_MESSAGES)
    n_profiles = _count(cur, "SELECT COUNT(*) FROM _id_pids")
    if bitten_messages.height:
        seq_mp, seq_id, seq_profiles = sequential_rule(prepared, bitten_messages, space)
        copy_frame(cur, psycopg.sql.Identifier("_ap_profiles_of"), seq_mp)
        copy_frame(cur, psycopg.sql.Identifier("_ap_identities"), seq_id)
        n_profiles += seq_profiles
    stats = {
        "profiles": n_profiles,
        "components": _count(cur, "SELECT COUNT(DISTINCT label) FROM _id_label"),
        "sequential_components": _count(cur, "SELECT COUNT(*) FROM _id_bitten"),
        "sequential_messages": bitten_messages.height,
        "sql_rounds": rounds,
    }
    log.info("identity (postgres): %s", stats)
    message_profiles = fetch(cur, "SELECT seq, profile_id FROM _ap_profiles_of ORDER BY seq")
    identities = fetch(
        cur, "SELECT profile_id, id_type, id_value FROM _ap_identities ORDER BY 1, 2, 3"
    )
    return IdentityResult(
        message_profiles=message_profiles.cast(MESSAGE_PROFILES_SCHEMA),
        identities=identities.cast(IDENTITIES_SCHEMA).sort(IDENTITIES_SCHEMA.names()),
        stats=stats,
    )
