"""Retries on tenacity keep the seeded, deterministic backoff: the waits a seeded sender sleeps are
the draws an independent formula makes from the same seed (full jitter, uniform(0, min(cap,
base * 2**(n-1))) after failed attempt n, none after the last attempt, Retry-After as given)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_pipeline.destinations.retry import (
    DeliveryError,
    RetryPolicy,
    RetryStats,
    TransientError,
    call_with_retries,
)

# One call: how many attempts fail (each with a Retry-After or None) before success, or all fail.
calls = st.lists(
    st.tuples(st.lists(st.sampled_from([None, None, 0.0, 2.5, 999.0]), max_size=6), st.booleans()),
    min_size=1,
    max_size=4,
)


def _expected(script: list[tuple[list[float | None], bool]], policy: RetryPolicy,
              seed: int) -> tuple[list[float], list[str]]:  # fmt: skip
    """The waits and outcomes, drawn from an independent stream with the same seed."""
    rng = random.Random(seed)
    waits: list[float] = []
    outcomes: list[str] = []
    for failures, succeeds in script:
        failures = failures if succeeds else failures + [None] * policy.max_attempts
        for attempt, retry_after in enumerate(failures[: policy.max_attempts], start=1):
            if attempt == policy.max_attempts:
                break
            if retry_after is not None:
                waits.append(min(retry_after, policy.max_retry_after))
            else:
                cap = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
                waits.append(rng.uniform(0.0, cap))
        done = succeeds and len(failures) < policy.max_attempts
        outcomes.append("ok" if done else "failed")
    return waits, outcomes


@settings(max_examples=200, deadline=None)
@given(calls, st.integers(1, 5), st.integers(0, 2**32))
def test_seeded_waits_follow_the_formula(
    script: list[tuple[list[float | None], bool]], attempts: int, seed: int
) -> None:
    policy = RetryPolicy(max_attempts=attempts, base_delay=0.5, max_delay=4.0)
    rng, stats = random.Random(seed), RetryStats()
    waits: list[float] = []
    outcomes: list[str] = []
    for failures, succeeds in script:
        pending = [*failures, *([] if succeeds else [None] * attempts)]

        def action(pending: list[float | None] = pending) -> str:
            if pending:
                raise TransientError("busy", retry_after=pending.pop(0))
            return "ok"

        try:
            outcomes.append(call_with_retries(action, policy, stats=stats, rng=rng,
                                              sleep=waits.append))  # fmt: skip
        except DeliveryError:
            outcomes.append("failed")
    want_waits, want_outcomes = _expected(script, policy, seed)
    assert outcomes == want_outcomes
    assert waits == pytest.approx(want_waits)
    assert stats.retries == len(want_waits) and stats.waited == pytest.approx(sum(want_waits))
