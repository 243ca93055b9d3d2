"""The vectorized reader: a block of JSON lines -> normalized rows, without a Python call per line.

DuckDB parses each line twice (``json_structure`` once, ``json_extract`` of every needed path
once); Polars expressions then build the same columns the per-line normalizer builds. Only lines
whose meaning is certain are taken: a message of type track/page/screen/alias with string
fields, canonical JSON text (no ``\\u`` escapes or control characters, numbers printed the same by
Python and DuckDB), no duplicate keys, and a shape (see :mod:`audience_pipeline.ingest.shapes`)
whose property and context paths the reader can order. Every other line is handed back to the
caller for :class:`audience_pipeline.ingest.normalize.Normalizer` (quarantine reasons included),
so the fast path never changes a meaning, only the time it takes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import orjson
import polars as pl
import pyarrow as pa

from audience_pipeline.ingest.schema import EVENTS_COLUMNS, ID_STRUCT, UTC_US, empty_frame
from audience_pipeline.ingest.shapes import (
    FAST_TYPES,
    NOT_OK,
    PAGE_FILLS,
    STRING_FIELDS,
    Path,
    PathOrder,
    Shape,
    analyse,
)
from audience_pipeline.message_types import CALL_EVENT_NAMES
from audience_pipeline.spec.models import SpaceConfig

MAX_PATHS = 400  # per source and block; shapes beyond it take the per-line path
MAX_CACHED_SHAPES = 50_000  # analysed structures kept per file
_ASCII_SPACE = " \t\n\r\x0b\x0c"  # bytes.isspace(): what makes a line blank
# A number Python and DuckDB may print differently (exponent, 16+ digits, tiny, negative zero),
# or that orjson reads inexactly: its line takes the per-line path. Strings may match too
# (e.g. "a,1e5"): that only costs speed.
_ODD_NUMBER = r"[:\[,]\s*(?:-?[0-9.]+[eE]|-?(?:[0-9]\.?){16}|-?0\.0000|-0)"
_ODD_TEXT = r"[\x00-\x1f]"  # raw control characters (invalid JSON, or read differently)
# What DuckDB reads but Python refuses: NaN / Infinity, trailing commas.
_ODD_SYNTAX = r"[:\[,]\s*-?(?:[Nn]a[Nn]|[Ii]nf)|,\s*[}\]]"
# The ISO form the fast path reads itself (year 9999 may overflow at the UTC conversion, and
# other forms of fromisoformat go per line): date, hour, minute, second, fraction, offset.
_TIMESTAMP = (
    r"^((?:[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-[0-9]{2}-[0-9]{2})"
    r"T([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])"
    r"(?:\.([0-9]{1,6}))?(Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?$"
)
_UNESCAPE = (
    ['\\"', "\\\\", "\\/", "\\n", "\\r", "\\t", "\\b", "\\f"],
    ['"', "\\", "/", "\n", "\r", "\t", "\b", "\f"],
)


def _pointer(path: Path) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in path)


def _utf8(line: bytes) -> str | None:
    try:
        return line.decode()
    except UnicodeDecodeError:
        return None


def block_frame(block: list[bytes], *, first_line: int, first_seq: int) -> pl.DataFrame:
    """Non-blank lines of a block: seq, line, raw bytes, text (null when not UTF-8).

    Blank lines (empty or ASCII whitespace, as ``bytes.isspace``) take a line number but no seq.
    """
    raw = pl.Series("raw", block, dtype=pl.Binary)
    try:
        b"\n".join(block).decode()
        text = raw.cast(pl.String)
    except UnicodeDecodeError:  # rare: find the lines that are not UTF-8 (they go per line)
        text = pl.Series([_utf8(line) for line in block], dtype=pl.String)
    frame = pl.DataFrame([raw, text.alias("text")]).with_columns(
        line=pl.int_range(first_line, first_line + len(block), dtype=pl.Int64),
    )
    blank = (pl.col("raw").bin.size() == 0) | (
        pl.col("text").str.strip_chars(_ASCII_SPACE) == ""
    ).fill_null(False)
    frame = frame.filter(~blank)
    return frame.select(
        pl.int_range(first_seq, first_seq + frame.height, dtype=pl.Int64).alias("seq"),
        "line",
        "raw",
        pl.col("text").str.strip_chars_end("\r"),
    )


class FastReader:
    """Reads blocks of one file's lines; keeps its DuckDB connection and shape cache."""

    def __init__(self, space: SpaceConfig, source: str) -> None:
        self.space = space
        self.source = source
        self._shapes: dict[str, Shape] = {}
        self._con = duckdb.connect()
        threads = os.environ.get("AUDIENCE_PIPELINE_INGEST_THREADS")
        if threads:
            self._con.execute("SET threads = ?", [int(threads)])
        blocked = {value.lower() for value in space.blocked_values}
        blocked.add("")
        self._blocked = sorted(blocked)

    def close(self) -> None:
        """Close the DuckDB connection."""
        self._con.close()

    def read(self, lines: pl.DataFrame) -> pl.DataFrame:
        """The events rows (EVENTS_COLUMNS) of the lines the fast path takes, by seq.

        ``lines`` has columns seq, line and text (non-blank UTF-8 lines); the caller sends the
        lines whose seq is not in the result through the per-line normalizer.
        """
        if not self._supported() or lines.height == 0:
            return empty_frame(EVENTS_COLUMNS)
        con = self._con
        lines = lines.select("seq", "line", "text")
        con.register("lines", lines)
        try:
            structures = con.sql("SELECT try(json_structure(text)) AS structure FROM lines").pl()
        finally:
            con.unregister("lines")
        lines = lines.with_columns(structures.get_column("structure"))
        shapes = self._shape_table(lines.get_column("structure"))
        orders = {"properties": PathOrder(MAX_PATHS), "context": PathOrder(MAX_PATHS)}
        admitted: dict[str, Shape] = {}
        for text, shape in shapes.items():
            if not shape.ok:
                continue
            before = {source: list(order.paths) for source, order in orders.items()}
            if all(order.admit(getattr(shape, source)) for source, order in orders.items()):
                admitted[text] = shape
            else:  # one source refused it: the other keeps no trace of it
                for source, order in orders.items():
                    order.paths = before[source]
        paths = self._paths(orders)
        pointers = [_pointer(path) for path in paths]
        candidates = lines.filter(pl.col("structure").is_in(list(admitted)))
        con.register("candidates", candidates.select("text"))
        try:
            extracted = (
                con.sql(
                    "SELECT json_extract(text, $paths) AS v FROM candidates",
                    params={"paths": pointers},
                )
                .pl()
                .get_column("v")
            )
        finally:
            con.unregister("candidates")
        frame = candidates.with_columns(
            extracted.list.to_struct(fields=[f"v{i}" for i in range(len(paths))]).alias("v")
        ).unnest("v")
        return self._build(frame, paths, orders, admitted)

    def _shape_table(self, structures: pl.Series) -> dict[str, Shape]:
        found: dict[str, Shape] = {}
        for text in structures.drop_nulls().unique(maintain_order=True).to_list():
            shape = self._shapes.get(text)
            if shape is None:
                if len(self._shapes) >= MAX_CACHED_SHAPES:
                    self._shapes.clear()
                try:
                    shape = analyse(text, self.space)
                except (ValueError, RecursionError):
                    shape = NOT_OK
                self._shapes[text] = shape
            found[text] = shape
        return found

    def _paths(self, orders: dict[str, PathOrder]) -> list[Path]:
        fixed: list[Path] = [(field,) for field in STRING_FIELDS]
        fixed += [("context", "page", key) for key in PAGE_FILLS]
        for spec in self.space.identifiers:
            fixed += [tuple(dotted.split(".")) for dotted in spec.paths]
        fixed = list(dict.fromkeys(fixed))
        for source in ("properties", "context"):
            fixed += [(source, *path) for path in orders[source].paths]
        return fixed

    def _build(
        self,
        frame: pl.DataFrame,
        paths: list[Path],
        orders: dict[str, PathOrder],
        admitted: dict[str, Shape],
    ) -> pl.DataFrame:
        column = {path: f"v{i}" for i, path in enumerate(paths)}
        frame = frame.join(_presence_table(admitted, orders), on="structure", how="left")

        def value(path: Path) -> pl.Expr:
            return pl.col(column[path])

        fields = _Fields.of(value)
        slots = self._identifier_slots(value)
        frame = frame.filter(self._accept(fields, value, slots))
        frame = frame.with_columns(
            [slot.alias(f"_id{index}") for index, (_, slot) in enumerate(slots)]
        )
        frame = frame.with_columns(_id_lists(frame, [id_type for id_type, _ in slots]))
        layout = _layout(admitted)
        properties = self._object_text(
            "properties", orders["properties"].paths, value, fields.is_page, layout
        )
        context = self._object_text("context", orders["context"].paths, value, None, layout)
        events = frame.select(
            pl.col("seq").cast(pl.Int64),
            _string(value(("messageId",))).alias("message_id"),
            fields.msg_type.alias("type"),
            fields.event_name().alias("event"),
            fields.event_timestamp().alias("timestamp"),
            fields.received.alias("received_at"),
            pl.col("_ids").alias("ids"),
            pl.when(fields.msg_type == "alias")
            .then(self._previous_id(value))
            .otherwise(None)
            .alias("previous_id"),
            pl.lit(None, pl.String).alias("group_id"),
            properties.alias("properties"),
            context.alias("context"),
            pl.lit(self.source).alias("source"),
            pl.col("line").cast(pl.Int64),
        )
        return events.select(pl.col(name).cast(dtype) for name, dtype in EVENTS_COLUMNS.items())

    def _previous_id(self, value: Callable[[Path], pl.Expr]) -> pl.Expr:
        previous = _strip(_string(value(("previousId",))))
        return (
            pl.when(previous.str.to_lowercase().is_in(self._blocked)).then(None).otherwise(previous)
        )

    def _accept(
        self,
        fields: _Fields,
        value: Callable[[Path], pl.Expr],
        slots: list[tuple[str, pl.Expr]],
    ) -> pl.Expr:
        """Lines this reader takes exactly; the rest go to the per-line normalizer."""
        id_paths = [
            tuple(dotted.split(".")) for spec in self.space.identifiers for dotted in spec.paths
        ]
        ascii_ids = pl.all_horizontal(
            [
                ~_string(value(path)).str.contains(r"[^\x00-\x7f]").fill_null(False)
                for path in [*id_paths, ("previousId",)]
            ]
        )
        text = pl.col("text")
        return (
            fields.msg_type.is_in(list(FAST_TYPES)).fill_null(False)
            & (text.str.count_matches('":', literal=True) == pl.col("_keys"))
            & ~text.str.contains("\\u", literal=True)
            & ~text.str.contains(_ODD_TEXT)
            & ~text.str.contains(_ODD_NUMBER)
            & ~text.str.contains(_ODD_SYNTAX)
            & fields.timestamps_ok()
            & (~fields.is_track | (fields.event_text.str.len_bytes() > 0).fill_null(False))
            & pl.any_horizontal([slot.is_not_null() for _, slot in slots])
            & ascii_ids
        )

    def _identifier_slots(self, value: Callable[[Path], pl.Expr]) -> list[tuple[str, pl.Expr]]:
        """(id type, text) per slot, in the order normalize.identifiers sorts them.

        Slots of one identifier type are its paths' values sorted and deduped (two paths: the
        smaller, then the larger when it differs); types follow by priority.
        """
        slots: list[tuple[str, pl.Expr]] = []
        for spec in sorted(self.space.identifiers, key=lambda s: s.priority):
            texts = []
            for dotted in spec.paths:
                text = _strip(_string(value(tuple(dotted.split(".")))))
                if spec.type == "email":
                    text = text.str.to_lowercase()
                blocked = text.str.to_lowercase().is_in(self._blocked)
                texts.append(pl.when(~blocked).then(text))
            if len(texts) == 1:
                slots.append((spec.type, texts[0]))
                continue
            first, second = texts
            low = pl.min_horizontal(first, second)
            high = pl.max_horizontal(first, second)
            slots.append((spec.type, low))
            slots.append((spec.type, pl.when(high != low).then(high)))
        return slots

    def _supported(self) -> bool:
        """Identifier rules the slot sort handles: one type per priority, at most two paths."""
        priorities = [spec.priority for spec in self.space.identifiers]
        return len(set(priorities)) == len(priorities) and all(
            len(spec.paths) <= 2 for spec in self.space.identifiers
        )

    def _object_text(
        self,
        source: str,
        paths: list[Path],
        value: Callable[[Path], pl.Expr],
        fills: pl.Expr | None,
        layout: _Layout,
    ) -> pl.Expr:
        parts: list[pl.Expr] = []
        for index, path in enumerate(paths):
            key = orjson.dumps(".".join(path)).decode() + ":"
            full = (source, *path)
            kinds = layout.kinds.get(full, set())
            tagged = _tagged_json(value(full), next(iter(kinds)) if len(kinds) == 1 else None)
            part = pl.lit(key) + tagged
            if full not in layout.everywhere:
                part = pl.when(pl.col(f"_{source}_{index}")).then(part)
            parts.append(part)
        if fills is not None:
            have = {path[0]: i for i, path in enumerate(paths) if len(path) == 1}
            fill_sources: list[tuple[str, pl.Expr]] = [("name", value(("name",)))]
            fill_sources += [(k, value(("context", "page", k))) for k in PAGE_FILLS]
            for key, raw in fill_sources:
                absent = ~pl.col(f"_{source}_{have[key]}") if key in have else pl.lit(True)
                if key != "name":
                    absent = absent & pl.col("_has_page")
                use = fills & absent & _is_json_string(raw)
                literal = orjson.dumps(key).decode() + ":"
                parts.append(pl.when(use).then(pl.lit(literal) + _tagged_json(raw)))
        if not parts:
            return pl.lit("{}")
        return pl.lit("{") + pl.concat_str(parts, separator=",", ignore_nulls=True) + pl.lit("}")


