"""`files`: per audience a CSV and/or Parquet file of its current members, plus change files.

Under ``settings.path`` (relative paths are relative to the working directory):

- ``<audience_key>.csv`` / ``<audience_key>.parquet``: audience_key, level, entity_id,
  external_ids (JSON), rewritten atomically at the end of every successful sync;
- ``changes/<audience_key>/<as_of>-<hash>.csv|parquet``: the changes of one batch, named by the
  batch's content so that a resent batch overwrites its own file instead of adding one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl

from audience_pipeline.destinations.base import SendContext

FORMATS = ("csv", "parquet")
SNAPSHOT_COLUMNS = ["audience_key", "level", "entity_id", "external_ids"]


def _write_atomic(frame: pl.DataFrame, target: Path, fmt: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        if fmt == "csv":
            frame.write_csv(tmp)
        else:
            frame.write_parquet(tmp, compression="zstd")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FilesSender:
    def __init__(self, ctx: SendContext) -> None:
        settings = ctx.destination.settings
        self.ctx = ctx
        self.root = Path(str(settings["path"]))
        formats = settings.get("formats", list(FORMATS))
        formats = [formats] if isinstance(formats, str) else list(formats)
        bad = [f for f in formats if f not in FORMATS]
        if bad or not formats:
            msg = f"{ctx.destination.file}: settings.formats: csv and/or parquet, got {formats}"
            raise ValueError(msg)
        self.formats = formats
        self.messages = 0
        self.requests = 0
        self.retries = 0

    def send(self, batch: pl.DataFrame) -> None:
        self.requests += 1
        rows = batch.select(
            "audience_key", "level", "entity_id", "change",
            pl.col("ids").alias("external_ids"), "as_of",
        )  # fmt: skip
        for (key,), part in rows.group_by("audience_key", maintain_order=True):
            digest = hashlib.sha256()
            for row in part.select("level", "entity_id", "change", "external_ids").iter_rows():
                digest.update("\x1f".join(row).encode() + b"\x1e")
            stamp = str(part["as_of"][0]).replace(":", "").replace("-", "")
            for fmt in self.formats:
                target = (
                    self.root / "changes" / str(key) / f"{stamp}-{digest.hexdigest()[:16]}.{fmt}"
                )
                _write_atomic(part, target, fmt)
        self.messages += batch.height

    def finish(self, synced: Callable[[], pl.DataFrame]) -> None:
        state = synced().rename({"ids": "external_ids"}).select(SNAPSHOT_COLUMNS)
        for key in sorted(self.ctx.audiences):
            members = state.filter(pl.col("audience_key") == key).sort("level", "entity_id")
            for fmt in self.formats:
                _write_atomic(members, self.root / f"{key}.{fmt}", fmt)

    def close(self) -> None:
        return None
