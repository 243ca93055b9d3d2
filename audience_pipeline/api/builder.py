"""Building a reload's frames in a child process, handed back as memory-mapped Arrow files.

Building a generation is seconds of Polars work over millions of rows. In the serving process
it competed with requests for the GIL and, on a small machine, for the CPU itself (Polars'
threads take every core): p99 latency went from 2 ms to over a second during a reload. Here a
spawned child at a lower CPU priority (nice +10) opens the same run, computes every frame
(`tables.compute_frames`) and writes them as uncompressed Arrow IPC files; the server maps
them in (no copy, no parse) and assembles the generation, which holds no per-entity Python
objects (see `tables.KeyIndex`). The files are unlinked right after mapping: the mappings keep
the data alive until the generation is dropped.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

import polars as pl

from audience_pipeline.api.tables import Frames, compute_frames
from audience_pipeline.spec.models import Definitions
from audience_pipeline.warehouse.snapshot import SnapshotChanged, open_snapshot

log = logging.getLogger(__name__)

CHILD_NICENESS = 10
_CHANGED = 3  # the child's exit code when the warehouse moved on to another run
_SHARED_MEMORY = Path("/dev/shm")


def build_frames_in_child(
    warehouse: Path,
    definitions: Definitions,
    stamp: str,
    *,
    events_days: int,
    timeout: float = 3600.0,
) -> Frames:
    """The frames of the run `stamp` names, computed in a child process.

    Raises:
        SnapshotChanged: the warehouse published another run meanwhile (try again).
        RuntimeError: the child failed (its log says why).
    """
    parent = _SHARED_MEMORY if _SHARED_MEMORY.is_dir() else None
    folder = Path(tempfile.mkdtemp(prefix="audience-pipeline-generation-", dir=parent))
    try:
        context = multiprocessing.get_context("spawn")  # never fork a threaded server
        child = context.Process(
            target=_child,
            args=(str(warehouse), definitions, stamp, events_days, str(folder)),
            name="generation-builder",
            daemon=True,
        )
        child.start()
        child.join(timeout)
        if child.is_alive():
            child.kill()
            child.join()
            msg = f"building the generation took over {timeout:.0f} s"
            raise RuntimeError(msg)
        if child.exitcode == _CHANGED:
            msg = "the warehouse published another run while it was being loaded"
            raise SnapshotChanged(msg)
        if child.exitcode != 0:
            msg = f"the generation builder exited with code {child.exitcode}"
            raise RuntimeError(msg)
        # Polars maps an uncompressed local IPC file rather than reading it.
        return {path.stem: pl.read_ipc(path) for path in sorted(folder.glob("*.arrow"))}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _child(
    warehouse: str,
    definitions: Definitions,
    stamp: str,
    events_days: int,
    folder: str,
) -> None:
    # Before Polars starts its thread pool: the pool's threads inherit the lower priority, so
    # the serving process keeps the CPU it needs.
    os.nice(CHILD_NICENESS)
    logging.basicConfig(level=logging.INFO)
    snapshot = open_snapshot(Path(warehouse))
    if snapshot.stamp != stamp:
        os._exit(_CHANGED)
    frames = compute_frames(snapshot, definitions, events_days=events_days)
    for name, frame in frames.items():
        # Uncompressed, so that the server maps the columns instead of decoding them.
        frame.write_ipc(Path(folder) / f"{name}.arrow", compression="uncompressed")
    # The files are closed; skip the interpreter's teardown (seconds of freeing, and native
    # libraries' leak reports on stderr).
    logging.shutdown()
    os._exit(0)


__all__ = ["build_frames_in_child"]