def _id_lists(frame: pl.DataFrame, types: list[str]) -> pl.Series:
    """The ids column from the slot columns ``_id0``, ``_id1``... (nulls left out).

    Built as one Arrow list array (offsets + values): list operations per row in Polars were
    the slowest part of the reader.
    """
    rows = pl.int_range(pl.len(), dtype=pl.Int64).alias("row")
    long = pl.concat(
        [
            frame.select(
                rows,
                pl.lit(index, pl.Int32).alias("slot"),
                pl.lit(id_type, pl.String).alias("id_type"),
                pl.col(f"_id{index}").alias("id_value"),
            )
            for index, id_type in enumerate(types)
        ]
    )
    long = long.filter(pl.col("id_value").is_not_null()).sort("row", "slot")
    bounds = pl.Series(range(frame.height + 1), dtype=pl.Int64)
    offsets = long.get_column("row").search_sorted(bounds, side="left").cast(pl.Int32)
    values = long.select(pl.struct("id_type", "id_value")).to_series().to_arrow()
    lists = pa.ListArray.from_arrays(offsets.to_arrow(), values)
    series = pl.from_arrow(lists)
    assert isinstance(series, pl.Series)
    return series.alias("_ids").cast(pl.List(ID_STRUCT))


def _presence_table(admitted: dict[str, Shape], orders: dict[str, PathOrder]) -> pl.DataFrame:
    """Per structure: its key count, page flag and which ordered paths it holds."""
    data: dict[str, list[object]] = {
        "structure": list(admitted),
        "_keys": [shape.keys for shape in admitted.values()],
        "_has_page": [shape.has_page for shape in admitted.values()],
    }
    for source, order in orders.items():
        for index, path in enumerate(order.paths):
            data[f"_{source}_{index}"] = [
                path in set(getattr(shape, source)) for shape in admitted.values()
            ]
    schema: dict[str, pl.DataType] = {name: pl.Boolean() for name in data}
    schema.update(structure=pl.String(), _keys=pl.UInt32())
    return pl.DataFrame(data, schema=schema)


