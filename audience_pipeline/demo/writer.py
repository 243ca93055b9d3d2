"""Writing a run: the plan of blocks, the worker pool, the files in time order, the stats."""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import IO

from audience_pipeline.demo.blocks import Tally
from audience_pipeline.demo.catalog import BAD_REASONS, DAY, DEFAULT_AS_OF
from audience_pipeline.demo.jobs import Job, run_job
from audience_pipeline.progress import Laps

# The name the generator has always logged under (users may filter on it).
logger = logging.getLogger("audience_pipeline.demo.generate")

BLOCK_LINES = 4_000  # lines per write block: bounds memory and the disorder inside a file


@dataclass
class GenerateStats:
    """What a `generate` run wrote.

    Attributes:
        files: the files written, in time order (file k covers the k-th slice of the period).
        lines: every line written (messages, retried duplicates and bad lines).
        messages: lines that are valid messages, duplicates included.
        duplicates: retried copies of an earlier message (same messageId, later receivedAt).
        bad_lines: intentionally unusable lines by reason (see BAD_REASONS).
        by_type: valid messages by `type`.
        by_event: valid track/page/screen messages by event name (page -> Page Viewed ...).
        future: valid messages whose timestamp is after as-of (a device clock ahead).
        profiles, accounts: the population simulated (not all of them need appear).
        start, as_of: the period covered, (start, as_of].
        seconds: wall time of the run.
    """

    files: list[Path] = field(default_factory=list)
    lines: int = 0
    messages: int = 0
    duplicates: int = 0
    bad_lines: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    by_event: Counter[str] = field(default_factory=Counter)
    future: int = 0
    profiles: int = 0
    accounts: int = 0
    start: datetime = DEFAULT_AS_OF
    as_of: datetime = DEFAULT_AS_OF
    seconds: float = 0.0


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _population(events: int, profiles: int | None, accounts: int | None) -> tuple[int, int]:
    """People and accounts: by default events // 10 people and one account per 20 of them."""
    n_profiles = max(1, events // 10) if profiles is None else max(1, profiles)
    n_accounts = max(1, n_profiles // 20) if accounts is None else max(0, accounts)
    return n_profiles, n_accounts


def generate(
    out_dir: Path,
    *,
    events: int = 10_000,
    profiles: int | None = None,
    accounts: int | None = None,
    seed: int = 0,
    as_of: datetime = DEFAULT_AS_OF,
    days: int = 120,
    files: int = 1,
    gzip: bool = True,
    bad_lines: bool = True,
    workers: int | None = None,
) -> GenerateStats:
    """Write about `events` lines of Segment-spec JSON to `files` files in `out_dir`.

    Args:
        out_dir: folder for the files (created); files are `events-NNNN.jsonl[.gz]`, file k
            holding the k-th slice of the period, so path order is time order.
        events: lines to write, exactly (valid messages, retried duplicates and bad lines; the
            last session of a block may be cut short).
        profiles: people simulated; default events // 10. Not all of them need appear.
        accounts: B2B accounts; default profiles // 20.
        seed: the same seed and arguments give byte-identical files, whatever `workers` is.
        as_of: end of the period; events fall in (as_of - days, as_of], except a few whose device
            clock runs ahead.
        days: length of the period.
        files: number of files the period is cut into (e.g. `days` for one file a day).
        gzip: write `.jsonl.gz` (level 1; one gzip member per block of about 4,000 lines)
            instead of `.jsonl`.
        bad_lines: add a few unusable lines: one of each BAD_REASONS kind (from 70 lines on),
            and one in 20,000 lines on big runs.
        workers: processes generating blocks; default: one per CPU (up to 4) from 200k events,
            else 1 (in-process).

    Returns:
        What was written.
    """
    clock = Laps()
    if events < 0 or days < 1 or files < 1:
        msg = "events must be >= 0, days >= 1 and files >= 1"
        raise ValueError(msg)
    n_profiles, n_accounts = _population(events, profiles, accounts)
    end_dt = _as_utc(as_of)
    end = int(end_dt.timestamp() * 1000)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    stats = GenerateStats(
        profiles=n_profiles, accounts=n_accounts, start=end_dt - timedelta(days=days), as_of=end_dt
    )
    jobs = _plan(seed, n_profiles, n_accounts, end - days * DAY, end, events, files, bad_lines,
                 gzip)  # fmt: skip
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if events >= 200_000 else 1
    paths = [Path(out_dir, f"events-{k:04d}.jsonl{'.gz' if gzip else ''}") for k in range(files)]
    _write(jobs, paths, workers, stats)
    stats.files = paths
    stats.seconds = clock.total
    logger.info("generated %d lines (%d bad, %d duplicates) in %d files in %.1f s", stats.lines,
                sum(stats.bad_lines.values()), stats.duplicates, files, stats.seconds)  # fmt: skip
    return stats


def _write(jobs: list[Job], paths: list[Path], workers: int, stats: GenerateStats) -> None:
    """Write the blocks in order, each file opened when its first block arrives."""
    handles: dict[int, IO[bytes]] = {}
    try:
        for job, (data, tally) in zip(jobs, _results(jobs, workers), strict=True):
            out = handles.get(job.file)
            if out is None:
                for done in [k for k in handles if k < job.file]:
                    handles.pop(done).close()
                out = handles[job.file] = paths[job.file].open("wb")
            out.write(data)
            _add(stats, tally)
    finally:
        for out in handles.values():
            out.close()


def _plan(
    seed: int,
    profiles: int,
    accounts: int,
    start: int,
    end: int,
    events: int,
    files: int,
    bad_lines: bool,
    compress: bool,
) -> list[Job]:
    """Cut the run into blocks: each file's slice of time into pieces of about BLOCK_LINES."""
    # at least one of each kind, one in 20,000 lines on big runs, never more than 10% of the lines
    n_bad = min(max(len(BAD_REASONS), events // 20_000), events // 10) if bad_lines else 0
    placer = random.Random(seed)  # which blocks get the bad lines
    jobs: list[Job] = []
    for k in range(files):
        lo, hi = (
            start + (end - start) * k // files + 1,
            start + (end - start) * (k + 1) // files + 1,
        )
        target = events * (k + 1) // files - events * k // files
        kinds = [
            BAD_REASONS[j % len(BAD_REASONS)]
            for j in range(n_bad * k // files, n_bad * (k + 1) // files)
        ]
        blocks = max(1, target // BLOCK_LINES)
        bad_in: list[list[str]] = [[] for _ in range(blocks)]
        for kind in kinds:
            bad_in[placer.randrange(blocks)].append(kind)
        for b in range(blocks):
            b_lo, b_hi = lo + (hi - lo) * b // blocks, lo + (hi - lo) * (b + 1) // blocks
            goal = target * (b + 1) // blocks - target * b // blocks
            jobs.append(
                Job(
                    seed,
                    profiles,
                    accounts,
                    start,
                    end,
                    k,
                    b,
                    b_lo,
                    b_hi,
                    goal,
                    tuple(bad_in[b]),
                    compress,
                )
            )
    return jobs


def _results(jobs: list[Job], workers: int) -> Iterator[tuple[bytes, Tally]]:
    if workers <= 1 or len(jobs) < 2:
        yield from map(run_job, jobs)
        return
    # fork: workers run only this module's pure-Python code (no polars/duckdb calls, so no
    # locks of the caller's threads are needed), and callers' scripts need no __main__ guard
    # as they would with spawn.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with context.Pool(min(workers, len(jobs))) as pool:
        # A bounded window of jobs in flight: results never pile up in memory when writing
        # (compressing) is slower than generating.
        pending: deque[AsyncResult[tuple[bytes, Tally]]] = deque()
        for job in jobs:
            pending.append(pool.apply_async(run_job, (job,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def _add(stats: GenerateStats, tally: Tally) -> None:
    stats.lines += tally.lines
    stats.messages += tally.messages
    stats.duplicates += tally.duplicates
    stats.future += tally.future
    stats.bad_lines.update(tally.bad_lines)
    stats.by_type.update(tally.by_type)
    stats.by_event.update(tally.by_event)
