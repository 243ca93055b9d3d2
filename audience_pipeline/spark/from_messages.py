"""`compute --engine spark` over Segment-spec message files: every step on Spark.

1. The executors read and normalize the files (`messages`: one task per file, the project's own
   reader), then Spark SQL numbers, dedupes and quarantines them and cuts at as-of.
2. Identity: the identity steps of the whole-space script (`sql.script.identity`), run by
   `steps.run_steps` (label propagation in Spark SQL, SPEC's rule per bitten component).
3. The compiled space's input relations (`sql.relations`, the relations the DuckDB engine builds)
   and its level frames (the compiled SQL, spark dialect).
4. The driver reads back what is one row per profile or account (level frames, latest custom
   traits, identities, members) and shapes the output tables as the DuckDB and PostgreSQL
   engines do (`sql.compute.assemble_result`), so the tables and dtypes are the Polars engine's.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

import polars as pl

from audience_pipeline.engine.compute import ComputeResult
from audience_pipeline.ingest.files import discover
from audience_pipeline.ingest.schema import EVENTS_COLUMNS, TRAIT_UPDATES_COLUMNS
from audience_pipeline.ir import nodes as ir
from audience_pipeline.spark.messages import MESSAGES_STEPS, STATS_QUERY, read_files
from audience_pipeline.spark.steps import run_steps
from audience_pipeline.spec.models import Definitions, SpaceConfig
from audience_pipeline.sql.compiler import build_space_sql
from audience_pipeline.sql.compute import assemble_result
from audience_pipeline.sql.dialects import get_dialect
from audience_pipeline.sql.relations import Inputs, bind_as_of
from audience_pipeline.sql.script.catalog import Catalog
from audience_pipeline.sql.script.identity import identity_steps
from audience_pipeline.sql.script.program import Script
from audience_pipeline.sql.script.staging import Staging
from audience_pipeline.sqltraits.match import MatchedSqlTraits, matched_sql_traits
from audience_pipeline.sqltraits.run import SqlTraitResult, run_sql_traits, sql_traits
from audience_pipeline.values import flat_tag, loads

log = logging.getLogger(__name__)

EVENT_CALLS = ("track", "page", "screen")

# Fixed statements over our own tables (no definition or data text enters them).
_RELATIONS = (
    ("ap_events",
     "SELECT p.profile_id, m.timestamp, m.message_id, m.seq, m.event, m.properties, m.context "
     "FROM ap_msgs m JOIN ap_msg_profiles p ON p.seq = m.seq "
     "WHERE m.type IN ('track', 'page', 'screen')"),
    ("ap_profiles",
     "SELECT o.profile_id, COALESCE(k.known, FALSE) AS known FROM (SELECT DISTINCT profile_id "
     "FROM ap_msg_profiles) o LEFT JOIN (SELECT profile_id, MAX(CASE WHEN id_type IN "
     "('user_id', 'email') THEN 1 ELSE 0 END) = 1 AS known FROM ap_identities "
     "GROUP BY profile_id) k ON k.profile_id = o.profile_id"),
    ("ap_groups",
     "SELECT m.seq, m.timestamp, m.message_id, m.group_id AS account_id, p.profile_id "
     "FROM ap_msgs m JOIN ap_msg_profiles p ON p.seq = m.seq "
     "WHERE m.type = 'group' AND m.group_id IS NOT NULL"),
    ("ap_accounts", "SELECT DISTINCT account_id FROM ap_groups"),
    ("ap_account_members", "SELECT DISTINCT account_id, profile_id FROM ap_groups"),
    ("ap_owners_user",
     "SELECT m.seq, m.timestamp, m.message_id, p.profile_id AS owner FROM ap_msgs m "
     "JOIN ap_msg_profiles p ON p.seq = m.seq"),
    ("ap_owners_account",
     "SELECT seq, timestamp, message_id, account_id AS owner FROM ap_groups"),
)  # fmt: skip

# The latest value of each custom trait per owner (`sql.compute._LATEST`): by (timestamp,
# messageId with a missing one first, read order), the latest message wins.
_LATEST = (
    "SELECT owner, key, value, tagged FROM (SELECT o.owner, u.key, u.value, u.tagged, "
    "ROW_NUMBER() OVER (PARTITION BY o.owner, u.key ORDER BY o.timestamp DESC, "
    "o.message_id IS NULL DESC, o.message_id DESC, o.seq DESC) AS rn "
    "FROM ap_norm_traits u JOIN ap_owners_{kind} o ON o.seq = u.seq WHERE u.kind = '{kind}') "
    "WHERE rn = 1"
)


@dataclass
class MessagesRun:
    """What the messages path hands the commit: the result, the quarantine, the counts."""

    result: ComputeResult
    quarantine: pl.DataFrame
    stats: dict[str, int] = field(default_factory=dict)
    rounds: int = 0


def message_files(source: str) -> list[tuple[str, str]]:
    """(path to open, source name) of every input file, in the Polars engine's read order."""
    return [(str(path.resolve()), str(path)) for path in discover(source)]


