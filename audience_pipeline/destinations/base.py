"""What every destination type implements, and what a sync hands it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import polars as pl

from audience_pipeline.destinations.config import Destination
from audience_pipeline.destinations.payloads import AudienceInfo, PersonasContext
from audience_pipeline.destinations.retry import RetryPolicy


@dataclass(frozen=True)
class SendContext:
    destination: Destination
    audiences: dict[str, AudienceInfo]  # connected audiences by key
    personas: PersonasContext
    warehouse_dir: Path
    policy: RetryPolicy


class Sender(Protocol):
    """Delivers outbox batches; ``send`` must be idempotent for a resent batch."""

    @property
    def messages(self) -> int:
        """Messages (or rows) delivered."""

    @property
    def requests(self) -> int:
        """Requests (or transactions) attempted, retries included."""

    @property
    def retries(self) -> int:
        """Attempts that were retries."""

    def send(self, batch: pl.DataFrame) -> None:
        """Deliver one batch (outbox rows) or raise DeliveryError."""

    def finish(self, synced: Callable[[], pl.DataFrame]) -> None:
        """After every batch is acknowledged; ``synced()`` reads the destination's state (only
        called by senders that need it: reading a million rows costs seconds)."""

    def close(self) -> None: ...
