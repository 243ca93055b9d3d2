"""Segment-spec JSON lines -> Segment's warehouse tables as Parquet, in DuckDB (minutes, not hours).

    python benchmarks/segment_warehouse.py EVENTS_DIR OUT_DIR

The layout is the one `tests/support/segment_tables.py` writes (and `compute --engine spark`
and `--events-schema` read): one table per call type (identifies, groups, aliases, tracks, pages,
screens) and one per track event (`segment_tables.slug`), nested objects flattened into
lower-cased underscore columns (``context_device_type``), arrays as JSON text, a column holding
mixed JSON types as text, lines Segment would not load (not JSON, unknown type, unreadable
timestamp) left out. That helper builds every row in Python (more than 25 minutes at 1M
events); here DuckDB reads the lines once with declared columns (objects kept as JSON), learns
each table's columns with `json_group_structure`, and writes each table with one
`json_transform` per object. `tests/benchmarks/test_segment_warehouse.py` checks it against the
helper.

One known difference: a key that holds an object in some messages and a scalar in others
becomes one text column here (the helper writes both ``key`` and ``key_field`` columns).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from audience_pipeline.segment_tables import STANDARD, slug

CALLS = {"identify": "identifies", "group": "groups", "alias": "aliases", "track": "tracks",
         "page": "pages", "screen": "screens"}  # fmt: skip
# The message fields read, as read_json's declared columns (objects kept as JSON text).
READ_COLUMNS = {"type": "VARCHAR", "messageId": "VARCHAR", "userId": "VARCHAR",
                "anonymousId": "VARCHAR", "timestamp": "VARCHAR", "receivedAt": "VARCHAR",
                "event": "VARCHAR", "name": "VARCHAR", "groupId": "VARCHAR",
                "previousId": "VARCHAR", "properties": "JSON", "context": "JSON",
                "traits": "JSON"}  # fmt: skip
INTEGERS = {"UBIGINT", "BIGINT", "HUGEINT", "UHUGEINT", "INTEGER"}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _name(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _object(column: str) -> str:
    return f"CASE WHEN json_type({column}) = 'OBJECT' THEN {column} END"


@dataclass
class Leaf:
    """One flattened column: its name, its path in the object, and its DuckDB type."""

    name: str
    path: list[str]
    kind: str  # BIGINT, DOUBLE, BOOLEAN, VARCHAR, or JSON (mixed types, arrays: written as text)


def _leaves(structure: Any, prefix: str, path: list[str], out: list[Leaf]) -> None:
    """The leaves of a `json_group_structure` result, as the helper's `_flatten` names them."""
    if not isinstance(structure, dict):
        return  # "NULL": the object was never there
    for key, item in structure.items():
        name, here = f"{prefix}{key}".lower(), [*path, key]
        if isinstance(item, dict):
            _leaves(item, name + "_", here, out)
        elif isinstance(item, list):
            out.append(Leaf(name, here, "JSON"))
        elif item in INTEGERS:
            out.append(Leaf(name, here, "BIGINT"))
        elif item in ("DOUBLE", "BOOLEAN", "VARCHAR", "JSON"):
            out.append(Leaf(name, here, item))
        # "NULL": never a value, so no column (the helper skips null values)


def _transform_shape(leaves: list[Leaf]) -> dict[str, Any]:
    """The `json_transform` structure that reads exactly these leaves."""
    shape: dict[str, Any] = {}
    for leaf in leaves:
        node = shape
        for key in leaf.path[:-1]:
            node = node.setdefault(key, {})
        node[leaf.path[-1]] = leaf.kind
    return shape


def _leaf_sql(struct: str, leaf: Leaf) -> str:
    value = struct
    for key in leaf.path:
        value = f"struct_extract({value}, {_literal(key)})"
    if leaf.kind == "JSON":  # text as the helper writes it: a string as is, the rest as JSON
        value = f"CASE WHEN json_type({value}) = 'VARCHAR' THEN {value} ->> '$' ELSE CAST({value} AS VARCHAR) END"  # fmt: skip
    return f"{value} AS {_name(leaf.name)}"


@dataclass
class TableShape:
    """A table's columns: the message's own, then each flattened object's leaves."""

    name: str
    where: str
    own: list[tuple[str, str]]  # (expression, column)
    objects: list[tuple[str, list[Leaf]]] = field(default_factory=list)  # (object column, leaves)

    def select(self) -> str:
        seen = {column for _, column in self.own}
        parts = [f"{expression} AS {_name(column)}" for expression, column in self.own]
        transforms = []
        for index, (column, leaves) in enumerate(self.objects):
            kept = [leaf for leaf in leaves if leaf.name not in seen]
            seen.update(leaf.name for leaf in kept)
            if not kept:
                continue
            shape = _literal(json.dumps(_transform_shape(kept)))
            transforms.append(f"json_transform({column}, {shape}) AS _o{index}")
            parts += [_leaf_sql(f"_o{index}", leaf) for leaf in kept]
        inner = ", ".join(["*", *transforms])
        return (f"SELECT {', '.join(parts)} FROM (SELECT {inner} FROM msgs "  # noqa: S608
                f"WHERE {self.where} ORDER BY row) t ORDER BY row")  # fmt: skip


