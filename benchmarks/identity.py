"""Benchmark identity resolution on synthetic Segment-like traffic.

Builds, in Polars, messages from ``n / 10`` users: 79.8% track calls with a user_id only, 10%
track calls with an anonymous_id only, 10% identify calls linking user_id + email +
anonymous_id, 0.2% alias calls (userId with the user's anonymous id as previousId; typed
user_id when the alias comes before the user's first anonymous id, so the limit bites). One user in
a thousand uses one of seven shared emails, so the user_id limit (1) bites in a few components.
Prints the median of three timed runs of `resolve_identities` for each size.

Usage:
    python benchmarks/identity.py                     # 1M and 10M messages
    python benchmarks/identity.py --sizes 1000000     # one size
    python benchmarks/identity.py --check 200000      # also compare with resolve_sequential
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from datetime import UTC, datetime

import polars as pl

from audience_pipeline.identity import resolve_identities, resolve_sequential
from audience_pipeline.spec.models import SpaceConfig

T0 = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_US = 365 * 24 * 3600 * 1_000_000


def _rand(seed: int, modulo: int) -> pl.Expr:
    """A pseudo-random integer in 0..modulo-1 per row (stable for a given seed)."""
    return pl.col("seq").hash(seed) % modulo


def _ident(id_type: str, value: pl.Expr, when: pl.Expr) -> pl.Expr:
    return pl.when(when).then(pl.struct(id_type=pl.lit(id_type), id_value=value))


def synthetic_messages(n: int, seed: int = 0) -> pl.DataFrame:
    """``n`` messages in the identity input layout (see `resolve_identities`).

    Args:
        n: number of messages; users are ``n // 10``.
        seed: varies the pseudo-random draws.

    Returns:
        ``seq``, ``message_id``, ``type``, ``timestamp``, ``ids``, ``previous_id``.
    """
    n_users = max(n // 10, 1)
    kind = pl.col("kind")
    user = pl.col("user")
    user_id = pl.format("u{}", user)
    anon = pl.format("a{}", user)
    email = (
        pl.when(user % 1000 == 7)
        .then(pl.format("shared{}@example.com", user % 7))
        .otherwise(pl.format("e{}@example.com", user))
    )
    is_identify = kind < 100
    is_alias = (kind >= 100) & (kind < 102)
    is_anon_track = (kind >= 102) & (kind < 202)
    frame = pl.DataFrame({"seq": pl.int_range(0, n, dtype=pl.Int64, eager=True)})
    return (
        frame.with_columns(
            user=_rand(seed + 1, n_users).cast(pl.Int64),
            kind=_rand(seed + 2, 1000).cast(pl.Int64),
            offset=_rand(seed + 3, YEAR_US).cast(pl.Int64),
            mid=_rand(seed + 4, 1 << 62),
        )
        .select(
            "seq",
            message_id=pl.when(pl.col("mid") % 100 == 0)
            .then(None)
            .otherwise(pl.format("m{}", pl.col("mid"))),
            type=pl.when(is_identify)
            .then(pl.lit("identify"))
            .when(is_alias)
            .then(pl.lit("alias"))
            .otherwise(pl.lit("track")),
            timestamp=pl.lit(T0) + pl.duration(microseconds=pl.col("offset")),
            ids=pl.concat_list(
                _ident("user_id", user_id, ~is_anon_track),
                _ident("email", email, is_identify),
                _ident("anonymous_id", anon, is_identify | is_anon_track),
            ).list.drop_nulls(),
            previous_id=pl.when(is_alias).then(anon),
        )
        .with_columns(pl.col("timestamp").dt.cast_time_unit("us"))
    )


def time_resolve(messages: pl.DataFrame, space: SpaceConfig, runs: int = 3) -> float:
    """Median seconds of ``runs`` calls of `resolve_identities` (after one untimed warm-up)."""
    resolve_identities(messages, space)
    seconds = []
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        resolve_identities(messages, space)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def check(n: int, space: SpaceConfig) -> None:
    """Assert that `resolve_identities` equals `resolve_sequential` on ``n`` messages."""
    messages = synthetic_messages(n, seed=11)
    fast = resolve_identities(messages, space)
    slow = resolve_sequential(messages, space)
    assert fast.message_profiles.equals(slow.message_profiles), "message_profiles differ"
    assert fast.identities.equals(slow.identities), "identities differ"
    assert fast.stats["profiles"] == slow.stats["profiles"], "profile counts differ"
    print(f"check {n:>10,} messages: equal to resolve_sequential; stats {fast.stats}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--check", type=int, default=0, help="compare on this many messages")
    args = parser.parse_args()
    space = SpaceConfig()
    if args.check:
        check(args.check, space)
    for n in args.sizes:
        messages = synthetic_messages(n)
        result = resolve_identities(messages, space)
        seconds = time_resolve(messages, space, args.runs)
        print(
            f"{n:>10,} messages: {seconds:.3f} s (median of {args.runs}); "
            f"{result.stats['profiles']:,} profiles, "
            f"{result.stats['sequential_messages']:,} sequential messages"
        )


if __name__ == "__main__":
    main()
