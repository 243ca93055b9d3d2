"""The native reader: a block of JSON lines -> normalized rows, one DuckDB pass per block.

Byte checks (Polars) and one DuckDB parse per line (``json_extract`` of the top-level fields)
decide per line whether it is in the common exact shape: a JSON object without duplicate
top-level keys, ``\\u`` escapes, control characters, odd numbers or deep nesting (so every value
is storable: :mod:`.limits`); a known type; string fields; timestamps in the plain ISO form.
Timestamps, the event name and messageId come out of that pass as columns. What needs Python's
exact rules (identifiers, the flat-tagged texts of properties and context, page fills, trait
rows) is computed once per *distinct* value by the same functions the per-line normalizer uses
(:class:`.normalize.Normalizer`), and joined back: events repeat their context, identifiers and
properties, so this is a fraction of the lines.

Every line outside that shape is handed back to the caller for the per-line normalizer
(quarantine reasons included), so the meaning never changes, only the time it takes. Opt-in
(``AUDIENCE_PIPELINE_INGEST_READER=native``): on this project's data it costs more CPU than the
per-line reader (docs/benchmarks.md, "The native reader").
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import duckdb
import orjson
import polars as pl
import pyarrow as pa

from audience_pipeline.ingest.normalize import Normalizer, fill_page_properties, trait_rows
from audience_pipeline.ingest.schema import EVENTS_COLUMNS, ID_STRUCT, TRAIT_UPDATES_COLUMNS
from audience_pipeline.ingest.tagging import flat_tag_dict
from audience_pipeline.message_types import CALL_EVENT_NAMES, MESSAGE_TYPES
from audience_pipeline.spec.models import SpaceConfig
from audience_pipeline.values import dumps

# Top-level fields read from every line, in this order (v[1], v[2], ... in the SQL below).
FIELDS = (
    "type",
    "event",
    "messageId",
    "timestamp",
    "receivedAt",
    "previousId",
    "name",
    "groupId",
    "properties",
    "context",
    "traits",
)
# A line with any of these takes the per-line path. DuckDB reads what Python refuses (NaN,
# Infinity, trailing commas) and keeps numbers beyond a double as their text, so any exponent,
# a run of 20 digits or those words after a separator route the line; so do \\u escapes (lone
# surrogates, and DuckDB decodes them its own way). Strings may match too: that only costs speed.
# (Raw control characters inside strings are refused by DuckDB's json_valid, as by Python.)
ODD_LINE = (
    r"[:\[,]\s*-?(?:[0-9.]+[eE]|[0-9.]{20}|(?i:nan|inf))|,\s*[}\]]"
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f]"
)
# The ISO form taken here (Python's fromisoformat reads it the same; years 1000-9998 so that no
# offset leaves datetime's range); other forms go per line.
TIMESTAMP = (
    r"(?:[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-[0-9]{2}-[0-9]{2}"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
)
# Nesting can only be as deep as the brackets a line opens; limits.MAX_DEPTH is 254.
MAX_OPENERS = 250
MAX_CACHED = 200_000  # distinct values remembered per kind and file

_TYPES = ", ".join(f"'\"{name}\"'" for name in MESSAGE_TYPES)
# One pass per block over the registered table ``lines`` (seq, line, text, screened: the
# Polars checks passed). Parameters only: no definition text (identifier paths) enters the SQL.
_EXTRACT = f"""
WITH valid AS (
    SELECT seq, line, text FROM lines WHERE screened AND json_valid(text)
), extracted AS MATERIALIZED (
    SELECT seq, line, json_extract(text, $pointers)::VARCHAR[] AS v,
        array_to_string(json_keys(text), chr(1)) AS keys
    FROM valid
), fields AS (
    SELECT seq, line, v, keys,
        v[1] IN ({_TYPES}) AS known,
        v[1]->>'$' AS type,
        CASE WHEN v[4] IS NOT NULL AND v[4] <> 'null' THEN
            CASE WHEN starts_with(v[4], '"') AND regexp_full_match(v[4]->>'$', $timestamp)
                THEN epoch_us(try_cast(v[4]->>'$' AS TIMESTAMPTZ)) END
        END AS ts,
        v[4] IS NOT NULL AND v[4] <> 'null' AS has_ts,
        CASE WHEN starts_with(v[5], '"') AND regexp_full_match(v[5]->>'$', $timestamp)
            THEN epoch_us(try_cast(v[5]->>'$' AS TIMESTAMPTZ)) END AS received,
        v[5] IS NULL OR v[5] = 'null' AS no_received,
        CASE WHEN starts_with(v[2], '"') THEN v[2]->>'$' END AS event_text,
        CASE WHEN starts_with(v[3], '"') THEN v[3]->>'$' END AS message_id,
        v[3] IS NULL OR v[3] = 'null' OR starts_with(v[3], '"') AS message_id_ok,
        CASE WHEN starts_with(v[8], '"') THEN v[8]->>'$' END AS group_text
    FROM extracted
)
SELECT seq, line, keys, type, message_id,
    CASE type WHEN 'track' THEN event_text WHEN 'page' THEN $page WHEN 'screen' THEN $screen
        END AS event,
    CASE WHEN type = 'group' THEN group_text END AS group_id,
    CASE WHEN has_ts THEN ts ELSE received END AS timestamp,
    received AS received_at,
    v[6] AS previous_raw, v[7] AS name_raw, v[9] AS properties_raw, v[10] AS context_raw,
    v[11] AS traits_raw, v[12:] AS firsts
