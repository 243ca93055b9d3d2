"""One run, pinned: its tables and inputs opened together and held open.

For long-lived readers (the Profile API, `explain`): `open_snapshot` resolves the current run
once (`runs.open_run`) and opens every file the API and explain read. Reads go through
`/proc/self/fd/<n>` (a fresh open of the same file, so threads never share a file offset), so
the run stays readable even after later runs commit and the cleanup removes its folder.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import polars as pl

from audience_pipeline.warehouse.layout import (
    INPUTS,
    NORMALIZED_INPUTS,
    PARTITIONED_INPUTS,
    STATE_MESSAGES,
)
from audience_pipeline.warehouse.runs import NoWarehouse, Run, open_run

_PROC_FD = Path("/proc/self/fd")
# The tables the Profile API and explain read.
SERVED_TABLES = (
    "identities",
    "user_traits",
    "account_traits",
    "memberships",
    "account_user_memberships",
)


class SnapshotChanged(Exception):
    """Kept for callers of older versions: a committed run never changes, so nothing raises
    it any more."""


class SnapshotMissing(NoWarehouse):
    """The folder holds no computed warehouse, or the run kept no inputs."""


def _close_all(handles: list[BinaryIO]) -> None:
    for handle in handles:
        handle.close()


@dataclass
class Snapshot:
    """The pinned files of one run; closed when the last reference goes away."""

    run: Run
    handles: dict[str, BinaryIO]
    inputs_problem: str | None  # why the inputs cannot be used, or None
    _cache: dict[str, object] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        weakref.finalize(self, _close_all, list(self.handles.values()))

    @property
    def directory(self) -> Path:
        """The run's folder (its tables, inputs and audience registry)."""
        return self.run.folder

    @property
    def stamp(self) -> str:
        return self.run.stamp

    @property
    def as_of(self) -> datetime:
        assert self.run.as_of is not None
        return self.run.as_of

    @property
    def layout(self) -> str:
        return self.run.layout

    @property
    def manifest(self) -> Run:
        """The run's description (as-of, layout, JSON-text columns): what callers of earlier
        versions read from the manifest."""
        return self.run

    def source(self, name: str) -> str:
        """A path that reads the pinned file `name` (a table or an input)."""
        handle = self.handles[name]
        if _PROC_FD.is_dir():
            return str(_PROC_FD / str(handle.fileno()))
        return str(handle.name)

    def has(self, name: str) -> bool:
        return name in self.handles

    def table(self, name: str, columns: list[str] | None = None) -> pl.DataFrame:
        return pl.read_parquet(self.source(name), columns=columns)

    def scan(self, name: str) -> pl.LazyFrame:
        return pl.scan_parquet(self.source(name))

    def json_columns(self, table: str) -> tuple[str, ...]:
        return self.run.json_columns.get(table, ())

    @property
    def has_inputs(self) -> bool:
        return self.inputs_problem is None

    def messages(self) -> pl.LazyFrame:
        """Every normalized message the run resolved (timestamp <= as-of) with its profile_id.

        Raises:
            SnapshotMissing: the run kept no inputs (see `inputs_problem`).
        """
        return self._inputs()[0]

    def trait_updates(self) -> pl.LazyFrame:
        """The trait updates of those messages (joined to them by `seq`)."""
        return self._inputs()[1]

    def messages_of(self, profile_ids: list[str], columns: list[str]) -> pl.DataFrame:
        """`columns` of the messages of some profiles (plus `profile_id`), in `seq` order."""
        wanted = [c for c in dict.fromkeys(["seq", *columns]) if c != "profile_id"]
        if self.inputs_problem is None and self.layout == "normalized":
            # Two steps, so that only the profiles' rows of the (wide) events file are decoded.
            owners = (
                self.scan("message_profiles").filter(pl.col("profile_id").is_in(profile_ids))
            ).collect()
            found = (
                self.scan("events")
                .select(wanted)
                .filter(pl.col("seq").is_in(owners["seq"].implode()))
            )
            return found.collect().join(owners, on="seq", how="inner").sort("seq")
        return (
            self.messages()
            .filter(pl.col("profile_id").is_in(profile_ids))
            .select(*wanted, "profile_id")
            .sort("seq")
            .collect()
        )

    def _inputs(self) -> tuple[pl.LazyFrame, pl.LazyFrame]:
        if self.inputs_problem is not None:
            raise SnapshotMissing(self.inputs_problem)
        with self._lock:
            cached = self._cache.get("inputs")
            if cached is None:
                cached = self._load_inputs()
                self._cache["inputs"] = cached
        return cached  # type: ignore[return-value]

    def _load_inputs(self) -> tuple[pl.LazyFrame, pl.LazyFrame]:
        if self.layout == "normalized":
            profiles = self.scan("message_profiles")
            events = self.scan("events").join(profiles, on="seq", how="inner")
            return events, self.scan("trait_updates")
        # Dagster: daily partitions (each numbered from 0), stacked as the engine stacks them;
        # the state maps messages to profiles by (source, line).
        from audience_pipeline.warehouse.partitions import combine_partitions

        days = sorted(n.split("/", 1)[1] for n in self.handles if n.startswith("raw_events/"))
        stacked, updates = combine_partitions(
            [self.table(f"raw_events/{d}") for d in days],
            [self.table(f"raw_trait_updates/{d}") for d in days],
        )
        owners = self.table("state_messages", ["source", "line", "profile_id"])
        return stacked.join(owners, on=["source", "line"], how="inner").lazy(), updates.lazy()


