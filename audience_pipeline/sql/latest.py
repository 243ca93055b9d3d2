"""Latest custom traits of the DuckDB engine, kept in DuckDB while the levels run.

Each level's latest custom traits (owner, key, value, tagged: the newest update of each key) are
a table (``_ap_latest_user``, ``_ap_latest_account``) and the trait relation the compiled SQL
reads is built from it there; only the object values (flattened to dotted keys by
`custom_traits.flattened`) and, when the space has them, the SQL traits' rows pass through
Polars. At 30M events the two levels' latest traits are about 10M rows: held as frames beside
DuckDB's buffer pool while the levels ran, they were memory outside its limit. `latest_frame`
reads one back for the output tables.
"""

from __future__ import annotations

import duckdb
import polars as pl

from audience_pipeline.sql.custom_traits import flattened
from audience_pipeline.sql.identity import fetched
from audience_pipeline.sql.sources import MessageSource
from audience_pipeline.sql.statements import create_as, select_all
from audience_pipeline.sqltraits.columns import with_sql_rows
from audience_pipeline.sqltraits.match import MatchedSqlTraits

# Fixed statements over our own tables (no definition or data text enters them).
_LATEST = (
    "SELECT owner, key, value, tagged FROM ("
    "  SELECT o.owner, u.key, u.value,"
    "    CASE WHEN starts_with(u.tagged, '\"') THEN json_extract_string(u.tagged, '$')"
    "         ELSE 'o' || u.value END AS tagged,"
    "    ROW_NUMBER() OVER (PARTITION BY o.owner, u.key ORDER BY o.timestamp DESC,"
    "      (o.message_id IS NULL) DESC, o.message_id DESC, o.seq DESC) AS rn"
    "  FROM _ap_updates u JOIN _ap_owners o ON o.seq = u.seq"
    ") WHERE rn = 1"
)


class _Level:
    """One level's owners of trait updates and the fixed statements over its latest table."""

    def __init__(self, kind: str, owner: str, owners: str) -> None:
        self.kind, self.owner, self.table = kind, owner, f"_ap_latest_{kind}"
        self.owners = "CREATE OR REPLACE TEMP TABLE _ap_owners AS " + owners
        self.create = f"CREATE OR REPLACE TEMP TABLE {self.table} AS {_LATEST}"
        self.read = f"SELECT owner, key, value, tagged FROM {self.table}"
        self.objects = f"SELECT owner, key, tagged FROM {self.table} WHERE starts_with(tagged, 'o')"
        self.traits_table = f"_ap_traits_{kind}"
        self.traits = (
            f"CREATE OR REPLACE TEMP TABLE {self.traits_table} AS SELECT owner AS {owner}, key, "
            f"tagged FROM {self.table} WHERE tagged IS NULL OR NOT starts_with(tagged, 'o') "
            f"UNION ALL SELECT {owner}, key, tagged FROM _ap_objects"
        )


# Only our own fixed names enter these statements (built once, here).
LEVELS = (
    _Level("user", "profile_id", "SELECT seq, timestamp, message_id, profile_id AS owner "
           "FROM _ap_msgs"),
    _Level("account", "account_id", "SELECT seq, timestamp, message_id, account_id AS owner "
           "FROM _ap_groups"),
)  # fmt: skip


_SCHEMA = pl.Schema({"owner": pl.String, "key": pl.String, "value": pl.String, "tagged": pl.String})


def _latest(con: duckdb.DuckDBPyConnection, level: _Level) -> pl.DataFrame:
    return fetched(con, level.read, _SCHEMA).rename({"owner": level.owner})


def create_latest(
    con: duckdb.DuckDBPyConnection,
    source: MessageSource,
    targets: dict[str, str],
    sql: MatchedSqlTraits | None,
) -> None:
    """Each level's latest custom traits as a table, and its trait relation (`targets`: the
    relation's name by level) as the compiled SQL reads it."""
    for level in LEVELS:
        source.create_updates(con, level.kind)
        con.execute(level.owners)
        con.execute(level.create)
        if sql is not None:  # SQL traits read as custom traits holding one object each
            frame = with_sql_rows(_latest(con, level), sql.rows[level.kind], sql.keys[level.kind])
            con.register("_ap_latest_frame", frame.rename({level.owner: "owner"}).to_arrow())
            con.execute(f"CREATE OR REPLACE TEMP TABLE {level.table} AS "  # our own name
                        "SELECT * FROM _ap_latest_frame")  # fmt: skip
            con.unregister("_ap_latest_frame")
        objects = con.sql(level.objects).pl().rename({"owner": level.owner})
        objects = flattened(objects.cast({"tagged": pl.String}), level.owner)
        con.register("_ap_objects", objects.to_arrow())
        con.execute(level.traits)
        con.unregister("_ap_objects")
        view = create_as(targets[level.kind], select_all(level.traits_table), view=True)
        con.execute(view.sql("duckdb"))


def latest_frames(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    """``user`` and ``account``: each level's latest custom traits (owner column, key, value,
    tagged), as the output tables read them."""
    return {level.kind: _latest(con, level) for level in LEVELS}
