"""Reading a warehouse: its current run, resolved once.

`open_run` follows the `current` link one time and returns a `Run` whose paths all point into
that run's own folder (`runs/<run_id>/`). Files in a run folder are written once and never
changed, so whatever the writer does next (commit another run, clean up old ones while keeping
the last few), a reader that holds a `Run` reads one run's tables, all of them from that run.

A folder without a `current` link (written by an older version, or by hand) is read as one run
made of its loose `<table>.parquet` files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from audience_pipeline.warehouse.layout import (
    CURRENT,
    FORMAT,
    LEGACY_MANIFEST,
    NORMALIZED_INPUTS,
    RUN_FILE,
    RUNS,
    is_table_name,
    table_file,
)


class NoWarehouse(FileNotFoundError):
    """The folder holds no computed run."""


@dataclass(frozen=True)
class Run:
    """One committed run of a warehouse folder.

    Attributes:
        warehouse: the warehouse folder.
        folder: where the run's files are (`runs/<run_id>`; the warehouse itself for a folder
            without a commit point).
        run_id: the run's id (None for a folder without a commit point).
        as_of: the run's as-of (None when unknown).
        tables: the tables of the run (`<name>.parquet` in `folder`).
        layout: how its inputs are kept: "normalized" (compute), "partitions" (Dagster), "none".
        json_columns: per table, the trait columns stored as JSON text (mixed JSON types).
        messages: how many messages the run read (None when unknown).
        previous: the run committed before it (cleanup keeps a chain of them).
        base: the run its changes, history and state derive from.
    """

    warehouse: Path
    folder: Path
    run_id: str | None
    as_of: datetime | None
    tables: tuple[str, ...]
    layout: str = "none"
    json_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    messages: int | None = None
    previous: str | None = None
    base: str | None = None
    loose_stamp: str = ""  # a folder without commit point: its memberships file's mtime

    def path(self, name: str) -> Path:
        """The file of table `name` in this run (it may not exist: see `has`)."""
        return self.folder / table_file(name)

    def has(self, name: str) -> bool:
        return name in self.tables

    def table(self, name: str, columns: list[str] | None = None) -> pl.DataFrame | None:
        """The table, or None when the run has none of that name."""
        return pl.read_parquet(self.path(name), columns=columns) if self.has(name) else None

    def scan(self, name: str) -> pl.LazyFrame:
        return pl.scan_parquet(self.path(name))

    def file(self, relative: str) -> Path:
        """Any file of the run by its path relative to the run folder."""
        return self.folder / relative

    @property
    def stamp(self) -> str:
        """Changes exactly when another run is committed (what pollers compare)."""
        return self.run_id if self.run_id is not None else self.loose_stamp


def run_folder(warehouse: Path, run_id: str) -> Path:
    return warehouse / RUNS / run_id


def current_target(warehouse: Path) -> str | None:
    """What `current` points at (`runs/<run_id>`), None when there is no link."""
    try:
        return os.readlink(warehouse / CURRENT)
    except FileNotFoundError:
        return None
    except OSError:  # `current` is a real folder: a copy that followed links (`cp -rL`)
        return CURRENT


def current_stamp(warehouse: Path) -> str | None:
    """A cheap poll: the current run's id (or a stamp of a folder without commit point)."""
    target = current_target(Path(warehouse))
    if target is not None and target != CURRENT:
        return Path(target).name
    run = open_run(warehouse) if target == CURRENT or target is None else None
    return run.stamp if run is not None else None


def read_run_file(folder: Path, warehouse: Path) -> Run:
    """The `Run` described by `<folder>/run.json`."""
    data: dict[str, Any] = orjson.loads((folder / RUN_FILE).read_bytes())
    if data.get("format") != FORMAT:
        msg = f"{folder / RUN_FILE}: unsupported run format {data.get('format')!r}"
        raise ValueError(msg)
    as_of = data.get("as_of")
    return Run(
        warehouse=warehouse,
        folder=folder,
        run_id=str(data["run_id"]),
        as_of=datetime.fromisoformat(as_of) if as_of else None,
        tables=tuple(data["tables"]),
        layout=str(data.get("layout", "none")),
        json_columns={k: tuple(v) for k, v in data.get("json_columns", {}).items()},
        messages=data.get("messages"),
        previous=data.get("previous"),
        base=data.get("base"),
    )


def open_run(warehouse: str | Path) -> Run | None:
    """The warehouse's current run (resolved once), or None when nothing was computed."""
    warehouse = Path(warehouse)
    for _ in range(5):
        target = current_target(warehouse)
        if target is None:
            return _loose_run(warehouse)
        try:
            return read_run_file(warehouse / target, warehouse)
        except FileNotFoundError:
            continue  # the run was cleaned up between the link read and the file read: again
    msg = f"{warehouse}: {CURRENT} points at a missing run"
    raise NoWarehouse(msg)


def require_run(warehouse: str | Path) -> Run:
    """`open_run`, raising `NoWarehouse` (a one-line message) when nothing was computed."""
    run = open_run(warehouse)
    if run is None or not run.has("memberships"):
        msg = f"{warehouse}: no computed warehouse (run `audience-pipeline compute` first)"
        raise NoWarehouse(msg)
    return run


def open_run_id(warehouse: Path, run_id: str) -> Run | None:
    """A run of the folder by id (None when it is gone)."""
    try:
        return read_run_file(run_folder(warehouse, run_id), warehouse)
    except (FileNotFoundError, ValueError, KeyError, orjson.JSONDecodeError):
        return None


def _loose_run(warehouse: Path) -> Run | None:
    """A folder without a commit point: its loose `<table>.parquet` files, read as they are."""
    if not warehouse.is_dir():
        return None
    tables = tuple(sorted(p.stem for p in warehouse.glob("*.parquet") if is_table_name(p.stem)))
    if not tables:
        return None
    as_of, layout, json_columns = _legacy_manifest(warehouse)
    if as_of is None and "memberships" in tables:
        frame = pl.read_parquet(warehouse / "memberships.parquet", columns=["as_of"]).head(1)
        as_of = frame["as_of"][0] if frame.height else None
    if layout != "normalized" and all((warehouse / p).exists() for p in NORMALIZED_INPUTS.values()):
        layout = "normalized"
    try:
        stamp = f"loose:{(warehouse / 'memberships.parquet').stat().st_mtime_ns}"
    except FileNotFoundError:
        stamp = "loose:none"
    return Run(warehouse, warehouse, None, as_of, tables, layout, json_columns, loose_stamp=stamp)


def _legacy_manifest(
    warehouse: Path,
) -> tuple[datetime | None, str, dict[str, tuple[str, ...]]]:
    """as-of, layout and JSON columns from an older version's `_manifest.json`, if any."""
    try:
        data = orjson.loads((warehouse / LEGACY_MANIFEST).read_bytes())
        as_of = datetime.fromisoformat(data["as_of"])
        columns = {k: tuple(v) for k, v in data.get("json_columns", {}).items()}
        layout = "normalized" if data.get("layout") == "normalized" else "none"
    except (FileNotFoundError, KeyError, TypeError, ValueError, orjson.JSONDecodeError):
        return None, "none", {}
    return as_of, layout, columns


__all__ = [
    "NoWarehouse",
    "Run",
    "current_stamp",
    "current_target",
    "open_run",
    "open_run_id",
    "read_run_file",
    "require_run",
    "run_folder",
]
