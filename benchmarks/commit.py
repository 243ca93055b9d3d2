"""Benchmark the commit point: what a run's commit costs next to the run itself.

Runs `compute` over the given events into a fresh warehouse (as-of T), then `--runs` more times
(as-of T + 1 day each), timing every phase of each later run through the writer's boundary hooks:
`write` (the tables), `commit_fsync` (run.json and flushing the run folder to disk),
`commit_links`, `commit_swap` (the atomic step itself), `commit_after` (loose files, stale links),
`commit_catalog` (DuckDB views), `commit_cleanup` (old runs). Prints medians, one `name: value` a
line, and `commit_share` = the commit's seconds / the whole run's.

Usage:
    python benchmarks/commit.py --events data/events          # the demo's events
    python benchmarks/commit.py --events /tmp/events-1m --runs 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audience_pipeline import service  # noqa: E402
from audience_pipeline.warehouse import writer  # noqa: E402

PHASES = {
    "run-file": "commit_fsync",
    "links": "commit_links",
    "swap": "commit_swap",
    "after-swap": "commit_after",
    "catalog": "commit_catalog",
    "cleanup": "commit_cleanup",
}


def _timed_run(events: Path, out: Path, as_of: datetime) -> dict[str, float]:
    marks: list[tuple[str, float]] = []
    hook = lambda step: marks.append((step, time.perf_counter()))  # noqa: E731
    writer.boundary_hooks.append(hook)
    started = time.perf_counter()
    try:
        service.run_compute(events, ROOT / "definitions", as_of, out)
    finally:
        writer.boundary_hooks.remove(hook)
    total = time.perf_counter() - started
    times = {"run_s": total}
    previous = None
    for step, moment in marks:
        if step in PHASES and previous is not None:
            times[PHASES[step]] = moment - previous
        previous = moment
    times["commit_s"] = sum(v for k, v in times.items() if k.startswith("commit_"))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", required=True, type=Path)
    parser.add_argument("--as-of", default="2026-03-01T00:00:00+00:00")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    as_of = datetime.fromisoformat(args.as_of).astimezone(UTC)
    with tempfile.TemporaryDirectory(prefix="commit-bench-") as tmp:
        out = Path(tmp) / "warehouse"
        service.run_compute(args.events, ROOT / "definitions", as_of, out)
        runs = [
            _timed_run(args.events, out, as_of + timedelta(days=k + 1)) for k in range(args.runs)
        ]
        size = sum(p.stat().st_size for p in (out / "current").resolve().rglob("*") if p.is_file())
    print(f"# run folder: {size / 1e6:.1f} MB; {args.runs} timed runs; medians")
    for name in ["run_s", "commit_s", *PHASES.values()]:
        print(f"{name}: {statistics.median(r.get(name, 0.0) for r in runs):.4f}")
    share = statistics.median(r["commit_s"] / r["run_s"] for r in runs)
    print(f"commit_share: {share:.3f}")


if __name__ == "__main__":
    main()