def _input_files(run: Run) -> dict[str, Path]:
    """The run's inputs by name (normalized messages, or partitions and the state's map)."""
    if run.layout == "normalized":
        return {name: run.file(rel) for name, rel in NORMALIZED_INPUTS.items()}
    if run.layout == "partitions":
        files = {"state_messages": run.file(STATE_MESSAGES)}
        for table in PARTITIONED_INPUTS:
            for path in sorted(run.file(f"{INPUTS}/{table}").glob("*.parquet")):
                files[f"{table}/{path.stem}"] = path
        return files
    return {}


def open_snapshot(directory: str | Path) -> Snapshot:
    """Open the warehouse's current run and hold its files.

    Raises:
        SnapshotMissing: no computed warehouse there.
    """
    directory = Path(directory)
    for _ in range(5):
        run = open_run(directory)
        if run is None or run.as_of is None or not all(run.has(t) for t in SERVED_TABLES):
            missing = [t for t in SERVED_TABLES if run is None or not run.has(t)]
            msg = f"{directory}: no computed warehouse (run `audience-pipeline compute` first)"
            if run is not None and missing:
                msg = f"{directory}: the run has no {', '.join(missing)}"
            raise SnapshotMissing(msg)
        try:
            return _pin(run)
        except FileNotFoundError:
            continue  # removed by a cleanup between resolving and opening: resolve again
    msg = f"{directory}: its runs keep being replaced; try again"
    raise SnapshotMissing(msg)


def _pin(run: Run) -> Snapshot:
    handles: dict[str, BinaryIO] = {}
    problem: str | None = None
    try:
        for name in SERVED_TABLES:
            handles[name] = open(run.path(name), "rb")  # noqa: SIM115  (held by the snapshot)
        inputs = _input_files(run)
        if not inputs:
            problem = "the run kept no normalized messages"
        for name, path in inputs.items():
            try:
                handles[name] = open(path, "rb")  # noqa: SIM115
            except FileNotFoundError:
                problem = problem or f"{path.name} is missing from the run (inputs unavailable)"
    except BaseException:
        _close_all(list(handles.values()))
        raise
    if problem is not None:
        for name in [n for n in handles if n not in SERVED_TABLES]:
            handles.pop(name).close()
    return Snapshot(run, handles, problem)


def open_snapshot_waiting(directory: str | Path, *, timeout: float = 30.0) -> Snapshot:
    """`open_snapshot` (a committed run never needs waiting for; kept for callers)."""
    del timeout
    return open_snapshot(directory)


__all__ = [
    "SERVED_TABLES",
    "Snapshot",
    "SnapshotChanged",
    "SnapshotMissing",
    "open_snapshot",
    "open_snapshot_waiting",
]
