"""Segment-spec message files (JSON lines, gzip, Parquet) read by Spark's executors.

Every file is read by one task with the project's own reader (`ingest.reader.read_chunks`: the
per-line normalizer, the same quarantine reasons, blank lines, BOM, gzip damage and Parquet rows
as the Polars engine), so what is kept or quarantined is the Polars engine's by construction;
nothing about the events comes back to the driver. The task writes its chunks to its own local
disk and streams them to Spark as Arrow batches of one wide row shape (`READ_SCHEMA`, one row
kind per ``tbl``); the rest is Spark SQL (`messages_steps`): file offsets make each file's local
``seq`` global (files in sorted path order, as `ingest.files.discover` gives them), copies of a
message id are dropped (earliest received_at, a copy with one first, then the first read), and
the as-of cut.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audience_pipeline.spec.models import SpaceConfig

# One wide row shape for every row kind a task hands back: 'file' (its line counts), 'events',
# 'trait_updates' and 'quarantine' (columns of `ingest.schema`).
READ_COLUMNS = (
    ("file", "long"), ("tbl", "string"), ("seq", "long"), ("line", "long"),
    ("message_id", "string"), ("type", "string"), ("event", "string"),
    ("timestamp", "timestamp"), ("received_at", "timestamp"),
    ("ids", "array<struct<id_type:string,id_value:string>>"), ("previous_id", "string"),
    ("group_id", "string"), ("properties", "string"), ("context", "string"), ("source", "string"),
    ("kind", "string"), ("key", "string"), ("value", "string"), ("tagged", "string"),
    ("raw", "string"), ("reason", "string"), ("lines", "long"), ("blank", "long"),
    ("unreadable", "boolean"),
)  # fmt: skip
READ_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in READ_COLUMNS)
CHUNK_LINES = 100_000  # rows per chunk a task holds at a time


def _wide_rows(frame: Any, file: int, tbl: str) -> Iterator[tuple[Any, ...]]:
    """A polars frame of one table -> tuples of `READ_SCHEMA` (other columns null)."""
    import polars as pl

    present = set(frame.columns)
    wide = frame.select(
        *[pl.col(n) if n in present else pl.lit(None).alias(n) for n, _ in READ_COLUMNS[2:]]
    )
    ids = wide.columns.index("ids")
    for row in wide.iter_rows():
        if row[ids] is not None:  # structs come as dicts; Spark takes them as tuples
            row = (*row[:ids], [(i["id_type"], i["id_value"]) for i in row[ids]], *row[ids + 1 :])
        yield (file, tbl, *row)


def read_file_rows(
    file: int, path: str, source: str, space: SpaceConfig
) -> Iterator[tuple[Any, ...]]:
    """One file's rows as tuples of `READ_SCHEMA` (runs in an executor; the file's chunks wait
    on the task's local disk, so its memory is one chunk)."""
    import polars as pl

    from audience_pipeline.ingest.reader import read_chunks

    with tempfile.TemporaryDirectory(prefix="ap-spark-read-") as scratch:
        parts: list[tuple[str, Path]] = []

        def sink(table: str, frame: pl.DataFrame) -> None:
            part = Path(scratch) / f"{len(parts):05d}.parquet"
            frame.write_parquet(part, compression="lz4", statistics=False)
            parts.append((table, part))

        lines, blank, unreadable = read_chunks(Path(path), space, source, CHUNK_LINES, sink)
        if unreadable is not None:  # the file's chunks are void; its one quarantine row stays
            parts = []
            sink("quarantine", unreadable)
        counts = pl.DataFrame({"lines": [lines], "blank": [blank],
                               "unreadable": [unreadable is not None]})  # fmt: skip
        yield from _wide_rows(counts, file, "file")
        for table, part in parts:
            yield from _wide_rows(pl.read_parquet(part), file, table)


def read_files(spark: Any, files: list[tuple[str, str]], space: SpaceConfig) -> Any:
    """A DataFrame of `READ_SCHEMA` rows from `files` ((path to open, source name)), one task
    per file (the RDD API: the workers need no pandas). The paths must be readable from every
    executor (a shared filesystem)."""
    listing = [(index, path, source) for index, (path, source) in enumerate(files)]
    rows = spark.sparkContext.parallelize(listing, max(1, len(listing))).flatMap(
        lambda f: read_file_rows(f[0], f[1], f[2], space)
    )
    return spark.createDataFrame(rows, READ_SCHEMA, verifySchema=False)


# The Spark SQL from the rows read to the run's messages (fixed statements over our own tables).
MESSAGES_STEPS = (
    ("ap_read_offsets",
     "SELECT file, COALESCE(SUM(lines) OVER (ORDER BY file ROWS BETWEEN UNBOUNDED PRECEDING "
     "AND 1 PRECEDING), 0) AS offset FROM ap_read WHERE tbl = 'file'"),
    ("ap_read_events",
     "SELECT r.seq + o.offset AS seq, r.message_id, r.type, r.event, r.timestamp, "
     "r.received_at, r.ids, r.previous_id, r.group_id, r.properties, r.context, r.source, r.line "
     "FROM ap_read r JOIN ap_read_offsets o ON o.file = r.file WHERE r.tbl = 'events'"),
    # Copies of a message id: the earliest received_at wins (one with it beats one without),
    # then the first read (`ingest.dedupe`).
    ("ap_read_dropped",
     "SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER (PARTITION BY message_id ORDER BY "
     "received_at IS NULL, received_at, seq) AS copy FROM ap_read_events "
     "WHERE message_id IS NOT NULL) WHERE copy > 1"),
    ("ap_norm_events",
     "SELECT e.* FROM ap_read_events e LEFT ANTI JOIN ap_read_dropped d ON d.seq = e.seq"),
    ("ap_norm_traits",
     "SELECT r.seq + o.offset AS seq, r.kind, r.key, r.value, r.tagged FROM ap_read r "
     "JOIN ap_read_offsets o ON o.file = r.file LEFT ANTI JOIN ap_read_dropped d "
     "ON d.seq = r.seq + o.offset WHERE r.tbl = 'trait_updates'"),
    ("ap_quarantine",
     "SELECT raw, source, line, reason FROM ap_read WHERE tbl = 'quarantine'"),
)  # fmt: skip

STATS_QUERY = (
    "SELECT SUM(CASE WHEN tbl = 'file' THEN lines END) AS lines_read, "
    "SUM(CASE WHEN tbl = 'quarantine' THEN 1 ELSE 0 END) AS quarantined, "
    "SUM(CASE WHEN tbl = 'file' THEN blank END) AS blank_lines, "
    "SUM(CASE WHEN tbl = 'file' AND unreadable THEN 1 ELSE 0 END) AS unreadable_files, "
    "SUM(CASE WHEN tbl = 'file' THEN 1 ELSE 0 END) AS files FROM ap_read"
)
