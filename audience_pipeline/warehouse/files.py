"""Parquet written durably: into a folder no reader looks at, or atomically by rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import polars as pl


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (new names, renames) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet(frame: pl.DataFrame, path: Path) -> Path:
    """Write `path` in a run folder nobody reads yet (the commit flushes the whole folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path, compression="zstd")
    return path


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder under `folder` to disk (before a run is committed)."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file() and not path.is_symlink():
            fsync_file(path)
        elif path.is_dir() and not path.is_symlink():
            fsync_dir(path)
    fsync_dir(folder)


def write_table(frame: pl.DataFrame, directory: Path, name: str) -> Path:
    """Write `<directory>/<name>.parquet` atomically: readers see the old file or the new one.

    For files outside a run (Dagster's daily partitions); a run's tables go through
    `audience_pipeline.warehouse.writer.RunWriter`."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.parquet"
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        frame.write_parquet(tmp, compression="zstd")
        fsync_file(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link `source` as `target` (free, and immune to `source` being replaced later by
    rename); copy where links are not possible."""
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
