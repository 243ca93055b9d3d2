"""Removing what no reader needs: runs older than the last few, and folders of killed runs.

Runs only ever call this while holding the writer lock (`writer.writer_lock`), so any run folder
that is not among the kept committed runs belongs to no living writer: it is a run that was
killed (or failed) before its commit, and goes.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from audience_pipeline.warehouse.layout import CURRENT, NORMALIZED, RUNS
from audience_pipeline.warehouse.runs import open_run, open_run_id

log = logging.getLogger(__name__)


def kept_runs(warehouse: Path, keep: int) -> set[str]:
    """The current run, the runs committed before it (`keep` in all) and its base."""
    run = open_run(warehouse)
    if run is None or run.run_id is None:
        return set()
    chain = [run.run_id]
    previous = run.previous
    while previous and len(chain) < keep:
        chain.append(previous)
        older = open_run_id(warehouse, previous)
        previous = older.previous if older is not None else None
    return {*chain, *([run.base] if run.base else [])}


def sweep(warehouse: Path, keep: int, *, spare: str | None = None) -> list[str]:
    """Remove run folders not kept (see `kept_runs`), leftover link temporaries and staging
    folders of older versions; returns the names removed. `spare`: a run folder being built."""
    removed: list[str] = []
    runs = warehouse / RUNS
    kept = kept_runs(warehouse, keep)
    if runs.is_dir():
        for entry in sorted(runs.iterdir()):
            if entry.name in kept or entry.name == spare:
                continue
            _remove(entry)
            removed.append(f"{RUNS}/{entry.name}")
    for entry in warehouse.glob(f".{CURRENT}.*"):
        _remove(entry)
        removed.append(entry.name)
    normalized = warehouse / NORMALIZED
    if normalized.is_dir() and not normalized.is_symlink():
        for entry in normalized.glob(".staging.*"):  # written by versions before run folders
            _remove(entry)
            removed.append(f"{NORMALIZED}/{entry.name}")
    if removed:
        log.info("removed %d old or unfinished run folder(s): %s", len(removed), removed[:5])
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


__all__ = ["kept_runs", "sweep"]
