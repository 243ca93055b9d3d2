"""Run SQL traits: every input relation copied into a fresh DuckDB file, which the queries then
read through a read-only connection with external access off (SPEC 7, 7a)."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import polars as pl

from audience_pipeline.spec.models import Definitions, TraitDef
from audience_pipeline.sqltraits.check import check_query
from audience_pipeline.sqltraits.inputs import message_relations, read_source
from audience_pipeline.values import loads


class SqlTraitError(RuntimeError):
    """A SQL trait that cannot give a value per entity: the run fails, naming the trait."""


@dataclass
class SqlTraitResult:
    """One trait's rows: the identifier column's type and raw values, and each row's fields."""

    key: str
    level: str
    id_type: str
    ids: list[Any]
    fields: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)


def sql_traits(definitions: Definitions) -> list[TraitDef]:
    return [t for t in definitions.traits if t.kind == "sql"]


def run_sql_traits(definitions: Definitions, events: pl.DataFrame, trait_updates: pl.DataFrame,
                   as_of: datetime) -> list[SqlTraitResult]:  # fmt: skip
    """Every `kind: sql` trait's rows (nothing to do, and no input built, without one)."""
    traits = sql_traits(definitions)
    if not traits:
        return []
    relations = message_relations(events, trait_updates, as_of)
    root = Path(definitions.root)
    for source in definitions.space.sources:
        try:
            relations[source.name] = read_source(source, root)
        except Exception as error:  # noqa: BLE001 - a source that cannot be read fails the run
            msg = f"source {source.name!r} cannot be read: {str(error).splitlines()[0]}"
            raise SqlTraitError(msg) from None
    with tempfile.TemporaryDirectory(prefix="ap_sqltraits_") as folder:
        database = str(Path(folder) / "inputs.duckdb")
        with duckdb.connect(database) as writer:
            for name, frame in relations.items():
                writer.register("_frame", frame.to_arrow())
                writer.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _frame')  # noqa: S608
                writer.unregister("_frame")
            for name in ("events", "identifies", "groups"):
                writer.execute(  # properties / traits as the JSON type, as SPEC 7a says
                    f'ALTER TABLE "{name}" ALTER COLUMN '  # noqa: S608
                    f"{'properties' if name == 'events' else 'traits'} TYPE JSON"
                )
        config = {"enable_external_access": False, "lock_configuration": True}
        with duckdb.connect(database, read_only=True, config=config) as reader:  # type: ignore[arg-type]
            return [_run_one(reader, trait, definitions) for trait in traits]


def _run_one(con: duckdb.DuckDBPyConnection, trait: TraitDef,
             definitions: Definitions) -> SqlTraitResult:  # fmt: skip
    assert trait.query is not None
    tree = check_query(trait.query, {s.name for s in definitions.space.sources})
    try:
        cursor = con.execute(tree.sql(dialect="duckdb"))
        rows = cursor.fetchall()
    except duckdb.Error as error:
        msg = f"SQL trait {trait.key!r} failed: {str(error).splitlines()[0]}"
        raise SqlTraitError(msg) from None
    description = cursor.description or []
    names = [d[0] for d in description]
    types = [str(d[1]) for d in description]
    id_type = _check_columns(trait, names, definitions)
    fields = names[1:]
    json_columns = {i for i, t in enumerate(types) if t.upper() == "JSON"}
    result = SqlTraitResult(trait.key, trait.level, id_type, [], fields)
    for row in rows:
        result.ids.append(row[0])
        result.rows.append({
            name: json_value(loads(value) if index in json_columns and isinstance(value, str) else value)
            for index, (name, value) in enumerate(zip(names, row, strict=True)) if index > 0
        })  # fmt: skip
    return result


def _check_columns(trait: TraitDef, names: list[str], definitions: Definitions) -> str:
    allowed = (
        ["group_id"] if trait.level == "account" else list(definitions.space.identifier_types())
    )
    if not names or names[0] not in allowed:
        first = names[0] if names else None
        msg = (f"SQL trait {trait.key!r}: the first column is named {first!r}; it must be one of "
               f"{', '.join(allowed)}")  # fmt: skip
        raise SqlTraitError(msg)
    fields = names[1:]
    if not fields:
        raise SqlTraitError(f"SQL trait {trait.key!r}: needs at least one column after {names[0]}")
    bad = [f for f in fields if not f or "." in f]
    if bad or len(set(fields)) != len(fields) or names[0] in fields:
        msg = f"SQL trait {trait.key!r}: field columns need distinct, non-empty names without dots: {fields}"  # fmt: skip
        raise SqlTraitError(msg)
    return names[0]


def json_value(value: Any) -> Any:
    """A DuckDB value as JSON: DECIMAL as float, NaN/inf null, times as ISO text, lists and
    structs as lists and objects."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return json_value(float(value))
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None).isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return str(value)


__all__ = ["SqlTraitError", "SqlTraitResult", "json_value", "run_sql_traits", "sql_traits"]
