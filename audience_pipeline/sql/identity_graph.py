"""The identifier graph's input built inside DuckDB, from the identity columns where they lie.

What `identity.prepare` builds in Polars (its docstring has the rules), here in SQL over the
relation ``_id_input`` (``seq``, ``message_id``, ``type``, ``timestamp``, ``ids``,
``previous_id``: a view over the normalized Parquet, or a registered frame), so that the
identifier lists of every message never enter the process and DuckDB spills under its memory
limit. At 30M events the Polars preparation alone passed 11 GB.

- ``_id_rank``: each message's place in processing order (timestamp, messageId with a missing one
  last, seq), and the previousId of an alias call.
- ``_id_nodes``: one node per distinct (type rank, value), numbered in that order (values compare
  as bytes in DuckDB and in Polars), so a message's first identifier is its smallest node.
- ``_id_links``: (rank, node) of every identifier of every message, an alias's previousId typed by
  its earliest holder (the fallback type if none came before).
- ``_id_messages``: rank, seq and first node of every message; ``_id_limits``: limit by type rank.
"""

from __future__ import annotations

import duckdb
import polars as pl

from audience_pipeline.identity.result import alias_fallback_type, type_limits, type_ranks
from audience_pipeline.spec.models import SpaceConfig

INPUT = "_id_input"

# Fixed statements over our own relations: no definition or data text enters them.
_RANK = (
    "CREATE OR REPLACE TEMP TABLE _id_rank AS SELECT seq, ROW_NUMBER() OVER (ORDER BY timestamp, "
    "message_id IS NULL, message_id, seq) - 1 AS rank, "
    "CASE WHEN type = 'alias' THEN previous_id END AS alias_of FROM _id_input"
)
_OCCURRENCES = (
    "CREATE OR REPLACE TEMP TABLE _id_occ AS SELECT r.rank, t.trank, o.value FROM ("
    "  SELECT seq, u.id_type AS id_type, u.id_value AS value FROM ("
    "    SELECT seq, UNNEST(ids) AS u FROM _id_input) WHERE u.id_value IS NOT NULL) o "
    "JOIN _id_rank r ON r.seq = o.seq LEFT JOIN _id_types t ON t.id_type = o.id_type"
)
_UNKNOWN = (
    "SELECT DISTINCT u.id_type FROM (SELECT UNNEST(ids) AS u FROM _id_input) "
    "WHERE u.id_value IS NOT NULL AND u.id_type IS NOT NULL "
    "AND u.id_type NOT IN (SELECT id_type FROM _id_types) ORDER BY 1"
)
# An alias's previousId takes the highest-priority type it had in its earliest holder, if that
# message comes before the alias; else the fallback type. The alias itself counts as a holder of
# the fallback type (one MIN over rank * types + type rank finds both at once).
_TYPED_ALIASES = (
    "CREATE OR REPLACE TEMP TABLE _id_typed AS "
    "WITH alias AS (SELECT rank, alias_of AS value FROM _id_rank WHERE alias_of IS NOT NULL), "
    "sizes AS (SELECT COUNT(*) AS n, MIN(trank) FILTER (WHERE fallback) AS fallback "
    "  FROM _id_types), "
    "held AS (SELECT o.rank, o.trank, o.value FROM _id_occ o "
    "  WHERE o.value IN (SELECT value FROM alias) "
    "  UNION ALL SELECT a.rank, s.fallback, a.value FROM alias a, sizes s), "
    "earliest AS (SELECT h.value, MIN(h.rank * s.n + h.trank) AS key FROM held h, sizes s "
    "  GROUP BY h.value) "
    "SELECT a.rank, CASE WHEN e.key // s.n < a.rank THEN e.key % s.n ELSE s.fallback END "
    "  AS trank, a.value FROM alias a JOIN earliest e ON e.value = a.value, sizes s"
)
_HELD = "SELECT rank, trank, value FROM _id_occ UNION ALL SELECT rank, trank, value FROM _id_typed"
_NODES = (
    "CREATE OR REPLACE TEMP TABLE _id_nodes AS SELECT d.node, d.trank, t.id_type, d.id_value "
    "FROM (SELECT ROW_NUMBER() OVER (ORDER BY trank, value) - 1 AS node, trank, "
    "  value AS id_value FROM (SELECT DISTINCT trank, value FROM (" + _HELD + "))) d "
    "JOIN _id_types t ON t.trank = d.trank"
)
# Not deduplicated: a repeated (message, identifier) only repeats a graph edge.
_LINKS = (
    "CREATE OR REPLACE TEMP TABLE _id_links AS SELECT h.rank, n.node FROM (" + _HELD + ") h "
    "JOIN _id_nodes n ON n.trank = h.trank AND n.id_value = h.value"
)
_MESSAGES = (
    "CREATE OR REPLACE TEMP TABLE _id_messages AS SELECT r.rank, r.seq, m.first "
    "FROM _id_rank r LEFT JOIN (SELECT rank, MIN(node) AS first FROM _id_links GROUP BY rank) m "
    "ON m.rank = r.rank"
)
_WITHOUT_IDS = "SELECT seq FROM _id_messages WHERE first IS NULL ORDER BY seq LIMIT 5"
_LIMITS = 'CREATE OR REPLACE TEMP TABLE _id_limits AS SELECT trank, "limit" FROM _id_types'
_DROP = ("DROP TABLE _id_occ", "DROP TABLE _id_typed", "DROP TABLE _id_rank")


def type_table(space: SpaceConfig) -> pl.DataFrame:
    """id_type, trank, limit, fallback: the space's identifier types (``_id_types``)."""
    ranks, limits = type_ranks(space), type_limits(space)
    fallback = alias_fallback_type(space)
    return pl.DataFrame(
        {
            "id_type": list(ranks),
            "trank": list(ranks.values()),
            "limit": [limits[t] for t in ranks],
            "fallback": [t == fallback for t in ranks],
        },
        schema={"id_type": pl.String, "trank": pl.Int64, "limit": pl.Int64, "fallback": pl.Boolean},
    )


def build_graph_input(con: duckdb.DuckDBPyConnection, space: SpaceConfig) -> int:
    """Create ``_id_messages``, ``_id_links``, ``_id_nodes`` and ``_id_limits`` from
    ``_id_input`` (see the module's docstring); returns the number of messages.

    Raises:
        ValueError: an identifier type the space does not define, or a message without any
            identifier (as `identity.prepare`).
    """
    con.register("_id_types_frame", type_table(space).to_arrow())
    con.execute("CREATE OR REPLACE TEMP TABLE _id_types AS SELECT * FROM _id_types_frame")
    con.unregister("_id_types_frame")
    con.execute(_RANK)
    con.execute(_OCCURRENCES)
    if _count(con, "SELECT COUNT(*) FROM _id_occ WHERE trank IS NULL"):
        unknown = [row[0] for row in con.sql(_UNKNOWN).fetchall()]
        msg = f"identifier types not in the space: {unknown}"
        raise ValueError(msg)
    for statement in (_TYPED_ALIASES, _NODES, _LINKS, _MESSAGES, _LIMITS):
        con.execute(statement)
    missing = [row[0] for row in con.sql(_WITHOUT_IDS).fetchall()]
    if missing:
        msg = f"messages without any identifier (seq {missing})"
        raise ValueError(msg)
    for statement in _DROP:
        con.execute(statement)
    return _count(con, "SELECT COUNT(*) FROM _id_messages")


def _count(con: duckdb.DuckDBPyConnection, query: str) -> int:
    return int(con.sql(query).fetchall()[0][0])
