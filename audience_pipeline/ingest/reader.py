"""Reading one input file into normalized frames, handed over a chunk at a time."""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from audience_pipeline.ingest.fast import FastReader, block_frame
from audience_pipeline.ingest.files import (
    BytesRead,
    DamagedFileError,
    UnreadableFileError,
    is_parquet,
    line_blocks,
    parquet_rows,
    row_json,
)
from audience_pipeline.ingest.frames import events_frame, quarantine_frame, trait_updates_frame
from audience_pipeline.ingest.limits import NESTED_TOO_DEEP
from audience_pipeline.ingest.native import Block, NativeReader, supported
from audience_pipeline.ingest.normalize import INVALID_JSON, Columns, InexactInteger, Normalizer
from audience_pipeline.ingest.schema import (
    EVENTS_COLUMNS,
    QUARANTINE_COLUMNS,
    TRAIT_UPDATES_COLUMNS,
    empty_frame,
)
from audience_pipeline.spec.models import SpaceConfig

logger = logging.getLogger(__name__)

CHUNK_LINES = 500_000
BLOCK_BYTES = 1 << 25  # a block of lines the vectorized and native readers take at once
FAST_INGEST_ENV = "AUDIENCE_PIPELINE_FAST_INGEST"
READER_ENV = "AUDIENCE_PIPELINE_INGEST_READER"
READERS = ("native", "per_line", "vectorized")
# The per-line reader stays the default: on this project's data the native one is exact but not
# faster yet (docs/benchmarks.md, "Ingestion").
DEFAULT_READER = "per_line"
UNREADABLE_FILE = "unreadable file: "
DAMAGED_REST = "unreadable rest of file: "


@dataclass(frozen=True)
class FileResult:
    """One file's rows; ``seq`` is local to the file (0 = its first non-blank line)."""

    source: str
    events: pl.DataFrame
    trait_updates: pl.DataFrame
    quarantine: pl.DataFrame
    lines: int  # non-blank lines (Parquet rows): the seq numbers the file used
    size: int  # bytes on disk
    blank: int = 0  # blank lines (no seq, no row anywhere)


def fast_reader_enabled() -> bool:
    """Whether JSON lines go through the vectorized reader (``AUDIENCE_PIPELINE_FAST_INGEST=1``).

    Off by default: on this project's 2-core machine it is exact but slower than the per-line
    path (docs/benchmarks.md, "Ingestion").
    """
    return os.environ.get(FAST_INGEST_ENV, "") == "1"


def reader_name(fast: bool | None = None, reader: str | None = None) -> str:
    """Which reader takes JSON lines: one of :data:`READERS`.

    ``reader`` names it; ``fast`` True / False asks for the vectorized / per-line reader; else
    ``AUDIENCE_PIPELINE_INGEST_READER`` names it (``AUDIENCE_PIPELINE_FAST_INGEST=1``: the
    vectorized one), and the default is :data:`DEFAULT_READER`. All give the same tables; they
    differ in speed.
    """
    if reader is not None:
        return reader
    if fast is not None:
        return "vectorized" if fast else "per_line"
    chosen = os.environ.get(READER_ENV, "")
    if chosen in READERS:
        return chosen
    if chosen:
        logger.warning("%s=%s: not one of %s; using the default", READER_ENV, chosen, READERS)
    return "vectorized" if fast_reader_enabled() else DEFAULT_READER


def _reject_constant(name: str) -> Any:
    msg = f"{name} is not JSON"
    raise ValueError(msg)


def _line_text(line: bytes) -> str:
    return line.rstrip(b"\r").decode("utf-8", errors="replace")


Sink = Callable[[str, pl.DataFrame], None]
"""Receives each chunk's frames: (table name, frame), table one of :data:`TABLES`."""

TABLES = ("events", "trait_updates", "quarantine")


