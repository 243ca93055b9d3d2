"""Identity on the SQL path: connected components in DuckDB, SPEC's rule only where a limit bites.

The graph input (messages in processing order, identifiers numbered) is built inside DuckDB from
the identity columns (`sql.identity_graph`: what `identity.prepare` builds in Polars). The
identifier graph (each message links its first identifier to every other) is then labelled
inside DuckDB by iterated min-label propagation with pointer jumping: every round each node takes
the smallest label among itself and its neighbours, then the label of its label, until nothing
changes. A component that respects every limit as a whole is one profile (every profile the rule
could build inside it respects them too), whose id comes from the first identifier of its
earliest message. Only components where some limit bites go through the sequential rule
(`identity.sequential.link_in_order`), in Python, on just their messages and identifiers.

The results stay in DuckDB (``_ap_profiles_of``: seq, profile_id; ``_ap_identities``), read by
the rest of the computation there; `identity_result` fetches them for the output tables.
"""

from __future__ import annotations

import logging

import duckdb
import polars as pl

from audience_pipeline.identity.graph import sequential_components as sequential_rule
from audience_pipeline.identity.prepare import Prepared
from audience_pipeline.identity.result import (
    IDENTITIES_SCHEMA,
    MESSAGE_PROFILES_SCHEMA,
    IdentityResult,
    type_ranks,
)
from audience_pipeline.spec.models import SpaceConfig
from audience_pipeline.sql.identity_graph import build_graph_input

log = logging.getLogger(__name__)

__all__ = [
    "IDENTITIES",
    "PROFILES_OF",
    "fetched",
    "identities_frame",
    "identity_result",
    "message_profiles_frame",
    "resolve_identities_sql",
]

MAX_ROUNDS = 200
PROFILES_OF = "_ap_profiles_of"
IDENTITIES = "_ap_identities"

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
_CREATE_BITTEN = (
    "CREATE OR REPLACE TEMP TABLE _id_bitten AS "
    "SELECT DISTINCT l.label AS comp FROM _id_nodes n JOIN _id_label l ON l.node = n.node "
    'JOIN _id_limits t ON t.trank = n.trank GROUP BY l.label, n.trank, t."limit" '
    'HAVING COUNT(*) > t."limit"'
)
# The profile of each component no limit bites: 'p_' + 20 hex digits of sha256 of the first
# identifier of its earliest message (`identity.result.profile_id`).
_PIDS = (
    "CREATE OR REPLACE TEMP TABLE _id_pids AS "
    "WITH creators AS (SELECT l.label AS comp, arg_min(m.first, m.rank) AS first "
    "  FROM _id_messages m JOIN _id_label l ON l.node = m.first GROUP BY l.label) "
    "SELECT c.comp, 'p_' || substr(sha256(n.id_type || ':' || n.id_value), 1, 20) AS profile_id "
    "FROM creators c JOIN _id_nodes n ON n.node = c.first "
    "WHERE c.comp NOT IN (SELECT comp FROM _id_bitten)"
)
_WHOLE_MESSAGES = (
    "CREATE OR REPLACE TEMP TABLE _ap_profiles_of AS SELECT m.seq, p.profile_id "
    "FROM _id_messages m JOIN _id_label l ON l.node = m.first JOIN _id_pids p ON p.comp = l.label"
)
_WHOLE_IDENTITIES = (
    "CREATE OR REPLACE TEMP TABLE _ap_identities AS SELECT p.profile_id, n.id_type, n.id_value "
    "FROM _id_nodes n JOIN _id_label l ON l.node = n.node JOIN _id_pids p ON p.comp = l.label"
)
_BITTEN_MESSAGES = (
    "CREATE OR REPLACE TEMP TABLE _id_bitten_messages AS "
    "SELECT m.rank, m.seq, m.first FROM _id_messages m JOIN _id_label l ON l.node = m.first "
    "WHERE l.label IN (SELECT comp FROM _id_bitten)"
)
_BITTEN_LINKS = (
    "SELECT l.rank, l.node FROM _id_links l WHERE l.rank IN (SELECT rank FROM _id_bitten_messages)"
)
_BITTEN_NODES = (
    "SELECT node, trank, id_value FROM _id_nodes WHERE node IN (SELECT node FROM _id_links "
    "WHERE rank IN (SELECT rank FROM _id_bitten_messages)) ORDER BY node"
)
_EMPTY = (
    "CREATE OR REPLACE TEMP TABLE _ap_profiles_of (seq BIGINT, profile_id VARCHAR)",
    "CREATE OR REPLACE TEMP TABLE _ap_identities "
    "(profile_id VARCHAR, id_type VARCHAR, id_value VARCHAR)",
)
_APPEND = (
    "INSERT INTO _ap_profiles_of SELECT seq, profile_id FROM _id_seq_profiles",
    "INSERT INTO _ap_identities SELECT profile_id, id_type, id_value FROM _id_seq_identities",
)
_DROP = tuple(
    f"DROP TABLE IF EXISTS {name}"  # our own fixed names
    for name in ("_id_edges", "_id_label", "_id_next", "_id_bitten", "_id_pids",
                 "_id_bitten_messages", "_id_messages", "_id_links", "_id_nodes", "_id_limits",
                 "_id_types")
)  # fmt: skip


def _label_components(con: duckdb.DuckDBPyConnection) -> int:
    for statement in _SETUP:
        con.execute(statement)
    for rounds in range(1, MAX_ROUNDS + 1):
        con.execute(_ROUND)
        changed = _count(con, _CHANGED)
        con.execute("CREATE OR REPLACE TEMP TABLE _id_label AS SELECT * FROM _id_next")
        if not changed:
            return rounds
    msg = f"identity components did not converge in {MAX_ROUNDS} rounds"
    raise RuntimeError(msg)