OWN = [("message_id", "id"), ("user_id", "user_id"), ("anonymous_id", "anonymous_id"),
       ("ts", "timestamp"), ("received_at", "received_at")]  # fmt: skip


def _read(con: duckdb.DuckDBPyConnection, events: Path) -> int:
    """msgs: the loadable messages, in file and line order, with their event's table."""
    files = sorted(str(p) for p in events.rglob("*.jsonl"))
    if not files:
        msg = f"{events}: no .jsonl files"
        raise SystemExit(msg)
    columns = (
        "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in READ_COLUMNS.items()) + "}"
    )
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE TABLE raw AS SELECT row_number() OVER () AS row, * FROM read_json("  # noqa: S608
        f"[{', '.join(_literal(f) for f in files)}], format = 'newline_delimited', "
        f"ignore_errors = true, columns = {columns})"
    )
    names = [
        r[0] for r in con.sql("SELECT DISTINCT event FROM raw WHERE type = 'track'").fetchall()
    ]
    con.execute("CREATE TABLE slugs (event VARCHAR, slug VARCHAR)")
    con.executemany(
        "INSERT INTO slugs VALUES (?, ?)", [(n, slug(n)) for n in names if n is not None]
    )
    calls = ", ".join(_literal(c) for c in CALLS)
    parsed = "timezone('UTC', try_cast({} AS TIMESTAMPTZ))"
    con.execute(
        "CREATE TABLE msgs AS SELECT r.row, r.type, r.messageId AS message_id, r.userId AS user_id, "  # noqa: S608
        f"r.anonymousId AS anonymous_id, {parsed.format('r.timestamp')} AS ts, "
        f"{parsed.format('r.receivedAt')} AS received_at, r.event AS event_text, s.slug AS event, "
        "r.name, r.groupId AS group_id, r.previousId AS previous_id, "
        f"{_object('r.properties')} AS properties, {_object('r.context')} AS context, "
        f"{_object('r.traits')} AS traits FROM raw r LEFT JOIN slugs s ON s.event = r.event "
        f"WHERE r.type IN ({calls}) AND (r.timestamp IS NULL OR "
        f"{parsed.format('r.timestamp')} IS NOT NULL)"
    )
    return int(con.sql("SELECT count(*) FROM msgs").fetchall()[0][0])


def _extras(structure: str | None, *, drop: set[str]) -> list[Leaf]:
    """Properties' or traits' leaves, without the message's own fields and context columns."""
    leaves: list[Leaf] = []
    if structure:
        _leaves(json.loads(structure), "", [], leaves)
    return [leaf for leaf in leaves if leaf.name not in STANDARD | drop
            and not leaf.name.startswith("context_")]  # fmt: skip


def _shapes(con: duckdb.DuckDBPyConnection) -> list[TableShape]:
    rows = con.sql(
        "SELECT type, event, grouping(event) AS whole, json_group_structure(context), "
        "json_group_structure(properties), json_group_structure(traits) FROM msgs "
        "GROUP BY GROUPING SETS ((type), (type, event))"
    ).fetchall()
    shapes = []
    for kind, event, whole, context, properties, traits in rows:
        if kind != "track" and not whole:
            continue  # other calls: one table each
        ctx: list[Leaf] = []
        if context:
            _leaves(json.loads(context), "context_", [], ctx)
        own = list(OWN)
        extras: list[Leaf] = []
        where = f"type = {_literal(kind)}"
        if kind == "group":
            own.append(("group_id", "group_id"))
        if kind == "alias":
            own.append(("previous_id", "previous_id"))
        if kind in ("page", "screen"):
            own.append(("name", "name"))
            extras = _extras(properties, drop={"name"})
        if kind in ("identify", "group"):
            extras = _extras(traits, drop=set())
        if kind == "track":
            own += [("event_text", "event_text"), ("event", "event")]
            if not whole:
                if not event:
                    continue  # no table for an event whose name has no letter or digit
                where += f" AND event = {_literal(event)}"
                extras = _extras(properties, drop=set())
        name = event if kind == "track" and not whole else CALLS[kind]
        source = "traits" if kind in ("identify", "group") else "properties"
        shapes.append(TableShape(name, where, own, [("context", ctx), (source, extras)]))
    return shapes


def build(events: Path, out: Path) -> dict[str, int]:
    """Write Segment's tables of the messages under `events` into `out` (<table>.parquet);
    returns the rows per table."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    _read(con, events)
    counts: dict[str, int] = {}
    for shape in _shapes(con):
        target = out / f"{shape.name}.parquet"
        con.execute(f"COPY ({shape.select()}) TO {_literal(str(target))} (FORMAT parquet)")
        counts[shape.name] = int(
            con.sql(f"SELECT count(*) FROM {_literal(str(target))}").fetchall()[0][0]
        )  # noqa: S608
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("events", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    start = time.perf_counter()
    counts = build(args.events, args.out)
    print(
        f"{sum(counts.values())} rows in {len(counts)} tables, {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
