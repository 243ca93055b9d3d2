"""POSTing JSON batches with httpx: status classification, retries and the rate limit."""

from __future__ import annotations

import random
from collections.abc import Mapping

import httpx

from audience_pipeline.destinations.retry import (
    PermanentError,
    RateLimiter,
    RetryPolicy,
    RetryStats,
    TransientError,
    call_with_retries,
    parse_retry_after,
)

RETRY_STATUSES = frozenset({408, 425, 429})


class HttpPoster:
    """One connection pool per destination; every POST goes through retries and the limiter."""

    def __init__(self, *, timeout: float, policy: RetryPolicy, rate_limit: float | None,
                 auth: tuple[str, str] | None = None, seed: int | None = None) -> None:  # fmt: skip
        self.client = httpx.Client(timeout=timeout, auth=auth)
        self.policy = policy
        self.limiter = RateLimiter(rate_limit)
        self.stats = RetryStats()
        self.requests = 0
        self._rng = random.Random(seed)

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, what: str) -> None:
        """POST ``body`` until a 2xx answer (raises DeliveryError otherwise)."""

        def attempt() -> None:
            self.requests += 1
            try:
                response = self.client.post(url, content=body, headers=dict(headers))
            except httpx.TimeoutException as error:
                msg = f"timeout ({type(error).__name__})"
                raise TransientError(msg) from error
            except httpx.TransportError as error:  # refused, reset, dropped mid-response
                msg = f"connection error ({type(error).__name__}: {error})"
                raise TransientError(msg) from error
            status = response.status_code
            if 200 <= status < 300:
                return
            detail = f"HTTP {status}: {response.text[:200]}"
            if status in RETRY_STATUSES or status >= 500:
                raise TransientError(detail, parse_retry_after(response.headers.get("Retry-After")))
            raise PermanentError(detail)

        call_with_retries(attempt, self.policy, stats=self.stats, limiter=self.limiter,
                          rng=self._rng, what=what)  # fmt: skip

    def close(self) -> None:
        self.client.close()