def _count(con: duckdb.DuckDBPyConnection, query: str) -> int:
    return int(con.sql(query).fetchall()[0][0])


def _bitten_graph(con: duckdb.DuckDBPyConnection, space: SpaceConfig) -> Prepared:
    """The graph input of the bitten components' messages alone (what the sequential rule reads:
    their messages, links and nodes), fetched from DuckDB."""
    messages = con.sql("SELECT * FROM _id_bitten_messages ORDER BY rank").pl()
    nodes = con.sql(_BITTEN_NODES).pl()
    ranks = type_ranks(space)
    return Prepared(
        messages=messages,
        links=con.sql(_BITTEN_LINKS).pl(),
        # vcode: the place of the node's value in `values` (these nodes' values only)
        nodes=nodes.select("node", "trank", vcode=pl.int_range(0, nodes.height, dtype=pl.Int64)),
        limits=con.sql('SELECT trank, "limit" FROM _id_limits').pl(),
        values=nodes["id_value"],
        types=pl.Series("id_type", sorted(ranks, key=ranks.__getitem__), dtype=pl.String),
    )


def _sequential(con: duckdb.DuckDBPyConnection, space: SpaceConfig) -> tuple[int, int]:
    """SPEC's rule over the bitten components, its results appended to the whole ones';
    returns the number of their messages and profiles."""
    con.execute(_BITTEN_MESSAGES)
    n_messages = _count(con, "SELECT COUNT(*) FROM _id_bitten_messages")
    if not n_messages:
        return 0, 0
    graph = _bitten_graph(con, space)
    seq_mp, seq_id, seq_profiles = sequential_rule(graph, graph.messages, space)
    con.register("_id_seq_profiles", seq_mp.cast(MESSAGE_PROFILES_SCHEMA).to_arrow())
    con.register("_id_seq_identities", seq_id.cast(IDENTITIES_SCHEMA).to_arrow())
    for statement in _APPEND:
        con.execute(statement)
    con.unregister("_id_seq_profiles")
    con.unregister("_id_seq_identities")
    return n_messages, seq_profiles


def resolve_identities_sql(con: duckdb.DuckDBPyConnection, space: SpaceConfig) -> dict[str, int]:
    """Resolve the messages of ``_id_input`` to profiles inside DuckDB.

    Args:
        con: a DuckDB connection holding ``_id_input`` (cut at as-of; ``seq``, ``message_id``,
            ``type``, ``timestamp``, ``ids``, ``previous_id``, as for
            `identity.resolve_identities`); temporary tables ``_id_*`` are created in it and
            dropped.
        space: identifier types, priorities and limits.

    Returns:
        ``messages`` and the stats of `identity.resolve_identities`; the tables
        ``_ap_profiles_of`` and ``_ap_identities`` hold the result (`identity_result` reads it).
    """
    n_messages = build_graph_input(con, space)
    if n_messages == 0:
        for statement in (*_EMPTY, *_DROP):
            con.execute(statement)
        names = ("profiles", "components", "sequential_components", "sequential_messages")
        return {"messages": 0, **dict.fromkeys(names, 0)}
    rounds = _label_components(con)
    for statement in (_CREATE_BITTEN, _PIDS, _WHOLE_MESSAGES, _WHOLE_IDENTITIES):
        con.execute(statement)
    n_profiles = _count(con, "SELECT COUNT(DISTINCT profile_id) FROM _id_pids")
    n_bitten = _count(con, "SELECT COUNT(*) FROM _id_bitten")
    components = _count(con, "SELECT COUNT(DISTINCT label) FROM _id_label")
    sequential_messages, sequential_profiles = _sequential(con, space)
    for statement in _DROP:
        con.execute(statement)
    stats = {
        "profiles": n_profiles + sequential_profiles,
        "components": components,
        "sequential_components": n_bitten,
        "sequential_messages": sequential_messages,
        "sql_rounds": rounds,
    }
    log.info("identity (sql): %s", stats)
    return {"messages": n_messages, **stats}


def fetched(con: duckdb.DuckDBPyConnection, query: str, schema: pl.Schema) -> pl.DataFrame:
    """A query's rows as a frame, converted batch by batch (never two whole copies at once)."""
    reader = con.sql(query).to_arrow_reader(1_000_000)
    parts = [pl.DataFrame(batch) for batch in reader]
    frame = pl.concat(parts, rechunk=False) if parts else pl.DataFrame(schema=schema)
    return frame.cast(schema)


def identities_frame(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """``_ap_identities`` sorted by (profile_id, id_type, id_value)."""
    query = "SELECT * FROM _ap_identities ORDER BY profile_id, id_type, id_value"
    return fetched(con, query, IDENTITIES_SCHEMA)


def identity_result(con: duckdb.DuckDBPyConnection, stats: dict[str, int]) -> IdentityResult:
    """The result `identity.resolve_identities` returns, read from DuckDB's tables, without
    the message profiles (a row per message: `message_profiles_frame` reads them, last)."""
    return IdentityResult(
        message_profiles=pl.DataFrame(schema=MESSAGE_PROFILES_SCHEMA),
        identities=identities_frame(con),
        stats={k: v for k, v in stats.items() if k != "messages"},
    )


def message_profiles_frame(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """``_ap_profiles_of`` (seq, profile_id) sorted by seq."""
    return fetched(con, "SELECT * FROM _ap_profiles_of ORDER BY seq", MESSAGE_PROFILES_SCHEMA)