def _is_json_string(raw: pl.Expr) -> pl.Expr:
    return raw.str.starts_with('"').fill_null(False)


def _string(raw: pl.Expr) -> pl.Expr:
    """The text of a JSON string value; null for anything else."""
    body = raw.str.slice(1, raw.str.len_chars() - 2)
    return pl.when(_is_json_string(raw)).then(body.str.replace_many(*_UNESCAPE))


def _strip(text: pl.Expr) -> pl.Expr:
    return text.str.strip_chars(_ASCII_SPACE)


def _number_text(raw: pl.Expr) -> pl.Expr:
    # values.number_text: whole doubles lose ".0" (DuckDB prints doubles with a fraction).
    return raw.str.strip_suffix(".0")


@dataclass(frozen=True)
class _Layout:
    """What the accepted shapes of a block say about each (source, *path)."""

    kinds: dict[Path, set[str]]  # the flat tags its values take
    everywhere: set[Path]  # paths every accepted shape holds (no presence test needed)


def _tagged_json(raw: pl.Expr, kind: str | None = None) -> pl.Expr:
    """JSON text of the flat-tagged value (tagging.flat_tag_dict) of a JSON value's text.

    ``kind``: the one tag every accepted shape gives the path (s, n, b, z, o), which spares
    the test of the first character; None when they differ.
    """
    if kind == "s":
        return pl.lit('"s') + raw.str.slice(1)
    if kind == "n":
        return pl.lit('"n') + _number_text(raw) + pl.lit('"')
    if kind == "z":
        return pl.lit("null")
    if kind == "o":
        return pl.lit('"o') + raw.str.replace_many(["\\", '"'], ["\\\\", '\\"']) + pl.lit('"')
    first = raw.str.head(1)
    return (
        pl.when(first == '"')
        .then(pl.lit('"s') + raw.str.slice(1))
        .when(first.is_in(["{", "["]))
        .then(pl.lit('"o') + raw.str.replace_many(["\\", '"'], ["\\\\", '\\"']) + pl.lit('"'))
        .when(first == "t")
        .then(pl.lit('"btrue"'))
        .when(first == "f")
        .then(pl.lit('"bfalse"'))
        .when(first == "n")
        .then(pl.lit("null"))
        .otherwise(pl.lit('"n') + _number_text(raw) + pl.lit('"'))
    )


