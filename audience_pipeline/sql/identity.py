"""Identity on the SQL path: connected components in DuckDB, SPEC's rule only where a limit bites.

Messages are ordered and their identifiers numbered by `identity.prepare` (the graph input both
resolvers share). The identifier graph (each message links its first identifier to every other)
is then labelled inside DuckDB by iterated min-label propagation with pointer jumping: every round
each node takes the smallest label among itself and its neighbours, then the label of its label,
until nothing changes. A component that respects every limit as a whole is one profile (every
profile the rule could build inside it respects them too), whose id comes from the first
identifier of its earliest message. Only components where some limit bites go through the
sequential rule (`identity.sequential.link_in_order`), in Python, on just their messages.
"""

from __future__ import annotations

import logging

import duckdb
import polars as pl

from audience_pipeline.identity.graph import sequential_components as sequential_rule
from audience_pipeline.identity.prepare import prepare
from audience_pipeline.identity.result import (
    IDENTITIES_SCHEMA,
    MESSAGE_PROFILES_SCHEMA,
    IdentityResult,
    empty_result,
)
from audience_pipeline.spec.models import SpaceConfig

log = logging.getLogger(__name__)

MAX_ROUNDS = 200

# Fixed statements: table names are ours and no value enters them as text.
_SETUP = [
    "CREATE OR REPLACE TEMP TABLE _id_edges AS "
    "SELECT DISTINCT a, b FROM (SELECT m.first AS a, l.node AS b FROM _id_links l "
    "JOIN _id_messages m ON m.rank = l.rank UNION ALL "
    "SELECT l.node AS a, m.first AS b FROM _id_links l JOIN _id_messages m ON m.rank = l.rank) "
    "WHERE a <> b",
    "CREATE OR REPLACE TEMP TABLE _id_label AS SELECT node, node AS label FROM _id_nodes",
]
_ROUND = (
    "CREATE OR REPLACE TEMP TABLE _id_next AS "
    "WITH hooked AS ("
    "  SELECT l.node, LEAST(l.label, COALESCE(MIN(n.label), l.label)) AS label"
    "  FROM _id_label l LEFT JOIN _id_edges e ON e.a = l.node"
    "  LEFT JOIN _id_label n ON n.node = e.b GROUP BY l.node, l.label)"
    "SELECT h.node, j.label FROM hooked h JOIN hooked j ON j.node = h.label"
)
_CHANGED = (
    "SELECT COUNT(*) FROM _id_next x JOIN _id_label l ON l.node = x.node WHERE x.label <> l.label"
)
_BITTEN = (
    "SELECT DISTINCT l.label AS comp FROM _id_nodes n JOIN _id_label l ON l.node = n.node "
    'JOIN _id_limits t ON t.trank = n.trank GROUP BY l.label, n.trank, t."limit" '
    'HAVING COUNT(*) > t."limit"'
)
_CREATE_BITTEN = "CREATE OR REPLACE TEMP TABLE _id_bitten AS " + _BITTEN
# The graph input, copied from the registered frame `_id_frame` into DuckDB's own tables.
_COPY_MESSAGES = "CREATE OR REPLACE TEMP TABLE _id_messages AS SELECT * FROM _id_frame"
_COPY_LINKS = "CREATE OR REPLACE TEMP TABLE _id_links AS SELECT * FROM _id_frame"
_COPY_NODES = "CREATE OR REPLACE TEMP TABLE _id_nodes AS SELECT * FROM _id_frame"
_COPY_LIMITS = "CREATE OR REPLACE TEMP TABLE _id_limits AS SELECT * FROM _id_frame"
_WHOLE = (
    "WITH msgs AS (SELECT m.rank, m.seq, m.first, l.label AS comp FROM _id_messages m "
    "  JOIN _id_label l ON l.node = m.first WHERE l.label NOT IN (SELECT comp FROM _id_bitten)), "
    "creators AS (SELECT comp, arg_min(first, rank) AS first FROM msgs GROUP BY comp), "
    "pids AS (SELECT c.comp, 'p_' || substr(sha256(n.id_type || ':' || n.id_value), 1, 20) "
    "  AS profile_id FROM creators c JOIN _id_nodes n ON n.node = c.first) "
)
_WHOLE_MESSAGES = _WHOLE + "SELECT m.seq, p.profile_id FROM msgs m JOIN pids p ON p.comp = m.comp"
_WHOLE_IDENTITIES = (
    _WHOLE + "SELECT p.profile_id, n.id_type, n.id_value FROM _id_nodes n "
    "JOIN _id_label l ON l.node = n.node JOIN pids p ON p.comp = l.label"
)
_BITTEN_MESSAGES = (
    "SELECT m.rank, m.seq, m.first FROM _id_messages m JOIN _id_label l ON l.node = m.first "
    "WHERE l.label IN (SELECT comp FROM _id_bitten) ORDER BY m.rank"
)


