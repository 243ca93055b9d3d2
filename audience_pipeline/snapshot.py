"""One run of a warehouse folder, pinned: its tables and inputs opened together.

`open_snapshot` reads `_manifest.json` (see `audience_pipeline.manifest`), opens every file it
lists and checks each open file against the manifest. When they all match, the open handles are
exactly that run's files: a writer that starts the next run replaces files by rename, which does
not touch the open ones. Reads go through `/proc/self/fd/<n>` (a fresh open of the same file, so
threads never share a file offset); where /proc is missing the plain path is used and the
guarantee is weaker (documented in docs/api.md).

A warehouse without a manifest (written before manifests existed) is read best-effort: the
tables are opened when none of them changed in the last `QUIET_SECONDS`.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import polars as pl

from audience_pipeline.manifest import (
    MANIFEST_FILE,
    NORMALIZED_INPUTS,
    SERVED_TABLES,
    FileEntry,
    Manifest,
    parse_manifest,
)

QUIET_SECONDS = 2.0
_PROC_FD = Path("/proc/self/fd")


class SnapshotChanged(Exception):
    """The folder's files do not match its manifest (a run is being written): try again."""


class SnapshotMissing(FileNotFoundError):
    """The folder holds no computed warehouse."""


def _close_all(handles: list[BinaryIO]) -> None:
    for handle in handles:
        handle.close()


@dataclass
class Snapshot:
    """The pinned files of one run; closed when the last reference goes away."""

    directory: Path
    manifest: Manifest
    handles: dict[str, BinaryIO]
    inputs_problem: str | None  # why the inputs cannot be used, or None
    manifest_stat: tuple[int, int, int] = (0, 0, 0)  # changes whenever a run publishes
    _cache: dict[str, object] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        weakref.finalize(self, _close_all, list(self.handles.values()))

    @property
    def as_of(self) -> datetime:
        return self.manifest.as_of

    def source(self, name: str) -> str:
        """A path that reads the pinned file `name` (a table or an input)."""
        handle = self.handles[name]
        if _PROC_FD.is_dir():
            return str(_PROC_FD / str(handle.fileno()))
        return str(self.directory / self.manifest.files[name].path)

    def has(self, name: str) -> bool:
        return name in self.handles

    def table(self, name: str, columns: list[str] | None = None) -> pl.DataFrame:
        return pl.read_parquet(self.source(name), columns=columns)

    def scan(self, name: str) -> pl.LazyFrame:
        return pl.scan_parquet(self.source(name))

    def json_columns(self, table: str) -> tuple[str, ...]:
        return self.manifest.json_columns.get(table, ())

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
        if self.inputs_problem is None and self.manifest.layout == "normalized":
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
        if self.manifest.layout == "normalized":
            profiles = self.scan("message_profiles")
            events = self.scan("events").join(profiles, on="seq", how="inner")
            return events, self.scan("trait_updates")
        # Dagster: daily partitions (each numbered from 0), stacked as the engine stacks them;
        # the state maps messages to profiles by (source, line).
        from audience_pipeline.membership.pipeline import combine_partitions

        days = sorted(n.split("/", 1)[1] for n in self.handles if n.startswith("raw_events/"))
        stacked, updates = combine_partitions(
            [self.table(f"raw_events/{d}") for d in days],
            [self.table(f"raw_trait_updates/{d}") for d in days],
        )
        owners = self.table("state_messages", ["source", "line", "profile_id"])
        return stacked.join(owners, on=["source", "line"], how="inner").lazy(), updates.lazy()


def _fingerprint(directory: Path) -> tuple[int, int, int] | None:
    try:
        stat = (directory / MANIFEST_FILE).stat()
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def manifest_fingerprint(directory: Path) -> tuple[int, int, int] | None:
    """The manifest file's identity: it changes exactly when a run publishes a new manifest."""
    return _fingerprint(Path(directory))


