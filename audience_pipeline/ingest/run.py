"""`ingest()`: files -> normalized, deduped, validated tables."""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import polars as pl

from audience_pipeline.ingest.dedupe import duplicate_seqs
from audience_pipeline.ingest.files import discover
from audience_pipeline.ingest.flatten import add_flat_columns
from audience_pipeline.ingest.reader import FileResult, read_file
from audience_pipeline.ingest.result import IngestResult
from audience_pipeline.ingest.schema import (
    EVENTS_COLUMNS,
    EVENTS_SCHEMA,
    QUARANTINE_COLUMNS,
    TRAIT_UPDATES_COLUMNS,
    empty_frame,
)
from audience_pipeline.spec.models import SpaceConfig

logger = logging.getLogger(__name__)

# Below this much input, starting worker processes (about a second) costs more than it saves.
PARALLEL_MIN_BYTES = 16 << 20
MAX_WORKERS = 2
DEDUPE_KEYS = ("seq", "message_id", "received_at")


def _read_all(files: list[Path], space: SpaceConfig, workers: int | None) -> list[FileResult]:
    if workers is None:
        total = sum(path.stat().st_size for path in files)
        workers = MAX_WORKERS if total >= PARALLEL_MIN_BYTES else 1
    workers = min(workers, len(files), os.cpu_count() or 1)
    if workers <= 1:
        return [read_file(path, space) for path in files]
    # spawn, not fork: a forked child of a process that already runs polars threads can deadlock.
    # An executor (unlike multiprocessing.Pool) reports a dead worker instead of waiting forever.
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            return list(pool.map(read_file, files, [space] * len(files)))
    except BrokenProcessPool as exc:
        # e.g. a script without an `if __name__ == "__main__":` guard: spawned workers cannot
        # start. Reading in process is slower but gives the same result.
        logger.warning("ingest worker processes failed (%s); reading in process", exc)
        return [read_file(path, space) for path in files]


def _stack(parts: list[pl.DataFrame], columns: dict[str, pl.DataType]) -> pl.DataFrame:
    parts = [part for part in parts if part.height]
    if not parts:
        return empty_frame(columns)
    return parts[0] if len(parts) == 1 else pl.concat(parts)


def ingest(
    paths: str | Path | Sequence[str | Path], space: SpaceConfig, *, workers: int | None = None
) -> IngestResult:
    """Read Segment/RudderStack messages into normalized tables (SPEC sections 1 and 5a).

    Args:
        paths: a file, a folder (searched recursively for ``*.jsonl``, ``*.jsonl.gz``,
            ``*.json``, ``*.ndjson`` and ``*.parquet``) or a list of them. Files are read in
            sorted path order; ``seq`` numbers every non-blank line in that order.
        space: identifier rules (types, paths, priorities, blocked values).
        workers: processes reading files in parallel; default: 2 when there are several files
            and enough bytes to pay for starting them, else 1 (in process). Workers are
            spawned, so a calling script needs the usual ``if __name__ == "__main__":`` guard
            (without it, reading falls back to one process).

    Returns:
        Deduped events sorted by ``seq``, trait updates of the surviving messages, the
        quarantine and run statistics.

    Raises:
        FileNotFoundError: a given path does not exist.
        pandera.errors.SchemaErrors: the events table broke its contract (a bug, not bad input).
    """
    files = discover(paths)
    results = _read_all(files, space, workers)
    events: list[pl.DataFrame] = []
    traits: list[pl.DataFrame] = []
    offset = 0
    for result in results:
        shift = pl.col("seq") + offset
        events.append(result.events.with_columns(shift) if offset else result.events)
        traits.append(result.trait_updates.with_columns(shift) if offset else result.trait_updates)
        offset += result.lines
    quarantine = _stack([result.quarantine for result in results], QUARANTINE_COLUMNS)
    size = sum(result.size for result in results)
    results.clear()  # the per-file frames now live in `events` / `traits` only
    # Duplicates are found on three thin columns and dropped file by file, in place: filtering
    # the stacked table would hold two copies of every event at once (GBs at 10M events).
    thin = _stack([part.select(DEDUPE_KEYS) for part in events], EVENTS_COLUMNS)
    dropped = duplicate_seqs(thin.select(DEDUPE_KEYS)).implode()
    duplicates = dropped.list.len().item()
    del thin
    if duplicates:
        for index, part in enumerate(events):
            events[index] = part.filter(~pl.col("seq").is_in(dropped))
        for index, part in enumerate(traits):
            traits[index] = part.filter(~pl.col("seq").is_in(dropped))
        del part
    all_events = _stack(events, EVENTS_COLUMNS)
    all_traits = _stack(traits, TRAIT_UPDATES_COLUMNS)
    del events, traits
    all_events = add_flat_columns(EVENTS_SCHEMA.validate(all_events, lazy=True))
    stats = {
        "lines_read": offset,
        "messages": all_events.height,
        "quarantined": quarantine.height,
        "duplicates": duplicates,
        "files": len(files),
        "bytes": size,
    }
    logger.info("ingested %s", stats)
    return IngestResult(all_events, all_traits, quarantine, stats)