def _label_components(con: duckdb.DuckDBPyConnection) -> int:
    for statement in _SETUP:
        con.execute(statement)
    for rounds in range(1, MAX_ROUNDS + 1):
        con.execute(_ROUND)
        changed = con.sql(_CHANGED).fetchall()[0][0]
        con.execute("CREATE OR REPLACE TEMP TABLE _id_label AS SELECT * FROM _id_next")
        if not changed:
            return rounds
    msg = f"identity components did not converge in {MAX_ROUNDS} rounds"
    raise RuntimeError(msg)


def resolve_identities_sql(
    con: duckdb.DuckDBPyConnection, messages: pl.DataFrame, space: SpaceConfig
) -> IdentityResult:
    """Resolve messages to profiles with the components computed in DuckDB.

    Args:
        con: a DuckDB connection (temporary tables ``_id_*`` are created in it).
        messages: cut at as-of; ``seq``, ``message_id``, ``type``, ``timestamp``, ``ids``,
            ``previous_id`` (as for `identity.resolve_identities`).
        space: identifier types, priorities and limits.

    Returns:
        The same result as `identity.resolve_identities`.
    """
    if messages.height == 0:
        return empty_result()
    prepared = prepare(messages, space)
    for frame, statement in ((prepared.messages, _COPY_MESSAGES), (prepared.links, _COPY_LINKS),
                             (prepared.nodes, _COPY_NODES), (prepared.limits, _COPY_LIMITS)):  # fmt: skip
        con.register("_id_frame", frame.to_arrow())
        con.execute(statement)
        con.unregister("_id_frame")
    rounds = _label_components(con)
    con.execute(_CREATE_BITTEN)
    message_profiles = con.sql(_WHOLE_MESSAGES).pl()
    identities = con.sql(_WHOLE_IDENTITIES).pl()
    n_profiles = identities["profile_id"].n_unique()
    bitten_messages = con.sql(_BITTEN_MESSAGES).pl()
    n_bitten = con.sql("SELECT COUNT(*) FROM _id_bitten").fetchall()[0][0]
    components = con.sql("SELECT COUNT(DISTINCT label) FROM _id_label").fetchall()[0][0]
    if bitten_messages.height:
        seq_mp, seq_id, seq_profiles = sequential_rule(prepared, bitten_messages, space)
        message_profiles = pl.concat([message_profiles.cast(MESSAGE_PROFILES_SCHEMA), seq_mp])
        identities = pl.concat([identities.cast(IDENTITIES_SCHEMA), seq_id])
        n_profiles += seq_profiles
    stats = {
        "profiles": n_profiles,
        "components": components,
        "sequential_components": n_bitten,
        "sequential_messages": bitten_messages.height,
        "sql_rounds": rounds,
    }
    log.info("identity (sql): %s", stats)
    return IdentityResult(
        message_profiles=message_profiles.cast(MESSAGE_PROFILES_SCHEMA).sort("seq"),
        identities=identities.cast(IDENTITIES_SCHEMA).sort(IDENTITIES_SCHEMA.names()),
        stats=stats,
    )
