"""`webhook`: Segment-spec JSON batches POSTed to a URL, signed with HMAC-SHA256.

Body: ``{"batch": [messages...], "sentAt": ISO}``. When ``settings.secret_env`` names an
environment variable, the header ``X-Signature`` (or ``settings.signature_header``) carries the
hex HMAC-SHA256 of the exact body bytes under that secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import polars as pl

from audience_pipeline.destinations.base import SendContext
from audience_pipeline.destinations.encode import encode_frame
from audience_pipeline.destinations.http import HttpPoster

SIGNATURE_HEADER = "X-Signature"


def sign(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body`` under ``secret`` (what a receiver recomputes to verify)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sent_at() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PreparedMessages:
    """Encoded messages of outbox batches, built a chunk of batches at a time.

    ``prepare(chunk)`` encodes a chunk of outbox rows column-wise and keeps, per batch, its
    messages already joined into the JSON array text (one string per batch: no per-message
    Python). ``take(batch)`` returns what was prepared for exactly that batch (same number,
    first seq and size), else encodes the batch on the spot.
    """

    def __init__(self, ctx: SendContext) -> None:
        self.ctx = ctx
        self.ready: dict[tuple[int, int, int], tuple[bytes, int]] = {}

    @staticmethod
    def _key(first_batch: int, first_seq: int, height: int) -> tuple[int, int, int]:
        return (first_batch, first_seq, height)

    def _joined(self, rows: pl.DataFrame, by: str) -> pl.DataFrame:
        """Per value of column ``by``: the comma-joined messages and their count."""
        c = self.ctx
        encoded = encode_frame(c.destination.name, rows, c.audiences, c.personas)
        # encoded is in message order; each message takes its change's ``by`` value
        keyed = encoded.with_columns(rows[by].gather(encoded["row"]).alias(by))
        return keyed.group_by(by, maintain_order=True).agg(
            pl.col("json").str.join(","), pl.len().alias("count")
        )

    def prepare(self, chunk: pl.DataFrame) -> None:
        self.ready.clear()
        if chunk.is_empty():
            return
        shapes = chunk.group_by("batch", maintain_order=True).agg(
            pl.col("seq").first(), pl.len().alias("height")
        )
        joined = self._joined(chunk, "batch").join(shapes, on="batch", how="left")
        for batch, text, count, seq, height in joined.iter_rows():
            self.ready[self._key(batch, seq, height)] = (text.encode(), count)

    def take(self, batch: pl.DataFrame) -> tuple[bytes, int]:
        """The messages of ``batch`` as the inside of a JSON array, and how many."""
        if batch.is_empty():
            return b"", 0
        if "seq" in batch.columns and "batch" in batch.columns:
            key = self._key(int(batch["batch"][0]), int(batch["seq"][0]), batch.height)
            if key in self.ready:
                return self.ready.pop(key)
        rows = self._joined(batch.with_columns(pl.lit(0).alias("_all")), "_all")
        if rows.is_empty():
            return b"", 0
        return str(rows["json"][0]).encode(), int(rows["count"][0])

    def take_list(self, batch: pl.DataFrame) -> list[bytes]:
        """The messages of ``batch`` one by one (for requests split by size)."""
        text, count = self.take(batch)
        if not count:
            return []
        # Messages are objects joined by commas; orjson re-encodes each one exactly.
        return [orjson.dumps(m) for m in orjson.loads(b"[" + text + b"]")]


def batch_body(messages: list[bytes] | bytes) -> bytes:
    """``{"batch":[...],"sentAt":...}`` around already encoded messages (a list, or the inside
    of the array as one text)."""
    inside = messages if isinstance(messages, bytes) else b",".join(messages)
    return b'{"batch":[' + inside + b'],"sentAt":' + orjson.dumps(sent_at()) + b"}"


class WebhookSender:
    def __init__(self, ctx: SendContext) -> None:
        settings = ctx.destination.settings
        self.ctx = ctx
        self.url = str(settings["url"])
        self.secret = ctx.destination.secret("secret_env")
        self.header = str(settings.get("signature_header", SIGNATURE_HEADER))
        self.extra_headers = {str(k): str(v) for k, v in (settings.get("headers") or {}).items()}
        self.poster = HttpPoster(timeout=ctx.destination.timeout_seconds, policy=ctx.policy,
                                 rate_limit=ctx.destination.rate_limit)  # fmt: skip
        self.messages = 0
        self.prepared = PreparedMessages(ctx)

    @property
    def requests(self) -> int:
        return self.poster.requests

    @property
    def retries(self) -> int:
        return self.poster.stats.retries

    def prepare(self, chunk: pl.DataFrame) -> None:
        """Build the messages of many outbox batches at once (see :class:`PreparedMessages`)."""
        self.prepared.prepare(chunk)

    def send(self, batch: pl.DataFrame) -> None:
        d = self.ctx.destination
        messages, count = self.prepared.take(batch)
        if not count:
            return
        body = batch_body(messages)
        headers = {"Content-Type": "application/json", **self.extra_headers}
        if self.secret is not None:
            headers[self.header] = sign(self.secret, body)
        self.poster.post(self.url, body, headers, what=f"{d.name}: POST {self.url}")
        self.messages += count

    def finish(self, synced: Callable[[], pl.DataFrame]) -> None:
        return None

    def close(self) -> None:
        self.poster.close()
