"""A realistic Segment-spec event generator for the demo space and the benchmarks.

It simulates a web + mobile shop with B2B accounts: anonymous visitors who later sign up
(identify with userId + anonymousId + email), an e-commerce funnel, sign-ins, page and screen
calls, email campaigns, group calls with account traits, aliases, retried messages (duplicate
messageIds) and a few unusable lines. Every person and account is a pure function of
(seed, index), so memory stays flat however many events are asked for: nothing is kept per
profile. The period is cut into blocks of about 4,000 lines, each seeded by (seed, file, block):
blocks are generated (and gzip-compressed, one gzip member each) in worker processes and written
in order, so the output is the same bytes whatever the number of workers.

Intentionally unusable lines all carry the marker ``bad-line-<reason>-`` in their text (the
start of their messageId), so tests and users can find them; ``GenerateStats.bad_lines`` counts
them by reason.

The parts live in this package: catalog (names and tables), clock (ids and timestamps), world
(people, accounts, products), messages / shopping / identity / engagement / sessions (what a
visit sends), bad_lines, blocks (a block's state), jobs (one block of lines), writer (`generate`);
this module is the command line and re-exports what callers import.

Run it as ``python -m audience_pipeline.demo.generate --events 1000000 --out data/events``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from audience_pipeline.demo.catalog import (
    BAD_LINE_MARKER,
    BAD_REASONS,
    DEFAULT_AS_OF,
    EVENT_NAMES,
)
from audience_pipeline.demo.writer import GenerateStats, generate

logger = logging.getLogger(__name__)

__all__ = [
    "BAD_LINE_MARKER",
    "BAD_REASONS",
    "DEFAULT_AS_OF",
    "EVENT_NAMES",
    "GenerateStats",
    "generate",
    "main",
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audience-pipeline-generate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--events", type=int, default=10_000, help="lines to write (default 10000)")
    parser.add_argument("--profiles", type=int, default=None, help="people (default events // 10)")
    parser.add_argument(
        "--accounts", type=int, default=None, help="accounts (default profiles // 20)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--as-of", default=DEFAULT_AS_OF.isoformat(), help="end of the period (ISO-8601)"
    )
    parser.add_argument("--days", type=int, default=120, help="length of the period in days")
    parser.add_argument("--files", type=int, default=1, help="number of files (time slices)")
    parser.add_argument("--no-gzip", action="store_true", help="write plain .jsonl")
    parser.add_argument("--no-bad-lines", action="store_true", help="leave out the unusable lines")
    parser.add_argument("--out", type=Path, default=Path("data/events"), help="output folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `python -m audience_pipeline.demo.generate --events N --out DIR`."""
    parser = _parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        as_of = datetime.fromisoformat(args.as_of.replace("Z", "+00:00"))
    except ValueError:
        parser.error(f"--as-of: not an ISO-8601 timestamp: {args.as_of!r}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        stats = generate(
            args.out,
            events=args.events,
            profiles=args.profiles,
            accounts=args.accounts,
            seed=args.seed,
            as_of=as_of,
            days=args.days,
            files=args.files,
            gzip=not args.no_gzip,
            bad_lines=not args.no_bad_lines,
        )
    except ValueError as error:
        parser.error(str(error))
    logger.info("wrote %s .. %s", stats.files[0], stats.files[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