def _timestamp(text: pl.Expr) -> pl.Expr:
    """Microseconds since the epoch of an ISO text, like datetime.fromisoformat; else null."""
    parts = text.str.extract_groups(_TIMESTAMP)
    date = parts.struct.field("1")
    clock = parts.struct.field("2") + ":" + parts.struct.field("3") + ":" + parts.struct.field("4")
    base = (date + " " + clock).str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us", strict=False)
    fraction = parts.struct.field("5").str.pad_end(6, "0").cast(pl.Int64).fill_null(0)
    zone = parts.struct.field("6")
    sign = pl.when(zone.str.starts_with("-")).then(-1).otherwise(1)
    offset_minutes = (
        zone.str.slice(1, 2).cast(pl.Int64, strict=False) * 60
        + zone.str.slice(4, 2).cast(pl.Int64, strict=False)
    ).fill_null(0) * sign
    micros = base.dt.epoch("us") + fraction - offset_minutes * 60_000_000
    return micros.cast(pl.Int64).cast(UTC_US)


@dataclass(frozen=True)
class _Fields:
    """Expressions over one chunk's extracted top-level fields, shared by accept and select."""

    msg_type: pl.Expr
    event_text: pl.Expr
    raw_ts: pl.Expr
    raw_received: pl.Expr
    timestamp: pl.Expr
    received: pl.Expr

    @classmethod
    def of(cls, value: Callable[[Path], pl.Expr]) -> _Fields:
        return cls(
            msg_type=_string(value(("type",))),
            event_text=_string(value(("event",))),
            raw_ts=value(("timestamp",)),
            raw_received=value(("receivedAt",)),
            timestamp=_timestamp(_string(value(("timestamp",)))),
            received=_timestamp(_string(value(("receivedAt",)))),
        )

    @property
    def is_track(self) -> pl.Expr:
        return self.msg_type == "track"

    @property
    def is_page(self) -> pl.Expr:
        return self.msg_type.is_in(["page", "screen"])

    def timestamps_ok(self) -> pl.Expr:
        """A parseable timestamp (or receivedAt in its place), and receivedAt parseable if given."""
        ts_ok = (
            pl.when(_is_json_string(self.raw_ts))
            .then(self.timestamp.is_not_null())
            .otherwise(_is_json_string(self.raw_received) & self.received.is_not_null())
        )
        received_ok = ~_is_json_string(self.raw_received) | self.received.is_not_null()
        return ts_ok.fill_null(False) & received_ok.fill_null(False)

    def event_name(self) -> pl.Expr:
        return (
            pl.when(self.is_track)
            .then(self.event_text)
            .when(self.msg_type == "page")
            .then(pl.lit(CALL_EVENT_NAMES["page"]))
            .when(self.msg_type == "screen")
            .then(pl.lit(CALL_EVENT_NAMES["screen"]))
            .otherwise(None)
        )

    def event_timestamp(self) -> pl.Expr:
        return pl.when(_is_json_string(self.raw_ts)).then(self.timestamp).otherwise(self.received)


def _layout(admitted: dict[str, Shape]) -> _Layout:
    """The kinds each path takes across the admitted shapes, and the paths every shape has."""
    kinds: dict[Path, set[str]] = {}
    held: dict[Path, int] = {}
    for shape in admitted.values():
        for path, kind in (shape.kinds or {}).items():
            kinds.setdefault(path, set()).add(kind)
            held[path] = held.get(path, 0) + 1
    everywhere = {path for path, count in held.items() if count == len(admitted)}
    return _Layout(kinds, everywhere)