FROM fields
WHERE known AND message_id_ok
    AND (NOT has_ts OR ts IS NOT NULL) AND (has_ts OR received IS NOT NULL)
    AND (no_received OR received IS NOT NULL)
    AND (type <> 'track' OR (event_text IS NOT NULL AND event_text <> ''))
    AND (type <> 'group' OR (group_text IS NOT NULL AND group_text <> ''))
"""


def _pointer(name: str) -> str:
    return "/" + name.replace("~", "~0").replace("/", "~1")


def _parse(raw: str | None) -> Any:
    return None if raw is None else orjson.loads(raw)


def supported(space: SpaceConfig) -> bool:
    """Identifier paths the native reader can follow exactly: plain keys (a JSON pointer reads
    ``a.0`` in an array, Python does not), none the prefix of another."""
    paths = [tuple(dotted.split(".")) for spec in space.identifiers for dotted in spec.paths]
    for path in paths:
        if any(part == "" or part.isdigit() for part in path):
            return False
        if any(other != path and other[: len(path)] == path for other in paths):
            return False
    return True


def screen(text: pl.Expr) -> pl.Expr:
    """The byte checks of a line (before any parse): True when DuckDB may read it."""
    openers = text.str.count_matches("{", literal=True) + text.str.count_matches("[", literal=True)
    return (
        ~text.str.contains("\\u", literal=True)
        & ~text.str.contains(ODD_LINE)
        & (openers <= MAX_OPENERS)
    ).fill_null(False)


class _Cache:
    """Values by key, computed once per file (forgotten when they grow past MAX_CACHED).

    ``compute`` returns None for a key whose lines must go per line (an odd value there).
    """

    def __init__(self, compute: Callable[..., Any]) -> None:
        self.compute = compute
        self.held: dict[Hashable, Any] = {}

    def get(self, key: tuple[Any, ...]) -> Any:
        held = self.held
        if key in held:
            return held[key]
        if len(held) >= MAX_CACHED:
            held.clear()
        try:
            value = self.compute(*key)
        except Exception:  # e.g. InexactInteger: the per-line path decides (and says why)
            value = None
        held[key] = value
        return value


@dataclass(frozen=True)
class Block:
    """What the native reader made of one block: rows, and the seqs it took."""

    events: pl.DataFrame  # EVENTS_COLUMNS
    trait_updates: pl.DataFrame  # TRAIT_UPDATES_COLUMNS
    taken: pl.Series  # seq of every line in ``events``


_TRAITS = pl.List(pl.Struct({"key": pl.String, "value": pl.String, "tagged": pl.String}))
_IDS = pl.List(ID_STRUCT)
_CONTEXT_PARTS: dict[str, pl.DataType] = {
    name: pl.String() for name in ("context", "_id_context", "_page", "_context_traits")
}


class NativeReader:
    """Reads blocks of one file's lines; keeps its DuckDB connection and per-value caches."""

    def __init__(self, space: SpaceConfig, source: str, normalizer: Normalizer) -> None:
        self.source = source
        self.normalizer = normalizer
        paths = [tuple(dotted.split(".")) for spec in space.identifiers for dotted in spec.paths]
        # Top-level fields identifiers start from; those under context read a pruned copy of it.
        self.firsts = list(dict.fromkeys(path[0] for path in paths if path[0] != "context"))
        self.id_paths = [path[1:] for path in paths if path[0] == "context"]
        self.pointers = [_pointer(name) for name in (*FIELDS, *self.firsts)]
        self._con = duckdb.connect()
        self._con.execute("SET TimeZone = 'UTC'")  # a timestamp without offset is UTC (SPEC 5a)
        self._keys = _Cache(_distinct_keys)
        self._contexts = _Cache(self._context)
        self._ids = _Cache(self._identifiers)
        self._properties = _Cache(self._properties_text)
        self._traits = _Cache(self._trait_rows)

    def close(self) -> None:
        """Close the DuckDB connection."""
        self._con.close()

    def read(self, lines: pl.DataFrame) -> Block:
        """Rows of the lines in the common exact shape (``lines``: seq, line, text)."""
        fields = self._extract(lines)
        fields = self._add(fields, ["keys"], self._keys, {"_unique": pl.Boolean()})
        fields = self._add(fields, ["context_raw"], self._contexts, _CONTEXT_PARTS)
        firsts = [f"_f{index}" for index in range(len(self.firsts))]
        kind = pl.col("type")
        is_page = kind.is_in(list(CALL_EVENT_NAMES))
        has_traits = kind.is_in(["identify", "group"])
        # Keys hold only what a value depends on, so that fewer distinct keys are computed.
        fields = fields.filter("_unique").with_columns(
            pl.when(kind.is_in(["alias", "group"])).then(kind).alias("_id_kind"),
            pl.when(kind == "alias").then("previous_raw").alias("_previous"),
            pl.when(is_page).then("name_raw").alias("_name"),
            pl.when(is_page).then("_page").alias("_page"),
            pl.when(has_traits).then(kind).alias("_traits_kind"),
            pl.when(has_traits).then("traits_raw").alias("_traits"),
            pl.when(kind == "identify").then("_context_traits").alias("_context_traits"),
        )
        keys = ["_id_kind", "_previous", *firsts, "_id_context"]
        fields = self._add(fields, keys, self._ids, {"ids": _IDS, "previous_id": pl.String()})
        keys = ["properties_raw", "_name", "_page"]
        fields = self._add(fields, keys, self._properties, {"properties": pl.String()})
        keys = ["_traits_kind", "_traits", "_context_traits"]
        fields = self._add(fields, keys, self._traits, {"traits": _TRAITS})
        events = fields.select(
            pl.col(name).cast(dtype)
            if name != "source"
            else pl.lit(self.source, pl.String).alias(name)
            for name, dtype in EVENTS_COLUMNS.items()
        )
        return Block(events, _trait_updates(fields), fields.get_column("seq"))

    @staticmethod
    def _add(
        fields: pl.DataFrame, keys: list[str], cache: _Cache, columns: dict[str, pl.DataType]
    ) -> pl.DataFrame:
        return _join(fields, _dimension(fields, keys, cache, columns), keys)

    def _extract(self, lines: pl.DataFrame) -> pl.DataFrame:
        """Top-level fields of the lines that pass the byte checks and DuckDB's."""
        screened = lines.select("seq", "line", "text", screen(pl.col("text")).alias("screened"))
        self._con.register("lines", screened)
        try:
            fields = self._con.sql(
                _EXTRACT,
                params={
                    "pointers": self.pointers,
                    "timestamp": TIMESTAMP,
                    "page": CALL_EVENT_NAMES["page"],
                    "screen": CALL_EVENT_NAMES["screen"],
                },
            ).pl()
        finally:
            self._con.unregister("lines")
        firsts = pl.col("firsts")
        return fields.with_columns(
            firsts.list.get(index, null_on_oob=True).alias(f"_f{index}")
            for index in range(len(self.firsts))
        ).drop("firsts")

    def _context(self, raw: str | None) -> tuple[str, str, str, str]:
        """The flat text of context, and the parts of it other values depend on (JSON texts:
        identifier paths, context.page's url and path, context.traits)."""
        parsed = _parse(raw)
        context = parsed if type(parsed) is dict else {}
        page = context.get("page")
        page_fills = {k: page.get(k) for k in PAGE_KEYS} if type(page) is dict else None
        return (
            dumps(flat_tag_dict(context)),
            orjson.dumps(_pruned(context, self.id_paths)).decode(),
            orjson.dumps(page_fills).decode(),
            orjson.dumps(context.get("traits")).decode(),
        )

    def _identifiers(self, kind: str | None, previous_raw: str | None, *rest: Any) -> Any:
        *firsts, id_context = rest
        message = {name: _parse(raw) for name, raw in zip(self.firsts, firsts, strict=True)}
        message["context"] = orjson.loads(id_context)
        ids = self.normalizer.identifiers(message, kind == "group")
        if not ids:
            return None  # no identifier: the per-line path quarantines the line
        previous = None
        if kind == "alias":
            message["previousId"] = _parse(previous_raw)
            previous = self.normalizer.previous_id(message)
        return [(id_type, value) for _, value, id_type in ids], previous

    def _properties_text(
        self, raw: str | None, name_raw: str | None, page: str | None
    ) -> tuple[str]:
        parsed = _parse(raw)
        properties = parsed if type(parsed) is dict else {}
        if page is not None:  # a page or screen call: name and context.page fill the gaps
            fills = orjson.loads(page)
            context = {"page": fills} if fills is not None else {}
            properties = fill_page_properties({"name": _parse(name_raw)}, properties, context)
        return (dumps(flat_tag_dict(properties)),)

    def _trait_rows(
        self, kind: str | None, raw: str | None, context_traits: str | None
    ) -> tuple[list[tuple[str, str, str]]]:
        if kind is None:
            return ([],)
        own = _parse(raw)
        traits: dict[str, Any] | None
        if kind == "identify":
            traits = {}
            from_context = _parse(context_traits)
            if type(from_context) is dict:
                traits.update(from_context)
            if type(own) is dict:
                traits.update(own)  # traits win over context.traits, even with a null
        else:
            traits = own if type(own) is dict else None
        return (trait_rows(traits) if traits else [],)


