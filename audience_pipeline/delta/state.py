"""The state a run leaves for the next incremental one, and how it is kept on disk.

A run's `_state` folder holds `messages.parquet` (each message's key and profile),
`links.parquet` (identifier value and type -> profile), `ties.parquet` (the messageIds of
messages sharing a timestamp) and `meta.json`; the engine tables are the run's own
(`tables_dir` `..`). The run's commit makes the folder the one the next run reads, so it is never half
written for a reader.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
import polars as pl

TABLES = ("identities", "user_traits", "account_traits", "memberships", "account_user_memberships")
# The state is rewritten by every run and read by the next one only: LZ4 writes in about half
# zstd's time and reads faster, for files about a third larger (benchmarks/incremental.py).
STATE_COMPRESSION = "lz4"


@dataclass
class EngineState:
    """What a run leaves for the next incremental one.

    Attributes:
        as_of: the run's as-of.
        fingerprint: `definitions_fingerprint` of the definitions it ran.
        tables: the five engine tables (identities, user_traits, account_traits, memberships,
            account_user_memberships).
        messages: source, line, profile_id, group_id of every message at or before as-of
            (group_id only on group calls).
        json_columns: per table, the trait columns stored as JSON text.
        links: value, id_type, profile_id: every identifier value a message of the profile
            holds, with its type (null for an alias's previousId); None in states written
            before it existed.
        ties: source, line, message_id of the messages whose timestamp another shares (what
            a refresh needs of messageIds, `delta.ties`); None in states written before it.
    """

    as_of: datetime
    fingerprint: str
    tables: dict[str, pl.DataFrame]
    messages: pl.DataFrame
    json_columns: dict[str, list[str]] = field(default_factory=dict)
    links: pl.DataFrame | None = None
    ties: pl.DataFrame | None = None


def save_state(state: EngineState, directory: Path, *, tables_dir: str | None = None) -> None:
    """Write the state into `directory` (a run's `_state` folder: the run's commit makes it
    the state the next run reads, so it is never half written for a reader).

    Args:
        state: the state.
        directory: an empty (or new) folder.
        tables_dir: where the state's tables already are, relative to `directory` (a run's
            own tables, `..`): they are then not written twice.
    """
    directory.mkdir(parents=True, exist_ok=True)
    frames = {"messages": state.messages}
    if state.links is not None:
        frames["links"] = state.links
    if state.ties is not None:
        frames["ties"] = state.ties
    if tables_dir is None:
        frames.update(state.tables)
    # Two files at a time: Polars releases the GIL while it encodes and writes.
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(
            pool.map(
                lambda item: item[1].write_parquet(
                    directory / f"{item[0]}.parquet", compression=STATE_COMPRESSION
                ),
                frames.items(),
            )
        )
    meta = {
        "as_of": state.as_of.isoformat(),
        "fingerprint": state.fingerprint,
        "json_columns": state.json_columns,
        "tables_dir": tables_dir or ".",
    }
    (directory / "meta.json").write_bytes(orjson.dumps(meta))


def load_state(directory: Path) -> EngineState | None:
    """The state `save_state` wrote into `directory`, or None."""
    if not (directory / "meta.json").exists():
        return None
    meta = orjson.loads((directory / "meta.json").read_bytes())
    tables_dir = directory / meta.get("tables_dir", ".")
    paths = {name: tables_dir / f"{name}.parquet" for name in TABLES}
    paths["messages"] = directory / "messages.parquet"
    for optional in ("links", "ties"):
        if (directory / f"{optional}.parquet").exists():
            paths[optional] = directory / f"{optional}.parquet"
    # Two files at a time (the largest first): Polars releases the GIL while it reads.
    order = sorted(paths, key=lambda name: -paths[name].stat().st_size)
    with ThreadPoolExecutor(max_workers=2) as pool:
        read = pool.map(lambda name: pl.read_parquet(paths[name]), order)
        frames = dict(zip(order, read, strict=True))
    return EngineState(
        as_of=datetime.fromisoformat(meta["as_of"]),
        fingerprint=meta["fingerprint"],
        tables={name: frames[name] for name in TABLES},
        messages=frames["messages"],
        json_columns={k: list(v) for k, v in meta["json_columns"].items()},
        links=frames.get("links"),
        ties=frames.get("ties"),
    )


__all__ = ["STATE_COMPRESSION", "TABLES", "EngineState", "load_state", "save_state"]
