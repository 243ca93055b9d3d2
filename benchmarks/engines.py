"""Polars engine vs the DuckDB SQL backend on the same data, in one run.

    python benchmarks/engines.py [--events 200000] [--definitions definitions] [--data DIR]

Generates demo events (or reads a folder of them), ingests once, then computes the space with
both engines three times each and prints the medians and `polars_vs_duckdb: <ratio>` (Polars
time / DuckDB time; below 1.0 means Polars is faster).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from audience_pipeline.demo.generate import DEFAULT_AS_OF, generate
from audience_pipeline.engine.compute import compute
from audience_pipeline.ingest import ingest
from audience_pipeline.spec.compile import load_space_ir
from audience_pipeline.sql import compute_duckdb

log = logging.getLogger("benchmarks.engines")


def _median_seconds(run: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--definitions", default="definitions")
    parser.add_argument("--data", default=None, help="existing events folder (skips generation)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "events"
        if not args.data:
            generate(data, events=args.events, seed=1)
        definitions, space = load_space_ir(args.definitions, DEFAULT_AS_OF)
        ingested = ingest(data, definitions.space)
    inputs = (ingested.events, ingested.trait_updates, definitions.space, space, DEFAULT_AS_OF)
    polars_s = _median_seconds(lambda: compute(*inputs))
    duckdb_s = _median_seconds(lambda: compute_duckdb(*inputs))
    print(f"events: {ingested.events.height}")
    print(f"polars_seconds: {polars_s:.3f}")
    print(f"duckdb_seconds: {duckdb_s:.3f}")
    print(f"polars_vs_duckdb: {polars_s / duckdb_s:.3f}")


if __name__ == "__main__":
    main()
