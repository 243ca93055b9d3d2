"""Parquet parts of every file -> the three normalized tables on disk, streamed.

Memory stays at a few parts of events (plus the three thin dedupe columns of all events),
whatever the number of events: duplicates are found on seq/message_id/received_at, then the
parts, already validated and flattened by the readers (:mod:`audience_pipeline.ingest.parts`),
are filtered, given the flat columns of the whole table and written by Polars' streaming sink.

When a reader found more than ``MAX_FLAT_COLUMNS`` keys of a source in one part (its parts
then carry no flat columns), the events are read back in slices and decoded here instead, as
:func:`audience_pipeline.ingest.flatten.add_flat_columns` does over the deduped table.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import polars as pl

from audience_pipeline.ingest.dedupe import duplicate_seqs
from audience_pipeline.ingest.flatten import DECODE_ROWS, MAX_FLAT_COLUMNS, PREFIXES, decode_fields
from audience_pipeline.ingest.parts import FileParts
from audience_pipeline.ingest.schema import (
    EVENTS_COLUMNS,
    QUARANTINE_COLUMNS,
    TRAIT_UPDATES_COLUMNS,
    empty_frame,
)
from audience_pipeline.ingest.storage import (
    EVENTS_FILE,
    QUARANTINE_FILE,
    TRAIT_UPDATES_FILE,
    stats_metadata,
)

DEDUPE_KEYS = ("seq", "message_id", "received_at")
# Slices decoded at once. Each holds a slice of events and its decoded columns: at 2M events two
# took the main process from 1.24 to 2.03 GB, too close to the 2.5 GB budget at 10M to be the
# default (docs/benchmarks.md, "Ingestion"); AUDIENCE_PIPELINE_DECODE_THREADS=2 trades it for time.
DECODE_THREADS = max(1, int(os.environ.get("AUDIENCE_PIPELINE_DECODE_THREADS", "1") or 1))


@dataclass(frozen=True)
class _Part:
    path: Path
    offset: int  # added to the file-local seq: the lines of the files before


@dataclass(frozen=True)
class _Slice:
    path: Path
    columns: frozenset[str]  # the flat columns differ from slice to slice
    rows: int


def _parts(files: list[FileParts], table: str) -> list[_Part]:
    offsets = accumulate((file.lines for file in files), initial=0)
    return [
        _Part(path, offset)
        for file, offset in zip(files, offsets, strict=False)
        for path in file.of(table)
    ]


def _scan(parts: list[_Part], columns: dict[str, pl.DataType]) -> pl.LazyFrame:
    if not parts:
        return empty_frame(columns).lazy()
    # Event parts differ in their flat columns: only the table's own columns are stacked.
    return pl.concat(
        [
            pl.scan_parquet(p.path).select(list(columns)).with_columns(pl.col("seq") + p.offset)
            for p in parts
        ]
    )


def _not_dropped(dropped: pl.Series) -> pl.Expr:
    return ~pl.col("seq").is_in(dropped.implode())


def _deduped_slices(parts: list[_Part], dropped: pl.Series) -> Iterator[pl.DataFrame]:
    """Surviving events in seq order, in slices of exactly DECODE_ROWS rows (the last: less).

    The slices are the ones a decode of the whole deduped table takes (flatten._flat_frame),
    so flat columns come out in the same order.
    """
    held: list[pl.DataFrame] = []
    count = 0
    for part in parts:
        frame = pl.read_parquet(part.path, columns=list(EVENTS_COLUMNS))
        frame = frame.cast(pl.Schema(EVENTS_COLUMNS))
        frame = frame.with_columns(pl.col("seq") + part.offset)
        if dropped.len():
            frame = frame.filter(_not_dropped(dropped))
        held.append(frame)
        count += frame.height
        while count >= DECODE_ROWS:
            whole = pl.concat(held)
            yield whole.head(DECODE_ROWS)
            rest = whole.slice(DECODE_ROWS)
            held, count = [rest], rest.height
    if count:
        yield pl.concat(held)


def _decode_slice(
    index: int, frame: pl.DataFrame, work: Path, skip: frozenset[str]
) -> tuple[_Slice, dict[str, list[str]]]:
    """Add one slice's flat columns, write it; the flat names of each prefix.

    (The readers validated the rows: :mod:`audience_pipeline.ingest.parts`.)
    """
    flat: list[pl.Series] = []
    names: dict[str, list[str]] = {}
    for source, prefix in PREFIXES.items():
        if prefix in skip:
            continue
        fields = decode_fields(frame.get_column(source))
        names[prefix] = fields.columns
        flat += [fields.get_column(name).alias(prefix + name) for name in fields.columns]
    frame = frame.with_columns(flat)
    path = work / f"slice-{index:05d}.parquet"
    frame.write_parquet(path, compression="lz4", statistics=False)
    return _Slice(path, frozenset(frame.columns), frame.height), names


def _write_slices(
    parts: list[_Part], dropped: pl.Series, work: Path
) -> tuple[list[_Slice], list[str]]:
    """Event slices with their flat columns on disk; the flat columns to keep (sorted).

    Only when a reader found a part with too many keys (``FileParts.flat_over``). A source (properties, context) with more keys than MAX_FLAT_COLUMNS gets no flat columns
    (flatten.add_flat_columns), so its decoding stops once it is over. Slices may be decoded
    DECODE_THREADS at a time (Polars' JSON decode of one column runs on one core).
    """
    names: dict[str, dict[str, None]] = {prefix: {} for prefix in PREFIXES.values()}
    slices: list[_Slice] = []
    pending: deque[Future[tuple[_Slice, dict[str, list[str]]]]] = deque()

    def collect() -> None:
        piece, found = pending.popleft().result()
        slices.append(piece)
        for prefix, columns in found.items():
            names[prefix].update(dict.fromkeys(columns))

    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        for index, frame in enumerate(_deduped_slices(parts, dropped)):
            skip = frozenset(p for p, seen in names.items() if len(seen) > MAX_FLAT_COLUMNS)
            pending.append(pool.submit(_decode_slice, index, frame, work, skip))
            if len(pending) >= DECODE_THREADS:
                collect()
        while pending:
            collect()
    kept = [
        prefix + name
        for prefix, seen in names.items()
        if len(seen) <= MAX_FLAT_COLUMNS
        for name in sorted(seen)
    ]
    return slices, kept


def _rows(paths: list[Path]) -> int:
    return sum(pl.scan_parquet(path).select(pl.len()).collect().item() for path in paths)


def _sink_events(slices: list[_Slice], kept: list[str], path: Path, stats: dict[str, int]) -> None:
    metadata = stats_metadata(stats)
    if not slices:
        empty_frame(EVENTS_COLUMNS).write_parquet(path, compression="zstd", metadata=metadata)
        return
    missing = pl.lit(None, pl.String)
    scans = [
        pl.scan_parquet(piece.path).select(
            *EVENTS_COLUMNS,
            *[pl.col(name) if name in piece.columns else missing.alias(name) for name in kept],
        )
        for piece in slices
    ]
    pl.concat(scans).sink_parquet(path, compression="zstd", metadata=metadata)


def _kept_columns(files: list[FileParts], parts: list[_Part], dropped: pl.Series) -> list[str]:
    """The flat columns of the deduped table, sorted per source (flatten's order).

    A column is kept when some surviving row has a value. Only a column with no more values
    than there are dropped copies can lose them all to the dedupe; those few are counted again
    over the surviving rows.
    """
    counts: dict[str, int] = {}
    for file in files:
        for name, count in file.flat_counts.items():
            counts[name] = counts.get(name, 0) + count
    doubtful = [name for name, count in counts.items() if count <= dropped.len()]
    if doubtful:
        survivors = _surviving_counts(parts, dropped, set(doubtful))
        for name in doubtful:
            counts[name] = survivors.get(name, 0)
    kept: list[str] = []
    for prefix in PREFIXES.values():
        names = sorted(name for name, count in counts.items() if count and name.startswith(prefix))
        if len(names) <= MAX_FLAT_COLUMNS:
            kept += names
    return kept


def _surviving_counts(parts: list[_Part], dropped: pl.Series, names: set[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for part in parts:
        held = [name for name in pl.read_parquet_schema(part.path) if name in names]
        if not held:
            continue
        frame = pl.read_parquet(part.path, columns=["seq", *held])
        frame = frame.with_columns(pl.col("seq") + part.offset).filter(_not_dropped(dropped))
        for name in held:
            column = frame.get_column(name)
            counts[name] = counts.get(name, 0) + column.len() - column.null_count()
    return counts


def _sink_parts(
    parts: list[_Part], dropped: pl.Series, kept: list[str], path: Path, stats: dict[str, int]
) -> None:
    """The deduped event parts with the columns ``kept`` (null where a part has none)."""
    metadata = stats_metadata(stats)
    if not parts:
        empty_frame(EVENTS_COLUMNS).write_parquet(path, compression="zstd", metadata=metadata)
        return
    missing = pl.lit(None, pl.String)
    scans = []
    for part in parts:
        held = set(pl.read_parquet_schema(part.path))
        scan = pl.scan_parquet(part.path).with_columns(pl.col("seq") + part.offset)
        if dropped.len():
            scan = scan.filter(_not_dropped(dropped))
        scans.append(
            scan.select(
                *[pl.col(name).cast(dtype) for name, dtype in EVENTS_COLUMNS.items()],
                *[pl.col(name) if name in held else missing.alias(name) for name in kept],
            )
        )
    pl.concat(scans).sink_parquet(path, compression="zstd", metadata=metadata)


def _write_events(
    files: list[FileParts], dropped: pl.Series, path: Path, work: Path, stats: dict[str, int]
) -> dict[str, int]:
    """Write events.parquet without the dropped copies; the stats with messages added."""
    events = _parts(files, "events")
    stats = {**stats, "duplicates": dropped.len()}
    if any(file.flat_over for file in files):
        slices, kept = _write_slices(events, dropped, work)
        stats["messages"] = sum(piece.rows for piece in slices)
        _sink_events(slices, kept, path, _ordered(stats))
        return stats
    stats["messages"] = sum(file.events for file in files) - dropped.len()
    kept = _kept_columns(files, events, dropped)
    _sink_parts(events, dropped, kept, path, _ordered(stats))
    return stats


_STATS_ORDER = (
    "lines_read",
    "messages",
    "quarantined",
    "duplicates",
    "files",
    "bytes",
    "blank_lines",
    "unreadable_files",
)


def _ordered(stats: dict[str, int]) -> dict[str, int]:
    return {key: stats[key] for key in _STATS_ORDER}


def assemble(files: list[FileParts], directory: Path, work: Path) -> dict[str, int]:
    """Write events, trait_updates and quarantine Parquet into ``directory`` from the parts.

    Args:
        files: every input file's parts, in read order (``seq`` follows it).
        directory: where the three tables go (as ``storage.write_normalized`` writes them).
        work: scratch space for the event slices.

    Returns:
        The run's stats (``IngestResult.stats``).

    Raises:
        pandera.errors.SchemaErrors: the events table broke its contract (a bug, not bad input).
    """
    thin = _scan(_parts(files, "events"), EVENTS_COLUMNS).select(DEDUPE_KEYS)
    dropped = duplicate_seqs(thin)
    quarantine = [path for file in files for path in file.of("quarantine")]
    stats = {
        "lines_read": sum(file.lines for file in files),
        "quarantined": _rows(quarantine),
        "files": len(files),
        "bytes": sum(file.size for file in files),
        "blank_lines": sum(file.blank for file in files),
        "unreadable_files": sum(1 for file in files if file.unreadable),
    }
    stats = _ordered(_write_events(files, dropped, directory / EVENTS_FILE, work, stats))
    traits = _scan(_parts(files, "trait_updates"), TRAIT_UPDATES_COLUMNS)
    if dropped.len():
        traits = traits.filter(_not_dropped(dropped))
    traits.sink_parquet(directory / TRAIT_UPDATES_FILE, compression="zstd")
    quarantined = (
        pl.concat([pl.scan_parquet(path) for path in quarantine])
        if quarantine
        else empty_frame(QUARANTINE_COLUMNS).lazy()
    )
    quarantined.sink_parquet(directory / QUARANTINE_FILE, compression="zstd")
    return stats
