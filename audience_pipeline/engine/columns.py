"""Naming and extraction of the event columns the definitions reference.

Properties and context are tagged JSON text; each (scope, path) a definition names is extracted
once per run into its own column, so that no condition re-parses JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
import polars as pl

from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.walk import condition_exprs, iter_conditions, refs

ENTITY = "entity_id"


def json_path(path: tuple[str, ...]) -> str:
    """JSONPath of one dotted key in a flat-tagged object (see values.flat_tag)."""
    key = ".".join(path).replace("\\", "\\\\").replace("'", "\\'")
    return f"$['{key}']"


# Keys Polars' JSONPath reads back exactly; others (backslashes, two quotes in a row: `it''s`
# does not even compile) are found by :func:`flat_value` instead.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_ .$@#%&*+,/:;<=>?!|~^`{}()-]*")


def flat_value(source: str, path: tuple[str, ...]) -> pl.Expr:
    """The tagged value of one dotted key in a flat-tagged JSON object column, or null.

    Every value of a flat-tagged object is a JSON string or null, and a `"` inside a string is
    always escaped, so `{` or `,` then the key exactly as orjson writes it (the writer of that
    text) then `:` can only be that key; the string found is decoded by Polars' JSON reader.
    """
    key = ".".join(path)
    if _PLAIN_KEY.fullmatch(key):
        return pl.col(source).str.json_path_match(json_path(path))
    written = orjson.dumps(key).decode()
    pattern = "[{,]" + _regex_literal(written) + r':("(?:[^"\\]|\\.)*")'
    found = pl.col(source).str.extract(pattern, 1)
    return pl.concat_str(pl.lit('{"v":'), found, pl.lit("}")).str.json_path_match("$.v")


def _regex_literal(text: str) -> str:
    # \x{...} for every non-alphanumeric character: valid in Rust's regex syntax, whatever it is.
    return "".join(c if c.isalnum() and c.isascii() else f"\\x{{{ord(c):X}}}" for c in text)


def flat_column(source: str, path: tuple[str, ...]) -> str:
    """Name of the stored column holding one flattened path (``p.price``, ``c.device.type``)."""
    return ("p." if source == "properties" else "c.") + ".".join(path)


@dataclass
class ColumnNames:
    """Stable, collision-free column names for everything a level's plan materializes."""

    paths: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)
    counter: int = 0

    def path_column(self, scope: str, path: tuple[str, ...]) -> str:
        base = "context" if scope in ("context", "parent_context") else "prop"
        key = (base, path)
        if key not in self.paths:
            self.paths[key] = f"_{base}{len(self.paths)}"
        return self.paths[key]

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"_{prefix}{self.counter}"


def extract_paths(
    frame: pl.LazyFrame, names: ColumnNames, wanted: Iterable[ir.Ref]
) -> pl.LazyFrame:
    """Add one tagged-text column per referenced property/context path."""
    schema = set(frame.collect_schema().names())
    exprs = {}
    for ref in wanted:
        if ref.scope == "trait":
            continue
        column = names.path_column(ref.scope, ref.path)
        source = "context" if ref.scope in ("context", "parent_context") else "properties"
        stored = flat_column(source, ref.path)
        if stored in schema:
            exprs[column] = pl.col(stored).alias(column)
        else:
            exprs[column] = flat_value(source, ref.path).alias(column)
    if not exprs:
        return frame
    return frame.with_columns(list(exprs.values()))


@dataclass(frozen=True)
class EventColumns:
    """The flattened path columns a space reads, and whether any path needs the JSON text."""

    columns: frozenset[str]
    needs_properties: bool
    needs_context: bool


def space_refs(space: ir.Space) -> list[ir.Ref]:
    """Every property / context name the space's traits and audience conditions read."""
    found: list[ir.Ref] = []
    for trait in space.traits:
        found += refs(trait.where)
        if trait.property is not None:
            found.append(trait.property)
    for audience in space.audiences:
        for node in iter_conditions(audience.condition):
            for expr in condition_exprs(node):
                found += refs(expr)
    return [r for r in found if r.scope != "trait"]


def needed_flat_columns(space: ir.Space, available: set[str]) -> EventColumns:
    """Which stored ``p.*`` / ``c.*`` columns compute reads (so a caller can load only those)."""
    columns: set[str] = set()
    needs = {"properties": False, "context": False}
    for ref in space_refs(space):
        source = "context" if ref.scope in ("context", "parent_context") else "properties"
        stored = flat_column(source, ref.path)
        if stored in available:
            columns.add(stored)
        else:
            needs[source] = True
    return EventColumns(frozenset(columns), needs["properties"], needs["context"])
