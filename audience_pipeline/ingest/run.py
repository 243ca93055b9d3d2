"""`ingest()`: files -> normalized, deduped, validated tables.

Files are read into Parquet parts on disk and assembled from there
(:mod:`audience_pipeline.ingest.assemble`), so ingestion's memory does not grow with the
number of events; :func:`ingest_to_parquet` leaves the tables on disk, :func:`ingest` reads them
back into memory.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from audience_pipeline.ingest.assemble import assemble
from audience_pipeline.ingest.files import discover
from audience_pipeline.ingest.parts import FileParts, write_parts
from audience_pipeline.ingest.progress import ProgressCallback, Tracker, log_progress
from audience_pipeline.ingest.reader import file_size
from audience_pipeline.ingest.result import IngestResult, accounting
from audience_pipeline.ingest.storage import read_normalized
from audience_pipeline.spec.models import SpaceConfig

logger = logging.getLogger(__name__)

# Below this much input, starting worker processes (about a second) costs more than it saves.
PARALLEL_MIN_BYTES = 16 << 20
MAX_WORKERS = 2
# A reader process tells the main one how far into its file it is at most this often.
WORKER_REPORT_SECONDS = 0.2

_reports: Any = None  # in a reader process: the queue of (file index, bytes read)


def _read_in_process(
    files: list[Path], space: SpaceConfig, work: Path, tracker: Tracker
) -> list[FileParts]:
    done = []
    for index, path in enumerate(files):

        def read(position: int, index: int = index) -> None:
            tracker.file_progress(index, position)

        done.append(write_parts(path, space, work / f"{index:05d}", on_bytes=read))
        tracker.file_done(index)
    return done


def _start_reader(reports: Any) -> None:
    """A reader process's start: where to send its progress."""
    global _reports  # noqa: PLW0603  (one queue per process, set once at its start)
    _reports = reports
    reports.cancel_join_thread()  # progress news left unread must not keep a worker alive


def _write_parts_reporting(path: Path, space: SpaceConfig, folder: Path, index: int) -> FileParts:
    """`write_parts` in a reader process, sending bytes read to the main process now and then."""
    last = 0.0

    def read(position: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= WORKER_REPORT_SECONDS and _reports is not None:
            last = now
            _reports.put((index, position))

    return write_parts(path, space, folder, on_bytes=read)


def _drain(reports: Any, tracker: Tracker) -> None:
    while True:
        try:
            index, position = reports.get_nowait()
        except queue.Empty:
            return
        tracker.file_progress(index, position)


def _read_in_pool(
    files: list[Path], space: SpaceConfig, folders: list[Path], workers: int, tracker: Tracker
) -> list[FileParts]:
    # spawn, not fork: a forked child of a process that already runs polars threads can deadlock.
    # An executor (unlike multiprocessing.Pool) reports a dead worker instead of waiting forever.
    context = multiprocessing.get_context("spawn")
    reports = context.Queue()
    try:
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_reader, initargs=(reports,)
        ) as pool:
            futures = {
                pool.submit(_write_parts_reporting, path, space, folder, index): index
                for index, (path, folder) in enumerate(zip(files, folders, strict=True))
            }
            pending: set[Future[FileParts]] = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                _drain(reports, tracker)
                for future in sorted(done, key=lambda f: futures[f]):
                    future.result()  # a failed worker fails here, as pool.map did
                    tracker.file_done(futures[future])
            return [future.result() for future in futures]
    finally:
        reports.close()


def _read_all(
    files: list[Path], space: SpaceConfig, work: Path, workers: int | None, tracker: Tracker
) -> list[FileParts]:
    if workers is None:
        total = sum(path.stat().st_size for path in files)
        workers = MAX_WORKERS if total >= PARALLEL_MIN_BYTES else 1
    workers = min(workers, len(files), os.cpu_count() or 1)
    if workers <= 1:
        return _read_in_process(files, space, work / "serial", tracker)
    folders = [work / "pool" / f"{index:05d}" for index in range(len(files))]
    try:
        return _read_in_pool(files, space, folders, workers, tracker)
    except BrokenProcessPool as exc:
        # e.g. a script without an `if __name__ == "__main__":` guard: spawned workers cannot
        # start. Reading in process is slower but gives the same result.
        logger.warning("ingest worker processes failed (%s); reading in process", exc)
        tracker.reset()
        return _read_in_process(files, space, work / "serial", tracker)


def ingest_to_parquet(
    paths: str | Path | Sequence[str | Path],
    space: SpaceConfig,
    directory: str | Path,
    *,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, int]:
    """Ingest like :func:`ingest`, writing the tables into ``directory`` instead of memory.

    The files are the ones :func:`audience_pipeline.ingest.write_normalized` writes (and
    :func:`audience_pipeline.ingest.read_normalized` reads); peak memory is a few chunks of
    events, whatever their number. Scratch parts go to a temporary folder inside ``directory``.

    ``progress`` hears of each file read, the assembly and the end (files, bytes, rate; see
    :mod:`audience_pipeline.ingest.progress`); default: INFO lines on the
    ``audience_pipeline.ingest`` logger.

    Returns:
        The run's stats (``IngestResult.stats``).

    Raises:
        FileNotFoundError: a given path does not exist.
        pandera.errors.SchemaErrors: the events table broke its contract (a bug, not bad input).
    """
    files = discover(paths)
    tracker = Tracker([file_size(path) for path in files], progress or log_progress)
    tracker.report("read")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ingest-", dir=directory) as scratch:
        work = Path(scratch)
        parts = _read_all(files, space, work, workers, tracker)
        tracker.report("assemble")
        stats = assemble(parts, directory, work)
    tracker.report("done")
    logger.info("ingested: %s", accounting(stats))
    return stats


def ingest(
    paths: str | Path | Sequence[str | Path],
    space: SpaceConfig,
    *,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
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
        progress: hears of each file read, the assembly and the end (:func:`ingest_to_parquet`).

    Returns:
        Deduped events sorted by ``seq``, trait updates of the surviving messages, the
        quarantine and run statistics. They are held in memory; for inputs larger than memory,
        :func:`ingest_to_parquet` leaves them on disk.

    Raises:
        FileNotFoundError: a given path does not exist.
        pandera.errors.SchemaErrors: the events table broke its contract (a bug, not bad input).
    """
    with tempfile.TemporaryDirectory(prefix="audience-pipeline-ingest-") as scratch:
        ingest_to_parquet(paths, space, scratch, workers=workers, progress=progress)
        return read_normalized(Path(scratch))