PAGE_KEYS = ("url", "path")


def _pruned(context: dict[str, Any], paths: list[tuple[str, ...]]) -> dict[str, Any]:
    """Only the given paths of context; objects on the way are kept (possibly empty), so
    "is it an object" reads the same as in the whole context."""
    pruned: dict[str, Any] = {}
    for path in paths:
        source, target = context, pruned
        for part in path[:-1]:
            inner = source.get(part)
            if type(inner) is not dict:
                break
            source = inner
            target = target.setdefault(part, {})
        else:
            if path[-1] in source:
                target[path[-1]] = source[path[-1]]
    return pruned


def _distinct_keys(keys: str | None) -> tuple[bool]:
    """Whether a line's top-level keys (joined by chr(1)) are all different.

    DuckDB reads the first of two equal keys, Python the last: such lines go per line.
    """
    names = (keys or "").split("\x01")
    return (len(set(names)) == len(names),)


def _dimension(
    fields: pl.DataFrame, keys: list[str], cache: _Cache, columns: dict[str, pl.DataType]
) -> pl.DataFrame:
    """One row per distinct ``keys`` of ``fields`` with its values (``columns``).

    Keys whose value is None are left out: their lines go per line (the join is inner).
    """
    distinct = fields.select(keys).unique()
    values = [cache.get(key) for key in distinct.iter_rows()]
    kept = pl.Series([value is not None for value in values], dtype=pl.Boolean)
    values = [value for value in values if value is not None]
    data = [
        _series(name, [value[index] for value in values], dtype)
        for index, (name, dtype) in enumerate(columns.items())
    ]
    return distinct.filter(kept).with_columns(data)


