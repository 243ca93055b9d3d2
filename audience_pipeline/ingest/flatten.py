"""Flattened property and context columns (``p.<path>``, ``c.<path>``) beside the JSON text.

Definitions name a few paths out of every event (`price`, `context.device.type`); reading them
from per-path columns costs a Parquet column decode, while a JSON lookup would parse every
event's text once per path. The JSON columns stay complete; the flat columns are an index of
the common keys, so paths beyond the cap fall back to a JSON lookup in the engine.
"""

from __future__ import annotations

import polars as pl

MAX_FLAT_COLUMNS = 200  # per source; beyond it the engine reads the JSON text
DECODE_ROWS = 200_000
PREFIXES = {"properties": "p.", "context": "c."}


def add_flat_columns(events: pl.DataFrame, *, limit: int = MAX_FLAT_COLUMNS) -> pl.DataFrame:
    """One String column of flat-tagged values per dotted key of properties and context."""
    if events.height == 0:
        return events
    added = []
    for source, prefix in PREFIXES.items():
        flat = _flat_frame(events.get_column(source), limit)
        if flat is not None:
            added += [flat.get_column(name).alias(prefix + name) for name in flat.columns]
    return events.with_columns(added) if added else events


def decode_fields(texts: pl.Series) -> pl.DataFrame:
    """The String fields of one slice of flat-tagged JSON objects, in order of first appearance.

    A key that is null in every row of the slice is left out (its column would be all null).
    """
    decoded = texts.str.json_decode(infer_schema_length=None)
    if not isinstance(decoded.dtype, pl.Struct):
        return pl.DataFrame()
    # Fields are taken as Series, not selected by name: a key is any JSON text, and Polars
    # reads the names "*" and "^...$" in select() as a wildcard and a regex.
    unnested = decoded.struct.unnest()
    return pl.DataFrame(
        [unnested.to_series(i) for i, f in enumerate(decoded.dtype.fields) if f.dtype == pl.String]
    )


def _flat_frame(texts: pl.Series, limit: int) -> pl.DataFrame | None:
    """The String fields of the decoded objects, decoded a slice at a time.

    A whole-column decode holds every field of every row at once (about 5 KB per event on
    Segment-like context, tens of GB at 10M events); slices keep that to one slice. Flat-tagged
    values are always strings, so a key absent from a slice is simply null in its rows.
    """
    parts: list[tuple[int, pl.DataFrame]] = []
    for start in range(0, texts.len(), DECODE_ROWS):
        chunk = texts.slice(start, DECODE_ROWS)
        parts.append((chunk.len(), decode_fields(chunk)))
    names: dict[str, None] = {}
    for _, part in parts:
        names.update(dict.fromkeys(part.columns))
    if not names or len(names) > limit:
        return None
    return pl.concat(
        [
            pl.DataFrame().select(
                part.get_column(name) if name in part.columns
                else pl.repeat(None, height, dtype=pl.String).alias(name)
                for name in names
            )
            for height, part in parts
        ]
    )  # fmt: skip
