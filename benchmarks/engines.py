"""The engines on the same data, in one run: Polars, DuckDB, PostgreSQL and Spark.

    python benchmarks/engines.py [--events 1000000 3000000] [--definitions definitions]
                                 [--engines polars duckdb postgres spark] [--dsn DSN]
                                 [--spark-master 'local[2]'] [--repeats 3]

Per size: generates demo events, ingests once, computes the space with each engine (median of
`--repeats`) and prints seconds and ratios against Polars (`<engine>_vs_polars`: engine seconds /
Polars seconds; above 1.0 means Polars is faster). Polars, DuckDB and PostgreSQL start from the
normalized events (PostgreSQL's time includes loading them into the server); Spark starts from the
same messages as Segment's warehouse tables in Parquet and runs everything (staging, quarantine,
dedupe, identity, traits, audiences, output tables). Without `--dsn`, PostgreSQL is a throwaway
local server (tests/support/postgres.py). No goal: Spark's worth is past one machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from audience_pipeline.demo.generate import DEFAULT_AS_OF, generate
from audience_pipeline.engines import engine_compute
from audience_pipeline.ingest import ingest
from audience_pipeline.spec.compile import load_space_ir


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _spark_seconds(data: Path, folder: Path, definitions: str, master: str, repeats: int) -> float:
    from audience_pipeline.spark.compute import compute_spark
    from tests.support.segment_tables import segment_frames

    tables = folder / "segment"
    tables.mkdir()
    for name, frame in segment_frames(data).items():
        frame.write_parquet(tables / f"{name}.parquet")

    def run() -> None:
        out = Path(tempfile.mkdtemp(dir=folder))
        compute_spark(tables, definitions, DEFAULT_AS_OF, out, master=master)

    return _median_seconds(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--definitions", default="definitions")
    parser.add_argument("--engines", nargs="+", default=["polars", "postgres", "spark"])
    parser.add_argument("--dsn", default=None)
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with ExitStack() as stack:
        dsn = args.dsn
        if "postgres" in args.engines and dsn is None:
            from tests.support.postgres import running_postgres

            dsn = stack.enter_context(running_postgres()).dsn
        for size in args.events:
            with tempfile.TemporaryDirectory() as tmp:
                data = Path(tmp) / "events"
                generate(data, events=size, seed=1, gzip=False)
                definitions, space = load_space_ir(args.definitions, DEFAULT_AS_OF)
                ingested = ingest(data, definitions.space)
                inputs = (ingested.events, ingested.trait_updates, definitions.space, space,
                          DEFAULT_AS_OF)  # fmt: skip
                seconds: dict[str, float] = {}
                for engine in args.engines:
                    if engine == "spark":
                        seconds[engine] = _spark_seconds(data, Path(tmp), args.definitions,
                                                         args.spark_master, args.repeats)  # fmt: skip
                        continue
                    fn = engine_compute(engine, dsn=dsn)
                    seconds[engine] = _median_seconds(lambda fn=fn, a=inputs: fn(*a), args.repeats)
            print(f"events: {size} (normalized: {ingested.events.height})")
            for engine, value in seconds.items():
                print(f"  {engine}_seconds: {value:.2f}")
            for engine, value in seconds.items():
                if engine != "polars" and "polars" in seconds:
                    print(f"  {engine}_vs_polars: {value / seconds['polars']:.2f}")
            if {"polars", "duckdb"} <= set(seconds):  # the figure docs/benchmarks.md tracks
                print(f"  polars_vs_duckdb: {seconds['polars'] / seconds['duckdb']:.2f}")


if __name__ == "__main__":
    main()