def _series(name: str, values: list[Any], dtype: pl.DataType) -> pl.Series:
    """A column of computed values; lists of structs (tuples) are built as one Arrow array:
    Polars builds a Python list of dicts one element at a time."""
    if not (isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct)):
        return pl.Series(name, values, dtype=dtype)
    names = [field.name for field in dtype.inner.fields]
    flat = [item for items in values for item in items]
    arrays = [pa.array([item[i] for item in flat], pa.string()) for i in range(len(names))]
    offsets = pa.array([0, *accumulate(len(items) for items in values)], pa.int32())
    lists = pa.ListArray.from_arrays(offsets, pa.StructArray.from_arrays(arrays, names=names))
    series = pl.from_arrow(lists)
    assert isinstance(series, pl.Series)
    return series.alias(name).cast(dtype)


def _join(fields: pl.DataFrame, dimension: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The lines whose values were computed (the rest go per line), with those values."""
    return fields.join(dimension, on=keys, how="inner", nulls_equal=True, maintain_order="left")


def _trait_updates(fields: pl.DataFrame) -> pl.DataFrame:
    rows = fields.select(
        "seq",
        pl.when(pl.col("type") == "group")
        .then(pl.lit("account"))
        .otherwise(pl.lit("user"))
        .alias("kind"),
        "traits",
    ).filter(pl.col("traits").list.len() > 0)
    exploded = rows.explode("traits").unnest("traits")
    return exploded.select(
        pl.col(name).cast(dtype) for name, dtype in TRAIT_UPDATES_COLUMNS.items()
    )