class _Chunks:
    """Column lists turned into DataFrames every ``chunk_lines`` rows and handed to a sink."""

    def __init__(self, source: str, chunk_lines: int, sink: Sink) -> None:
        self.source = source
        self.chunk_lines = chunk_lines
        self.sink = sink
        self.cols = Columns()
        self.blank = 0  # blank lines seen (they take a line number, no seq)
        self.fast: list[pl.DataFrame] = []  # events rows of the vectorized reader
        self.fast_traits: list[pl.DataFrame] = []  # trait update rows built elsewhere too
        self.fast_rows = 0

    def add_events(self, frame: pl.DataFrame) -> None:
        """Events rows built elsewhere (the vectorized reader); merged by seq at flush."""
        if frame.height:
            self.fast.append(frame)
            self.fast_rows += frame.height

    def add_traits(self, frame: pl.DataFrame) -> None:
        """Trait update rows built elsewhere; merged by seq (stable) at flush."""
        if frame.height:
            self.fast_traits.append(frame)

    def maybe_flush(self) -> None:
        if len(self.cols) + self.fast_rows >= self.chunk_lines:
            self.flush()

    def flush(self) -> None:
        cols = self.cols
        frames = self.fast
        if cols.rows:
            frames.append(events_frame(cols, self.source))
        if len(frames) == 1:
            self.sink("events", frames[0])
        elif frames:
            self.sink("events", pl.concat(frames).sort("seq"))
        self.fast, self.fast_rows = [], 0
        traits = self.fast_traits
        if cols.traits:
            traits.append(trait_updates_frame(cols))
        if len(traits) == 1:
            self.sink("trait_updates", traits[0])
        elif traits:
            self.sink("trait_updates", pl.concat(traits).sort("seq", maintain_order=True))
        self.fast_traits = []
        if cols.quarantined:
            self.sink("quarantine", quarantine_frame(cols, self.source))
        self.cols = Columns()


def _normalize(
    normalizer: Normalizer, message: Any, seq: int, line: int, cols: Columns
) -> str | None:
    try:
        return normalizer.add(message, seq, line, cols)
    except Exception as exc:  # a bug or an odd value must not fail the run: keep the line
        return _unusable(line, exc)


def _unusable(line: int, exc: Exception) -> str:
    logger.warning("line %d could not be normalized: %r", line, exc)
    return f"unusable message: {exc!r}"


def _slow_line(
    normalizer: Normalizer, text: bytes, seq: int, line: int, cols: Columns
) -> str | None:
    try:
        # The stdlib parser: lenient on odd escapes, and integers of any size stay exact.
        message = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return INVALID_JSON
    except RecursionError:  # valid JSON nested deeper than any parser here goes
        return NESTED_TOO_DEEP
    normalizer.fast_json = False
    try:
        return _normalize(normalizer, message, seq, line, cols)
    finally:
        normalizer.fast_json = True


def _line_reason(normalizer: Normalizer, text: bytes, seq: int, line: int, cols: Columns) -> None:
    """Normalize one non-blank line into ``cols``, or quarantine it there (today's path)."""
    try:
        reason = normalizer.add(orjson.loads(text), seq, line, cols)
    except (orjson.JSONDecodeError, InexactInteger):
        reason = _slow_line(normalizer, text, seq, line, cols)
    except Exception as exc:  # a bug or an odd value must not fail the run
        reason = _unusable(line, exc)
    if reason is not None:
        cols.quarantine(_line_text(text), line, reason)


