"""The DuckDB engine at scale, measured in its own process: seconds and peak memory.

    python benchmarks/duckdb_engine.py --events 10000000 [--repeat 3] [--memory-limit 6GiB]
                                       [--polars-s SECONDS]

Each run is a fresh child process that computes the benchmark space (benchmarks/definitions) with
`compute --engine duckdb`'s entry, reading the normalized Parquet of
`benchmarks/data/normalized-<N>/` itself (as a `compute` run reads its `_normalized/`), under
`--memory-limit` (default: the `limits` default). Prints `duckdb_s` (median), and
`duckdb_peak_rss_mb` (the largest peak RSS of the children: DuckDB's threads and buffers are in
that one process), and each run's stages on stderr; with `--polars-s` (the Polars engine's seconds on the same data, e.g. from
`benchmarks/run.py`), also `polars_vs_duckdb`. `benchmarks/run.py` calls `measure` for its own
`duckdb_s` line.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


def _child(normalized: str, definitions: str, memory_limit: str) -> int:
    sys.path.insert(0, str(ROOT.parent))
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from audience_pipeline.spec.compile import load_space_ir
    from audience_pipeline.sql.compute import compute_duckdb_normalized

    loaded, space = load_space_ir(definitions, AS_OF)
    started = time.perf_counter()
    result = compute_duckdb_normalized(Path(normalized), loaded.space, space, AS_OF,
                                       memory_limit=memory_limit or None)  # fmt: skip
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {"seconds": seconds, "peak_rss_mb": peak_mb, "memberships": result.memberships.height,
              "profiles": result.user_traits.height}  # fmt: skip
    print(json.dumps(report), flush=True)
    return 0


def measure(normalized: Path, definitions: str, repeat: int = 1,
            memory_limit: str = "") -> dict[str, float]:  # fmt: skip
    """Runs the engine `repeat` times, each in a fresh child; the median seconds and the largest
    peak RSS (MB)."""
    runs = []
    for _ in range(repeat):
        command = [sys.executable, str(Path(__file__).resolve()), "--child",
                   str(normalized), definitions, memory_limit]  # fmt: skip
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        stages = [line for line in done.stderr.splitlines() if line.startswith("duckdb stage")]
        print("\n".join(stages), file=sys.stderr, flush=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "memberships": runs[-1]["memberships"],
        "profiles": runs[-1]["profiles"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--definitions", default=str(ROOT / "definitions"))
    parser.add_argument("--memory-limit", default="", help="e.g. 6GiB (default: limits' default)")
    parser.add_argument("--polars-s", type=float, help="the Polars engine's seconds, same data")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(*args.child)
    normalized = ROOT / "data" / f"normalized-{args.events}"
    if not (normalized / ".complete").exists():
        print(f"no normalized data at {normalized} (benchmarks/run.py --ingest-only writes it)")
        return 1
    found = measure(normalized, args.definitions, args.repeat, args.memory_limit)
    print(f"duckdb_profiles: {found['profiles']}")
    print(f"duckdb_memberships: {found['memberships']}")
    print(f"duckdb_s: {found['seconds']:.2f}")
    print(f"duckdb_peak_rss_mb: {found['peak_rss_mb']:.0f}")
    if args.polars_s:
        print(f"polars_vs_duckdb: {args.polars_s / found['seconds']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
