"""`_manifest.json`: which files make up one run of a warehouse folder, written last.

Tables are replaced one file at a time (atomically each, see `storage.write_table`), so a reader
that opens them one by one while a run is writing can get a mix of two runs. The writer therefore
finishes a run by writing this manifest (atomically): for every file of the run its inode, size
and modification time. A reader opens every listed file and compares `fstat` with the manifest;
when all match, the open file handles hold exactly one run's files, whatever the writer does next
(on POSIX a replaced file lives on while a handle is open). See `audience_pipeline.snapshot`.

Files have two roles: `table` (the engine's output; any mismatch means "a run is being written,
try again") and `input` (the normalized messages and the message -> profile map, used by the
Profile API's events and by explain; a mismatch only makes them unavailable).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl

MANIFEST_FILE = "_manifest.json"
FORMAT = 1
# The tables the Profile API and explain read; memberships is the one every writer writes last.
SERVED_TABLES = (
    "identities",
    "user_traits",
    "account_traits",
    "memberships",
    "account_user_memberships",
)


@dataclass(frozen=True)
class FileEntry:
    """One file of a run: where it is (relative to the warehouse) and its fingerprint."""

    path: str
    role: str  # "table" | "input"
    ino: int
    size: int
    mtime_ns: int

    def matches(self, stat: os.stat_result) -> bool:
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns) == (self.ino, self.size, self.mtime_ns)


@dataclass(frozen=True)
class Manifest:
    """A run's manifest: as-of, layout of its inputs, JSON-text trait columns and files."""

    as_of: datetime
    layout: str  # "normalized" (compute) | "partitions" (Dagster) | "none"
    files: dict[str, FileEntry]
    json_columns: dict[str, tuple[str, ...]]
    written_at: datetime | None = None


def fingerprint(directory: Path, name: str, relative: str, role: str) -> tuple[str, FileEntry]:
    stat = (directory / relative).stat()
    return name, FileEntry(relative, role, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def write_manifest(
    directory: Path,
    *,
    as_of: datetime,
    tables: Iterable[str] = SERVED_TABLES,
    inputs: Mapping[str, str] | None = None,
    layout: str = "none",
    json_columns: Mapping[str, Iterable[str]] | None = None,
) -> Path:
    """Record the run's files (call after every file of the run is in place).

    Args:
        directory: the warehouse folder.
        as_of: the run's as-of.
        tables: table names (`<name>.parquet` in the folder) that form the run.
        inputs: logical name -> path relative to the folder (normalized messages, the
            message -> profile map, partitions).
        layout: how the inputs are laid out ("normalized", "partitions" or "none").
        json_columns: per table, the trait columns stored as JSON text (mixed JSON types).
    """
    directory = Path(directory)
    files = dict(fingerprint(directory, name, f"{name}.parquet", "table") for name in tables)
    files.update(fingerprint(directory, n, rel, "input") for n, rel in (inputs or {}).items())
    payload: dict[str, Any] = {
        "format": FORMAT,
        "as_of": as_of.astimezone(UTC).isoformat(),
        "written_at": datetime.now(UTC).isoformat(),
        "layout": layout if inputs else "none",
        "json_columns": {k: sorted(v) for k, v in (json_columns or {}).items()},
        "files": {name: vars(entry) for name, entry in sorted(files.items())},
    }
    target = directory / MANIFEST_FILE
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


PARTITIONED_INPUTS = ("raw_events", "raw_trait_updates")
NORMALIZED_INPUTS = {
    "events": "events.parquet",
    "trait_updates": "trait_updates.parquet",
    "message_profiles": "message_profiles.parquet",
}


def staging_folder(folder: Path) -> Path:
    """A new, empty staging folder inside the warehouse's `_normalized` folder, where a run
    writes its normalized messages before `publish_normalized` moves them in."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".staging.", dir=folder))


def publish_normalized(
    staging: Path, message_profiles: pl.DataFrame, folder: Path
) -> dict[str, str]:
    """Move a run's normalized messages (in `staging`, see `staging_folder`) and its message ->
    profile map into `folder` (the caller removes the emptied `staging`).

    Files are moved in with `os.replace`, never rewritten in place: a reader holding the
    previous run's files keeps reading them intact. Ingestion writes straight into the staging
    folder, so the normalized events are written once.

    Args:
        staging: the staging folder holding the files `write_normalized` writes.
        message_profiles: `seq` -> `profile_id` of every message at or before the as-of.
        folder: the warehouse's `_normalized` folder.

    Returns:
        The inputs (logical name -> path relative to the warehouse) for `write_manifest`.
    """
    folder = Path(folder)
    message_profiles.write_parquet(staging / NORMALIZED_INPUTS["message_profiles"])
    for path in sorted(p for p in staging.iterdir() if p.is_file()):
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(path, folder / path.name)
    return {name: f"{folder.name}/{file}" for name, file in NORMALIZED_INPUTS.items()}


def publish_run(
    warehouse: Path,
    as_of: datetime,
    json_columns: Mapping[str, Iterable[str]],
    state_dir: str,
) -> Path | None:
    """The Dagster pipeline's manifest, written after the engine's tables and its state.

    Its inputs are the daily partitions of raw events and trait updates and the state's
    message -> profile map (`<state_dir>/<version>/messages.parquet`, by source and line).
    Returns None (and writes nothing) when a served table is not a Parquet file of the folder,
    e.g. under another IO manager.
    """
    warehouse = Path(warehouse)
    if not all((warehouse / f"{name}.parquet").exists() for name in SERVED_TABLES):
        return None
    inputs: dict[str, str] = {}
    pointer = warehouse / state_dir / "CURRENT"
    if pointer.exists():
        inputs["state_messages"] = f"{state_dir}/{pointer.read_text().strip()}/messages.parquet"
    for table in PARTITIONED_INPUTS:
        for path in sorted((warehouse / table).glob("*.parquet")):
            inputs[f"{table}/{path.stem}"] = f"{table}/{path.name}"
    return write_manifest(
        warehouse, as_of=as_of, inputs=inputs, layout="partitions", json_columns=json_columns
    )


def parse_manifest(raw: bytes) -> Manifest:
    """Parse manifest bytes; raises ValueError when they are not a manifest of this format."""
    try:
        data = orjson.loads(raw)
        if data.get("format") != FORMAT:
            msg = f"unsupported manifest format {data.get('format')!r}"
            raise ValueError(msg)
        files = {name: FileEntry(**entry) for name, entry in data["files"].items()}
        written = data.get("written_at")
        return Manifest(
            as_of=datetime.fromisoformat(data["as_of"]),
            layout=str(data.get("layout", "none")),
            files=files,
            json_columns={k: tuple(v) for k, v in data.get("json_columns", {}).items()},
            written_at=datetime.fromisoformat(written) if written else None,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        msg = f"not a warehouse manifest: {error}"
        raise ValueError(msg) from error


def read_manifest(directory: Path) -> Manifest | None:
    path = Path(directory) / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    return parse_manifest(raw)


__all__ = [
    "MANIFEST_FILE",
    "SERVED_TABLES",
    "FileEntry",
    "Manifest",
    "parse_manifest",
    "publish_normalized",
    "staging_folder",
    "publish_run",
    "read_manifest",
    "write_manifest",
]