def _table(spark: Any, name: str, query: str | Any) -> None:
    frame = spark.sql(query) if isinstance(query, str) else query
    frame.write.mode("overwrite").format("parquet").saveAsTable(name)


def _frame(spark: Any, table: str) -> pl.DataFrame:
    frame = pl.from_arrow(spark.table(table).toArrow())
    assert isinstance(frame, pl.DataFrame)
    return frame


def load_files(spark: Any, files: list[tuple[str, str]], space: SpaceConfig) -> dict[str, int]:
    """ap_norm_events, ap_norm_traits (copies dropped) and ap_quarantine from message files,
    read and normalized by the executors; returns the counts (`IngestResult.stats` names)."""
    _table(spark, "ap_read", read_files(spark, files, space))
    for name, query in MESSAGES_STEPS:
        _table(spark, name, query)
    row = spark.sql(STATS_QUERY).collect()[0]
    stats = {k: int(v or 0) for k, v in row.asDict().items()}
    stats["messages"] = spark.table("ap_norm_events").count()
    stats["duplicates"] = spark.table("ap_read_dropped").count()
    return stats


def load_normalized(spark: Any, events: pl.DataFrame, trait_updates: pl.DataFrame,
                    folder: Path) -> None:  # fmt: skip
    """ap_norm_events and ap_norm_traits from normalized frames (the engine protocol's input,
    e.g. Dagster's pinned partitions), handed to Spark as Parquet files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    events.select(list(EVENTS_COLUMNS)).write_parquet(folder / "events.parquet")
    trait_updates.select(list(TRAIT_UPDATES_COLUMNS)).write_parquet(
        folder / "trait_updates.parquet"
    )
    for name, file in (("ap_norm_events", "events"), ("ap_norm_traits", "trait_updates")):
        _table(spark, name, spark.read.parquet(str((folder / f"{file}.parquet").resolve())))


def _cut(spark: Any, space: SpaceConfig, as_of: datetime) -> None:
    """ap_msgs: the messages at or before as-of, with one ``_id<i>`` column per identifier path
    (`sql.script.staging.IdPath`), as the script's identity steps read them."""
    from pyspark.sql import functions as F  # noqa: N812

    ids: list[Any] = []
    seen: dict[str, int] = {}
    for path in _id_paths(space):
        # The k-th value of a type fills its k-th path's column: identity reads the set of
        # (type, value) per message, so which column holds which of them does not matter.
        k = seen[path.id_type] = seen.get(path.id_type, 0) + 1
        of_type = F.filter(F.col("ids"), _is_type(path.id_type))
        ids.append(F.try_element_at(of_type, F.lit(k))["id_value"].alias(path.column))
    msgs = spark.table("ap_norm_events").where(F.col("timestamp") <= F.lit(as_of)).select(
        "seq", "message_id", "type", "event", "timestamp", "group_id", "previous_id",
        "properties", "context", *ids,
    )  # fmt: skip
    _table(spark, "ap_msgs", msgs)


def _is_type(id_type: str) -> Any:
    from pyspark.sql import functions as F  # noqa: N812

    # One parameter: Spark passes a second one as the element's index.
    return lambda x: x["id_type"] == F.lit(id_type)


