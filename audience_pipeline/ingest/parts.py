"""Reading one input file into Parquet parts on disk (the unit of work of the process pool).

Parts keep ingestion's memory to a chunk per reader, whatever the number of events: a chunk's
frames go to disk as soon as they are built, and :mod:`audience_pipeline.ingest.assemble`
stitches the parts together. Event parts are validated and carry their flat ``p.*`` / ``c.*``
columns (:func:`audience_pipeline.ingest.flatten.part_columns`): decoding them is half of
ingestion's work, and here it runs in the reader processes, side by side.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from audience_pipeline.ingest.files import BytesRead
from audience_pipeline.ingest.flatten import part_columns
from audience_pipeline.ingest.reader import TABLES, file_size, read_chunks
from audience_pipeline.ingest.schema import EVENTS_SCHEMA
from audience_pipeline.spec.models import SpaceConfig

# Rows per part: one chunk of parsed messages in Python lists (a few KB each) is a reader's
# memory high-water mark, so parts are smaller than an in-memory read's chunks.
PART_LINES = 200_000


@dataclass(frozen=True)
class FileParts:
    """One file's parts, in row order; ``seq`` in them is local to the file."""

    source: str
    lines: int  # non-blank lines (Parquet rows): the seq numbers the file used
    size: int  # bytes on disk
    blank: int = 0  # blank lines (no seq, no row)
    unreadable: bool = False  # read as one quarantine row (line 0), counted in no line
    parts: dict[str, list[Path]] = field(default_factory=dict)  # table -> part files
    events: int = 0  # rows of its event parts
    flat_counts: dict[str, int] = field(default_factory=dict)  # flat column -> non-null values
    flat_over: bool = False  # a part had too many keys: its event parts carry no flat columns

    def of(self, table: str) -> list[Path]:
        """The part files of one table (one of ``reader.TABLES``)."""
        return self.parts.get(table, [])


def write_parts(
    path: Path,
    space: SpaceConfig,
    directory: Path,
    *,
    chunk_lines: int | None = None,
    on_bytes: BytesRead | None = None,
) -> FileParts:
    """Read and normalize ``path`` into Parquet parts under ``directory`` (created, must be new).

    An unreadable file leaves one quarantine part with its one row (line 0), as
    :func:`audience_pipeline.ingest.reader.read_file` gives. ``chunk_lines``: rows per part
    (default PART_LINES). ``on_bytes`` hears the bytes read so far (progress within the file).
    """
    source = str(path)
    directory.mkdir(parents=True)
    parts: dict[str, list[Path]] = {table: [] for table in TABLES}
    flat = _Flat()

    def sink(table: str, frame: pl.DataFrame) -> None:
        part = directory / f"{table}-{len(parts[table]):05d}.parquet"
        if table == "events":
            frame = flat.add(frame)
        # lz4: a part is read back once, minutes later; speed matters more than size.
        frame.write_parquet(part, compression="lz4", statistics=False)
        parts[table].append(part)

    lines, blank, unreadable = read_chunks(
        path, space, source, chunk_lines or PART_LINES, sink, on_bytes=on_bytes
    )
    if unreadable is not None:
        shutil.rmtree(directory)
        directory.mkdir()
        parts = {table: [] for table in TABLES}
        flat = _Flat()
        sink("quarantine", unreadable)
    return FileParts(
        source,
        lines,
        file_size(path),
        blank,
        unreadable is not None,
        parts,
        flat.rows,
        flat.counts,
        flat.over,
    )


class _Flat:
    """Validates each event part and adds its flat columns; sums what the assembly needs."""

    def __init__(self) -> None:
        self.rows = 0
        self.counts: dict[str, int] = {}
        self.over = False  # once over, the assembly decodes everything: no use decoding more

    def add(self, frame: pl.DataFrame) -> pl.DataFrame:
        # seq is unique across parts by construction (one counter per file); the rest is per row.
        EVENTS_SCHEMA.validate(frame, lazy=True)
        self.rows += frame.height
        if self.over:
            return frame
        flat = part_columns(frame)
        if flat.over:
            self.over = True
            return frame
        for name, count in flat.counts.items():
            self.counts[name] = self.counts.get(name, 0) + count
        return frame.with_columns(flat.columns)
