"""Retries, backoff and rate limits: the one place every destination gets them from.

A call that fails transiently (HTTP 429/408/5xx, a timeout, a dropped connection, a lost database
connection) is retried with exponential backoff and full jitter, or after exactly the server's
``Retry-After`` when it gives one. Anything else fails at once. A destination's request rate is
capped by spacing request starts at least ``1 / rate`` seconds apart.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

log = logging.getLogger(__name__)
T = TypeVar("T")


class TransientError(Exception):
    """Worth retrying; ``retry_after`` is the server's wish in seconds, if it said one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Retrying will not help (a 4xx other than 408/429, a bad configuration)."""


class DeliveryError(Exception):
    """A batch could not be delivered: permanently, or after every attempt failed."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n))."""

    max_attempts: int = 8
    base_delay: float = 0.25
    max_delay: float = 30.0
    max_retry_after: float = 300.0  # a Retry-After longer than this is cut to it

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return max(0.0, min(retry_after, self.max_retry_after))
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RateLimiter:
    """At most ``rate`` starts per second (None: unlimited); thread-safe."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
        self.interval = 0.0 if not rate else 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> None:
        if self.interval == 0.0:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


@dataclass
class RetryStats:
    attempts: int = 0
    retries: int = 0
    waited: float = 0.0
    errors: list[str] = field(default_factory=list)


def call_with_retries(
    action: Callable[[], T],
    policy: RetryPolicy,
    *,
    stats: RetryStats | None = None,
    limiter: RateLimiter | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
    what: str = "request",
) -> T:
    """Run ``action`` until it succeeds, raises PermanentError, or runs out of attempts
    (tenacity's loop; the waits are `policy.delay`'s, drawn from `rng`, so a seeded `rng`
    gives the same waits every time).

    Raises:
        DeliveryError: on a permanent error, or when every attempt failed transiently.
    """
    if policy.max_attempts < 1:
        msg = f"{what}: no attempts allowed"
        raise DeliveryError(msg)
    stats = stats if stats is not None else RetryStats()
    rng = rng or random.Random()

    def attempt() -> T:
        if limiter is not None:
            limiter.acquire()
        stats.attempts += 1
        try:
            return action()
        except PermanentError as error:
            msg = f"{what} failed permanently: {error}"
            raise DeliveryError(msg) from error
        except TransientError as error:
            stats.errors.append(str(error))
            raise

    def wait(state: RetryCallState) -> float:
        if state.attempt_number >= policy.max_attempts:
            return 0.0  # no wait follows the last attempt: keep `rng`'s draws for later calls
        return policy.delay(state.attempt_number, _failure(state).retry_after, rng)

    def before_sleep(state: RetryCallState) -> None:
        seconds = state.upcoming_sleep
        log.info("%s: %s; retry %d in %.2fs", what, _failure(state), state.attempt_number, seconds)
        stats.retries += 1
        stats.waited += seconds

    retrying = Retrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait,
        retry=retry_if_exception_type(TransientError),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except TransientError as error:
        msg = f"{what} failed after {policy.max_attempts} attempts: {error}"
        raise DeliveryError(msg) from error


def _failure(state: RetryCallState) -> TransientError:
    assert state.outcome is not None
    error = state.outcome.exception()
    assert isinstance(error, TransientError)
    return error