def _id_paths(space: SpaceConfig) -> list[Any]:
    return Staging(Catalog("-", {}), space, get_dialect("spark"), [], set()).id_paths


def _flat_scalar(tagged: str | None, value: str | None) -> str | None:
    """Nested-tagged JSON of a trait value -> its flat-tagged scalar (`engine.compute`)."""
    if tagged is not None and tagged.startswith('"'):
        text: str = loads(tagged)
        return text
    return None if value is None else "o" + value


def _flat_paths(flat: str | None) -> list[tuple[str, str | None]]:
    """An object value's dotted paths (``address.city``), as `sql.compute._flattened` adds."""
    if flat is None or not flat.startswith("o"):
        return []
    return list(flat_tag(loads(flat[1:])).items())


def _latest(spark: Any, sql: MatchedSqlTraits | None) -> dict[str, pl.DataFrame]:
    """ap_user_traits / ap_account_traits (with object paths) and the latest values per kind;
    the SQL traits' rows (one object per entity, from the driver) replace custom traits of the
    same key, as in the DuckDB engine."""
    from pyspark.sql import functions as F  # noqa: N812

    # Plain Python UDFs (Arrow ones need pandas on the workers).
    scalar = F.udf(lambda t, v: _flat_scalar(t, v), "string", useArrow=False)
    paths = F.udf(lambda f: _flat_paths(f), "array<struct<path:string,tagged:string>>",
                  useArrow=False)  # fmt: skip
    latest: dict[str, pl.DataFrame] = {}
    for kind, owner, target in (("user", "profile_id", "ap_user_traits"),
                                ("account", "account_id", "ap_account_traits")):  # fmt: skip
        rows = spark.sql(_LATEST.format(kind=kind)).select(
            "owner", "key", "value", scalar("tagged", "value").alias("tagged")
        )
        if sql is not None and sql.keys[kind]:
            rows = rows.where(~F.col("key").isin(sorted(sql.keys[kind])))
            pushed = sql.rows[kind].select(pl.col(owner).alias("owner"), "key", "value", "tagged")
            if pushed.height:
                rows = rows.unionByName(spark.createDataFrame(
                    list(pushed.iter_rows()), "owner string, key string, value string, tagged string"
                ))  # fmt: skip
        _table(spark, f"ap_latest_{kind}", rows)
        rows = spark.table(f"ap_latest_{kind}")
        nested = rows.select("owner", "key", F.explode(paths("tagged")).alias("p")).select(
            "owner", F.concat_ws(".", "key", F.col("p.path")).alias("key"),
            F.col("p.tagged").alias("tagged"),
        )  # fmt: skip
        flat = rows.select("owner", "key", "tagged").unionByName(nested)
        _table(spark, target, flat.withColumnRenamed("owner", owner))
        latest[kind] = _frame(spark, f"ap_latest_{kind}").rename({"owner": owner})
    return latest


def _level_frames(spark: Any, space_ir: ir.Space, as_of: datetime) -> dict[str, pl.DataFrame]:
    compiled = build_space_sql(space_ir, "spark", inputs=Inputs(), flat_columns=set())
    literal = compiled.dialect.timestamp(as_of.isoformat())
    frames: dict[str, pl.DataFrame] = {}
    for level, name in (("user", compiled.user_frame), ("account", compiled.account_frame)):
        if name is None:
            continue
        query = bind_as_of(compiled.level_query(level), literal)  # type: ignore[arg-type]
        _table(spark, name, compiled.dialect.render(query))  # the account level reads it by name
        frames[level] = _frame(spark, name)
    return frames


