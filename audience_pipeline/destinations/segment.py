"""`segment`: the Segment / RudderStack HTTP tracking API, ``POST <endpoint>/v1/batch``.

Authenticates with the source's write key (basic auth, the key as user name and an empty
password), read from the environment variable ``settings.write_key_env``. Requests stay under the
API's 500 KB batch limit: a batch that would be larger is split into several requests.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from audience_pipeline.destinations.base import SendContext
from audience_pipeline.destinations.http import HttpPoster
from audience_pipeline.destinations.webhook import PreparedMessages, batch_body

DEFAULT_ENDPOINT = "https://api.segment.io"
MAX_REQUEST_BYTES = 475_000  # the API allows 500 KB; keep a margin for sentAt and framing


def split_by_size(messages: list[bytes], limit: int = MAX_REQUEST_BYTES) -> list[list[bytes]]:
    """Encoded messages grouped so that each group's JSON array stays under ``limit`` bytes."""
    groups: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for encoded in messages:
        if current and size + len(encoded) + 1 > limit:
            groups.append(current)
            current, size = [], 0
        current.append(encoded)
        size += len(encoded) + 1
    if current:
        groups.append(current)
    return groups


class SegmentSender:
    def __init__(self, ctx: SendContext) -> None:
        settings = ctx.destination.settings
        self.ctx = ctx
        endpoint = str(settings.get("endpoint", DEFAULT_ENDPOINT)).rstrip("/")
        self.url = endpoint + "/v1/batch"
        write_key = ctx.destination.secret("write_key_env") or ""
        self.poster = HttpPoster(timeout=ctx.destination.timeout_seconds, policy=ctx.policy,
                                 rate_limit=ctx.destination.rate_limit, auth=(write_key, ""))  # fmt: skip
        self.messages = 0
        self.prepared = PreparedMessages(ctx)

    @property
    def requests(self) -> int:
        return self.poster.requests

    @property
    def retries(self) -> int:
        return self.poster.stats.retries

    def prepare(self, chunk: pl.DataFrame) -> None:
        self.prepared.prepare(chunk)

    def send(self, batch: pl.DataFrame) -> None:
        d = self.ctx.destination
        for group in split_by_size(self.prepared.take_list(batch)):
            body = batch_body(group)
            self.poster.post(self.url, body, {"Content-Type": "application/json"},
                             what=f"{d.name}: POST {self.url}")  # fmt: skip
            self.messages += len(group)

    def finish(self, synced: Callable[[], pl.DataFrame]) -> None:
        return None

    def close(self) -> None:
        self.poster.close()
