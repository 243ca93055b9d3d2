"""The relations a SQL trait reads: `events`, `identifies`, `groups` (SPEC 7a), built from the
run's normalized messages (after quarantine, dedupe and the as-of cut), and declared sources."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from audience_pipeline.message_types import EVENT_TYPES
from audience_pipeline.spec.models import SourceSpec
from audience_pipeline.values import dumps, loads, untag


def _identifier(ids: pl.Expr, id_type: str) -> pl.Expr:
    """The message's (normalized, unblocked) identifier of one type, else NULL."""
    return ids.list.eval(
        pl.element().filter(pl.element().struct.field("id_type") == id_type)
        .struct.field("id_value")
    ).list.first()  # fmt: skip


def _plain_json(flat_tagged: str | None) -> str:
    """A flat-tagged property document (dotted paths -> tagged leaves) -> the plain JSON object."""
    flat = loads(flat_tagged) if flat_tagged else {}
    objects = {k for k, v in flat.items() if isinstance(v, str) and v.startswith("o")}
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if any(key.startswith(parent + ".") for parent in objects):
            continue  # a leaf of an object kept whole under its parent
        if isinstance(value, str) and value.startswith("o"):
            out[key] = loads(value[1:])
        else:
            out[key] = untag(value)
    return dumps(out)


def _traits_json(updates: pl.DataFrame, kind: str) -> pl.DataFrame:
    """seq -> one JSON object of the message's trait updates of `kind`."""
    rows: dict[int, dict[str, Any]] = {}
    for seq, key, value in (
        updates.filter(pl.col("kind") == kind).select("seq", "key", "value").iter_rows()
    ):
        rows.setdefault(seq, {})[key] = loads(value) if value is not None else None
    return pl.DataFrame(
        {"seq": list(rows), "traits": [dumps(v) for v in rows.values()]},
        schema={"seq": pl.Int64, "traits": pl.String},
    )  # fmt: skip


def message_relations(events: pl.DataFrame, trait_updates: pl.DataFrame,
                      as_of: datetime) -> dict[str, pl.DataFrame]:  # fmt: skip
    """events, identifies and groups as SPEC 7a names their columns (timestamps UTC, no zone)."""
    messages = events.filter(pl.col("timestamp") <= as_of).with_columns(
        _identifier(pl.col("ids"), "user_id").alias("user_id"),
        _identifier(pl.col("ids"), "anonymous_id").alias("anonymous_id"),
        pl.col("timestamp").dt.replace_time_zone(None).alias("timestamp"),
    )
    tracked = messages.filter(pl.col("type").is_in(EVENT_TYPES))
    out = {
        "events": tracked.select(
            "user_id", "anonymous_id", "event", "timestamp",
            pl.col("properties").map_elements(_plain_json, return_dtype=pl.String).alias("properties"),
        ),
    }  # fmt: skip
    for name, call, kind, extra in (("identifies", "identify", "user", []),
                                    ("groups", "group", "account", ["group_id"])):  # fmt: skip
        calls = messages.filter(pl.col("type") == call).select(
            "seq", "user_id", "anonymous_id", *extra, "timestamp"
        )
        calls = calls.join(_traits_json(trait_updates, kind), on="seq", how="left")
        out[name] = calls.with_columns(pl.col("traits").fill_null("{}")).drop("seq")
    return out


def read_csv_source(path: Path) -> pl.DataFrame:
    """A CSV with a header; empty fields NULL; each column BIGINT, DOUBLE, BOOLEAN or VARCHAR,
    the first that reads every non-empty value (SPEC 7a)."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return pl.DataFrame()
    header, body = rows[0], rows[1:]
    columns: dict[str, pl.Series] = {}
    for index, name in enumerate(header):
        texts = [row[index] if index < len(row) and row[index] != "" else None for row in body]
        columns[name] = _typed_column(name, texts)
    return pl.DataFrame(columns)


def _typed_column(name: str, texts: list[str | None]) -> pl.Series:
    if all(t is None for t in texts):
        return pl.Series(name, texts, dtype=pl.String)  # nothing to tell the type by
    for parse, dtype in ((_int, pl.Int64), (_float, pl.Float64), (_bool, pl.Boolean)):
        try:
            values = [None if t is None else parse(t) for t in texts]
        except ValueError:
            continue
        return pl.Series(name, values, dtype=dtype)
    return pl.Series(name, texts, dtype=pl.String)


def _float(text: str) -> float:
    if text.strip().lower() in ("nan", "inf", "-inf", "infinity", "-infinity", "+inf"):
        raise ValueError(text)
    return float(text)


def _int(text: str) -> int:
    value = int(text.strip())
    if not -(2**63) <= value < 2**63:
        raise ValueError(text)
    return value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ValueError(text)


def read_source(source: SourceSpec, root: Path) -> pl.DataFrame:
    """One declared source as a frame: a Parquet or CSV file, or a PostgreSQL table."""
    if source.path is not None:
        path = root / source.path
        if source.path.lower().endswith(".csv"):
            return read_csv_source(path)
        return pl.read_parquet(path)
    import psycopg
    from psycopg import sql

    assert source.dsn is not None and source.table is not None
    parts = source.table.split(".")
    with psycopg.connect(source.dsn) as con, con.cursor() as cursor:
        con.read_only = True
        cursor.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(*parts)))
        names = [d.name for d in cursor.description or []]
        rows = cursor.fetchall()
    return pl.DataFrame([dict(zip(names, row, strict=True)) for row in rows], infer_schema_length=None) if rows else pl.DataFrame({n: [] for n in names})  # fmt: skip


__all__ = ["message_relations", "read_csv_source", "read_source"]