def compute_loaded(spark: Any, space: SpaceConfig, space_ir: ir.Space, as_of: datetime,
                   limits: dict[int, int],
                   sql_traits: list[SqlTraitResult] | None = None) -> tuple[ComputeResult, int]:  # fmt: skip
    """Every table but changes and history from ap_norm_events / ap_norm_traits; returns the
    result and the identity rounds."""
    _cut(spark, space, as_of)
    script = Script("spark")
    script.add(*identity_steps(space, get_dialect("spark"), _id_paths(space)))
    rounds = run_steps(spark, script, limits)
    for name, query in _RELATIONS:
        _table(spark, name, query)
    identities = _frame(spark, "ap_identities").sort("profile_id", "id_type", "id_value")
    accounts = _frame(spark, "ap_accounts").sort("account_id")
    sql = matched_sql_traits(sql_traits, identities, accounts["account_id"].to_list(), space)
    latest = _latest(spark, sql)
    frames = _level_frames(spark, space_ir, as_of)
    prepared = {
        "identity": SimpleNamespace(identities=identities, stats={"sql_rounds": rounds},
                                    message_profiles=pl.DataFrame(schema={
                                        "seq": pl.Int64, "profile_id": pl.String})),
        "user_latest": latest["user"], "account_latest": latest["account"],
        "messages": spark.table("ap_msgs").count(), "sql_traits": sql,
    }  # fmt: skip
    profiles = _frame(spark, "ap_profiles").select("profile_id").sort("profile_id")
    members = _frame(spark, "ap_account_members")
    result = assemble_result(prepared, frames, profiles, accounts, members, space_ir, as_of)
    return result, rounds


def sql_trait_rows(spark: Any, definitions: Definitions,
                   as_of: datetime) -> list[SqlTraitResult] | None:  # fmt: skip
    """The rows of the space's `kind: sql` traits (None without one), by the code every engine's
    run uses (`sqltraits.run.run_sql_traits`, as Dagster's engine asset calls it): their queries
    are DuckDB SQL over the run's messages (SPEC 7), so the columns those relations are built
    from (ap_norm_events' calls at or before as-of, and their trait updates) come to the driver.
    The one step that reads messages there; a space without SQL traits skips it."""
    from pyspark.sql import functions as F  # noqa: N812

    if not sql_traits(definitions):
        return None
    kept = spark.table("ap_norm_events").where(F.col("timestamp") <= F.lit(as_of))
    events = kept.select("seq", "type", "event", "timestamp", "ids", "group_id", "properties")
    updates = spark.table("ap_norm_traits").join(kept.select("seq"), "seq", "left_semi")
    return run_sql_traits(definitions, _on_driver(spark, events, EVENTS_COLUMNS),
                          _on_driver(spark, updates, TRAIT_UPDATES_COLUMNS), as_of)  # fmt: skip


def _on_driver(spark: Any, frame: Any, dtypes: dict[str, pl.DataType]) -> pl.DataFrame:
    """A Spark frame on the driver, with the normalized tables' dtypes (an empty one included).

    Through Parquet files in the session's warehouse folder when the driver can read it (a local
    or shared filesystem, as the message files are): Polars reads them itself. Collecting the
    messages through the JVM instead (``toArrow``) ran the driver out of its default 1 GB heap
    at 3M events."""
    folder = _local_folder(spark.conf.get("spark.sql.warehouse.dir"))
    if folder is None:
        got = pl.from_arrow(frame.toArrow())
        assert isinstance(got, pl.DataFrame)
    else:
        target = folder / f"ap_driver_{uuid.uuid4().hex}"
        frame.write.parquet(str(target))
        parts = sorted(target.glob("*.parquet"))
        got = pl.read_parquet(parts) if parts else pl.DataFrame(schema=dtypes)
        shutil.rmtree(target, ignore_errors=True)
    return got.select(pl.col(n).cast(dtypes[n]) for n in frame.columns)


def _local_folder(uri: str) -> Path | None:
    """A ``file:`` (or scheme-less) warehouse folder as a path; None for other filesystems."""
    parsed = urlparse(uri)
    return Path(parsed.path) if parsed.scheme in ("", "file") else None


def compute_messages(spark: Any, source: str, definitions: Definitions, space_ir: ir.Space,
                     as_of: datetime, limits: dict[int, int]) -> MessagesRun:  # fmt: skip
    """Every table but changes and history, from message files (`source`: a file or folder)."""
    space = definitions.space
    stats = load_files(spark, message_files(source), space)
    rows = sql_trait_rows(spark, definitions, as_of)
    result, rounds = compute_loaded(spark, space, space_ir, as_of, limits, rows)
    quarantine = _frame(spark, "ap_quarantine").sort("source", "line")
    return MessagesRun(result, quarantine, stats, rounds)