def _read_lines(
    path: Path, normalizer: Normalizer, chunks: _Chunks, on_bytes: BytesRead | None = None
) -> int:
    seq = 0
    line = 0
    loads = orjson.loads
    add = normalizer.add
    try:
        for block in line_blocks(path, on_bytes=on_bytes):
            cols = chunks.cols
            for text in block:
                line += 1
                if not text or text.isspace():
                    chunks.blank += 1
                    continue
                # The common case inline (this loop runs per line); odd lines take _slow_line.
                try:
                    reason = add(loads(text), seq, line, cols)
                except orjson.JSONDecodeError:
                    reason = _slow_line(normalizer, text, seq, line, cols)
                except InexactInteger:
                    reason = _slow_line(normalizer, text, seq, line, cols)
                except Exception as exc:  # a bug or an odd value must not fail the run
                    reason = _unusable(line, exc)
                if reason is not None:
                    cols.quarantine(_line_text(text), line, reason)
                seq += 1
            chunks.maybe_flush()
    except DamagedFileError as exc:
        _quarantine_damage(chunks.cols, exc, line + 1)
        seq += 1
    return seq


def _quarantine_damage(cols: Columns, exc: DamagedFileError, line: int) -> None:
    """The rest of a file whose compressed stream broke: one row (one line) in the quarantine."""
    logger.warning("input file %s", exc.description)
    cols.quarantine(_line_text(exc.rest), line, DAMAGED_REST + exc.description)


def _read_lines_fast(
    path: Path,
    space: SpaceConfig,
    normalizer: Normalizer,
    chunks: _Chunks,
    on_bytes: BytesRead | None = None,
) -> int:
    """The vectorized reader (:mod:`.fast`); lines it leaves go through the normalizer."""
    reader = FastReader(space, chunks.source)

    def read(lines: pl.DataFrame) -> Block:
        events = reader.read(lines)  # it takes no identify or group: no trait rows
        return Block(events, empty_frame(TRAIT_UPDATES_COLUMNS), events.get_column("seq"))

    try:
        return _read_blocks(path, read, normalizer, chunks, on_bytes)
    finally:
        reader.close()


def _read_lines_native(
    path: Path,
    space: SpaceConfig,
    normalizer: Normalizer,
    chunks: _Chunks,
    on_bytes: BytesRead | None = None,
) -> int:
    """The native reader (:mod:`.native`); lines it leaves go through the normalizer."""
    reader = NativeReader(space, chunks.source, normalizer)
    try:
        return _read_blocks(path, reader.read, normalizer, chunks, on_bytes)
    finally:
        reader.close()


def _read_blocks(
    path: Path,
    read: Callable[[pl.DataFrame], Block],
    normalizer: Normalizer,
    chunks: _Chunks,
    on_bytes: BytesRead | None = None,
) -> int:
    """Blocks of lines through a columnar reader (`read`); the lines it does not take, the
    per-line normalizer decides (kept or quarantined), so every line is accounted for."""
    seq = 0
    line = 0
    try:
        for block in line_blocks(path, block_bytes=BLOCK_BYTES, on_bytes=on_bytes):
            frame = block_frame(block, first_line=line + 1, first_seq=seq)
            line += len(block)
            seq += frame.height
            chunks.blank += len(block) - frame.height
            taken = read(frame.filter(pl.col("text").is_not_null()))
            rest = frame.filter(~pl.col("seq").is_in(taken.taken.implode()))
            cols = chunks.cols
            for seq_no, line_no, raw in rest.select("seq", "line", "raw").iter_rows():
                _line_reason(normalizer, raw, seq_no, line_no, cols)
            chunks.add_events(taken.events)
            chunks.add_traits(taken.trait_updates)
            chunks.maybe_flush()
    except DamagedFileError as exc:
        _quarantine_damage(chunks.cols, exc, line + 1)
        seq += 1
    return seq


def _read_parquet(
    path: Path, normalizer: Normalizer, chunks: _Chunks, on_bytes: BytesRead | None = None
) -> int:
    line = 0
    for rows in parquet_rows(path, on_bytes):
        for row in rows:
            reason = _normalize(normalizer, row, line, line + 1, chunks.cols)
            if reason is not None:
                chunks.cols.quarantine(row_json(row), line + 1, reason)
            line += 1
        chunks.maybe_flush()
    return line