def open_snapshot(directory: Path) -> Snapshot:
    """Open the warehouse's current run.

    Raises:
        SnapshotChanged: its files do not match the manifest (a run is being written).
        SnapshotMissing: no warehouse tables there.
    """
    directory = Path(directory)
    try:
        with open(directory / MANIFEST_FILE, "rb") as handle:
            stat = os.fstat(handle.fileno())
            raw = handle.read()
    except FileNotFoundError:
        return _open_without_manifest(directory)
    manifest = parse_manifest(raw)
    handles: dict[str, BinaryIO] = {}
    problem: str | None = None
    try:
        for name, entry in manifest.files.items():
            opened = _open_matching(directory, entry)
            if opened is None:
                if entry.role == "table":
                    msg = f"{entry.path} changed since {MANIFEST_FILE} was written"
                    raise SnapshotChanged(msg)
                problem = problem or f"{entry.path} changed since the run (inputs unavailable)"
                continue
            handles[name] = opened
    except BaseException:
        _close_all(list(handles.values()))
        raise
    missing = [t for t in SERVED_TABLES if t not in handles]
    if missing:
        _close_all(list(handles.values()))
        msg = f"{directory}: the manifest lists no {', '.join(missing)}"
        raise SnapshotMissing(msg)
    if manifest.layout == "none":
        problem = problem or "the run kept no normalized messages (compute --keep-normalized)"
    if problem is not None:
        for name in [n for n in handles if manifest.files[n].role == "input"]:
            handles.pop(name).close()
    return Snapshot(
        directory, manifest, handles, problem, (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    )


def _open_matching(directory: Path, entry: FileEntry) -> BinaryIO | None:
    try:
        handle = open(directory / entry.path, "rb")  # noqa: SIM115  (kept open by the snapshot)
    except FileNotFoundError:
        return None
    if not entry.matches(os.fstat(handle.fileno())):
        handle.close()
        return None
    return handle


def _open_without_manifest(directory: Path) -> Snapshot:
    """Best effort for folders written before manifests: quiet files, as-of from memberships."""
    names = [t for t in SERVED_TABLES if (directory / f"{t}.parquet").exists()]
    if "memberships" not in names or "identities" not in names:
        msg = f"{directory}: no computed warehouse (run `audience-pipeline compute` first)"
        raise SnapshotMissing(msg)
    inputs = {
        n: f"_normalized/{f}"
        for n, f in NORMALIZED_INPUTS.items()
        if (directory / "_normalized" / f).exists()
    }
    relative = {**{t: f"{t}.parquet" for t in names}, **inputs}
    handles: dict[str, BinaryIO] = {}
    entries: dict[str, FileEntry] = {}
    now = time.time()
    try:
        for name, rel in relative.items():
            handle = open(directory / rel, "rb")  # noqa: SIM115
            handles[name] = handle
            st = os.fstat(handle.fileno())
            if now - st.st_mtime < QUIET_SECONDS:
                msg = f"{rel} was just written; waiting for the run to finish"
                raise SnapshotChanged(msg)
            role = "input" if name in inputs else "table"
            entries[name] = FileEntry(rel, role, st.st_ino, st.st_size, st.st_mtime_ns)
    except BaseException:
        _close_all(list(handles.values()))
        raise
    as_of_frame = pl.read_parquet(handles["memberships"], columns=["as_of"]).head(1)
    if as_of_frame.height == 0:
        _close_all(list(handles.values()))
        msg = f"{directory}: no manifest and no memberships to date the run"
        raise SnapshotMissing(msg)
    as_of = as_of_frame["as_of"][0]
    complete = len(inputs) == len(NORMALIZED_INPUTS)
    manifest = Manifest(as_of, "normalized" if complete else "none", entries, {})
    problem = None if complete else "no normalized messages with their profiles in this warehouse"
    return Snapshot(directory, manifest, handles, problem)


def open_snapshot_waiting(directory: Path, *, timeout: float = 30.0) -> Snapshot:
    """`open_snapshot`, retried while a run is being written (up to `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return open_snapshot(directory)
        except SnapshotChanged:
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


__all__ = [
    "Snapshot",
    "SnapshotChanged",
    "SnapshotMissing",
    "manifest_fingerprint",
    "open_snapshot",
    "open_snapshot_waiting",
]