def read_chunks(
    path: Path,
    space: SpaceConfig,
    source: str,
    chunk_lines: int,
    sink: Sink,
    *,
    fast: bool | None = None,
    reader: str | None = None,
    on_bytes: BytesRead | None = None,
) -> tuple[int, int, pl.DataFrame | None]:
    """Read and normalize one file, handing its rows to ``sink`` a chunk at a time.

    ``on_bytes`` hears how many of the file's bytes were read so far, as reading goes (for
    progress within a large file).

    Returns:
        The file's non-blank lines (Parquet rows), i.e. the seq numbers it used; its blank
        lines; and for an
        unreadable file, its one quarantine row (line 0). The file then counts 0 lines and
        whatever chunks ``sink`` already received from it must be dropped.
    """
    normalizer = Normalizer(space)
    normalizer.cache_texts = not is_parquet(path)
    chunks = _Chunks(source, chunk_lines, sink)
    which = reader_name(fast, reader)
    if which == "native" and not supported(space):
        which = "per_line"
    # The loop allocates millions of small acyclic objects; cyclic GC passes over them are waste.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        if is_parquet(path):
            lines = _read_parquet(path, normalizer, chunks, on_bytes)
        elif which == "native":
            lines = _read_lines_native(path, space, normalizer, chunks, on_bytes)
        elif which == "vectorized":
            lines = _read_lines_fast(path, space, normalizer, chunks, on_bytes)
        else:
            lines = _read_lines(path, normalizer, chunks, on_bytes)
    except (UnreadableFileError, OSError) as exc:
        logger.warning("unreadable input file %s: %s", source, exc)
        quarantine = pl.DataFrame(
            {"raw": [""], "source": [source], "line": [0], "reason": [UNREADABLE_FILE + str(exc)]},
            schema=QUARANTINE_COLUMNS,
        )
        return 0, 0, quarantine
    finally:
        if gc_was_enabled:
            gc.enable()
    chunks.flush()
    return lines, chunks.blank, None


def file_size(path: Path) -> int:
    """Bytes on disk (0 when the file cannot be stat'ed; reading it will say why)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_file(
    path: Path,
    space: SpaceConfig,
    *,
    source: str | None = None,
    chunk_lines: int = CHUNK_LINES,
    fast: bool | None = None,
    reader: str | None = None,
) -> FileResult:
    """Read and normalize one file into memory; an unreadable file gives one quarantine row.

    Args:
        path: the file (JSON lines, gzip-compressed JSON lines, or Parquet).
        space: identifier rules.
        source: the name recorded in ``source`` columns (default: the path as given).
        chunk_lines: rows per intermediate DataFrame.
        fast: True: JSON lines through the vectorized reader (:mod:`.fast`); False: through the
            per-line normalizer; default: :func:`reader_name`.
            Same result either way.
        reader: one of :data:`READERS` (wins over ``fast``).

    Returns:
        The file's rows with file-local ``seq``.
    """
    source = str(path) if source is None else source
    parts: dict[str, list[pl.DataFrame]] = {table: [] for table in TABLES}
    lines, blank, unreadable = read_chunks(
        path,
        space,
        source,
        chunk_lines,
        lambda table, frame: parts[table].append(frame),
        fast=fast,
        reader=reader,
    )
    if unreadable is not None:
        parts = {table: [] for table in TABLES}
        parts["quarantine"].append(unreadable)
    return FileResult(
        source,
        _concat(parts["events"], EVENTS_COLUMNS),
        _concat(parts["trait_updates"], TRAIT_UPDATES_COLUMNS),
        _concat(parts["quarantine"], QUARANTINE_COLUMNS),
        lines,
        file_size(path),
        blank,
    )


def _concat(parts: list[pl.DataFrame], columns: dict[str, pl.DataType]) -> pl.DataFrame:
    if not parts:
        return empty_frame(columns)
    return parts[0] if len(parts) == 1 else pl.concat(parts)
