"""The engines on the same data, in one run: Polars, DuckDB, PostgreSQL and Spark.

    python benchmarks/engines.py [--events 1000000 3000000] [--definitions definitions]
                                 [--engines polars postgres spark spark_files polars_tables]
                                 [--dsn DSN]
                                 [--spark-master 'local[2]'] [--repeats 1] [--data DIR]

Per size: generates demo events (kept under `--data` when given, with their normalized tables, so
that a later run skips both), ingests once, computes the space with each engine (median of
`--repeats`) and prints seconds and ratios against Polars, which always runs in the same process
as the reference (`<engine>_vs_polars`: engine seconds / Polars seconds; above 1.0 means Polars is
faster). What each engine's time covers:

- polars, duckdb, postgres: compute from the normalized events (PostgreSQL's includes loading them
  into the server);
- spark: everything from the same messages as Segment's warehouse tables in Parquet (staging,
  quarantine, dedupe, identity, traits, audiences, output tables, commit); the tables are made
  once, untimed, by `segment_warehouse.py` (DuckDB; kept under `--data`);
- polars_tables: the same, by the Polars engine: `compute --events-schema` over those tables
  (loaded, untimed, into a DuckDB file): reading them, normalizing, computing, committing
  (`spark_vs_polars_tables`);
- spark_files: everything from the JSON-lines files themselves (the executors read and normalize
  them); compared with Polars' ingest + compute (`spark_files_vs_polars_end_to_end`).

Without `--dsn`, PostgreSQL is a throwaway local server (tests/support/postgres.py). No goal:
Spark's worth is past one machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from audience_pipeline.demo.generate import DEFAULT_AS_OF, generate
from audience_pipeline.engines import engine_compute
from audience_pipeline.ingest import IngestResult, ingest, read_normalized, write_normalized
from audience_pipeline.spec.compile import load_space_ir


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _spark_seconds(source: Path, folder: Path, definitions: str, master: str,
                   repeats: int) -> float:  # fmt: skip
    from audience_pipeline.spark.compute import compute_spark

    def run() -> None:
        out = Path(tempfile.mkdtemp(dir=folder))
        compute_spark(source, definitions, DEFAULT_AS_OF, out, master=master)

    return _median_seconds(run, repeats)


def _segment_tables(data: Path, folder: Path) -> Path:
    """Segment's tables of the messages in `data` (built once: `segment_warehouse.py`)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from segment_warehouse import build

    tables = folder / "segment"
    if not (tables / ".complete").exists():
        start = time.perf_counter()
        counts = build(data, tables)
        (tables / ".complete").touch()
        print(f"  (Segment's tables built: {sum(counts.values())} rows, "
              f"{time.perf_counter() - start:.1f} s)", flush=True)  # fmt: skip
    return tables


def _polars_tables_seconds(tables: Path, folder: Path, definitions: str, repeats: int) -> float:
    """`compute --events-schema segment` by the Polars engine over the same tables."""
    import duckdb

    from audience_pipeline import service

    database = folder / "warehouse.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE SCHEMA segment")
        for path in sorted(tables.glob("*.parquet")):
            con.execute(f'CREATE TABLE segment."{path.stem}" AS SELECT * FROM read_parquet(?)',
                        [str(path)])  # fmt: skip

    def run() -> None:
        out = Path(tempfile.mkdtemp(dir=folder))
        service.run_compute(str(database), definitions, DEFAULT_AS_OF, out, schema="segment")

    return _median_seconds(run, repeats)


def _data(
    size: int, keep: Path | None, scratch: Path, definitions: str
) -> tuple[Path, float, IngestResult]:
    """The events folder, Polars' ingest seconds, and the normalized tables."""
    root = (keep / f"engines-{size}") if keep else scratch
    events, normalized = root / "events", root / "normalized"
    if not (events / ".complete").exists():
        generate(events, events=size, seed=1, gzip=False, files=4)  # one Spark task per file
        (events / ".complete").touch()
    timing = normalized / ".ingest_seconds"
    if keep and (normalized / ".complete").exists() and timing.exists():
        # Ingest was timed when the tables were kept: separate runs (one engine each, so the
        # bench lock is held minutes, not half an hour) reuse that figure instead of ingesting again.
        return events, float(timing.read_text()), read_normalized(normalized)
    loaded, _ = load_space_ir(definitions, DEFAULT_AS_OF)
    start = time.perf_counter()
    ingested = ingest(events, loaded.space)
    seconds = time.perf_counter() - start
    if keep and not (normalized / ".complete").exists():
        write_normalized(ingested, normalized)
        (normalized / ".complete").touch()
    elif keep:
        ingested = read_normalized(normalized)
    if keep:
        timing.write_text(f"{seconds:.3f}\n")
    return events, seconds, ingested


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--definitions", default="definitions")
    parser.add_argument("--engines", nargs="+",
                        default=["polars", "postgres", "spark_files"])  # fmt: skip
    parser.add_argument("--dsn", default=None)
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--data", type=Path, default=None, help="keep generated data here")
    args = parser.parse_args()
    engines = ["polars", *[e for e in args.engines if e != "polars"]]
    with ExitStack() as stack:
        dsn = args.dsn
        if "postgres" in engines and dsn is None:
            from tests.support.postgres import running_postgres

            dsn = stack.enter_context(running_postgres()).dsn
        for size in args.events:
            with tempfile.TemporaryDirectory() as tmp:
                events, ingest_seconds, ingested = _data(size, args.data, Path(tmp),
                                                         args.definitions)  # fmt: skip
                definitions, space = load_space_ir(args.definitions, DEFAULT_AS_OF)
                inputs = (ingested.events, ingested.trait_updates, definitions.space, space,
                          DEFAULT_AS_OF)  # fmt: skip
                seconds: dict[str, float] = {}
                print(f"events: {size}: polars_ingest_seconds {ingest_seconds:.2f}", flush=True)
                for engine in engines:
                    if engine == "polars_tables":
                        tables = _segment_tables(events, events.parent if args.data else Path(tmp))
                        seconds[engine] = _polars_tables_seconds(tables, Path(tmp),
                                                                 args.definitions, args.repeats)  # fmt: skip
                        print(f"  ({engine} done: {seconds[engine]:.2f} s)", flush=True)
                        continue
                    if engine in ("spark", "spark_files"):
                        source = events if engine == "spark_files" else _segment_tables(
                            events, events.parent if args.data else Path(tmp))  # fmt: skip
                        seconds[engine] = _spark_seconds(source, Path(tmp), args.definitions,
                                                         args.spark_master, args.repeats)  # fmt: skip
                        print(f"  ({engine} done: {seconds[engine]:.2f} s)", flush=True)
                        continue
                    fn = engine_compute(engine, dsn=dsn)
                    seconds[engine] = _median_seconds(lambda fn=fn, a=inputs: fn(*a), args.repeats)
                    print(f"  ({engine} done: {seconds[engine]:.2f} s)", flush=True)
            print(f"events: {size} (normalized: {ingested.events.height})")
            print(f"  polars_ingest_seconds: {ingest_seconds:.2f}")
            for engine, value in seconds.items():
                print(f"  {engine}_seconds: {value:.2f}")
            for engine, value in seconds.items():
                if engine not in ("polars", "spark_files", "polars_tables"):
                    print(f"  {engine}_vs_polars: {value / seconds['polars']:.2f}")
            if {"spark", "polars_tables"} <= set(seconds):
                print(
                    f"  spark_vs_polars_tables: {seconds['spark'] / seconds['polars_tables']:.2f}"
                )
            if "spark_files" in seconds:
                end_to_end = ingest_seconds + seconds["polars"]
                print(f"  spark_files_vs_polars_end_to_end: "
                      f"{seconds['spark_files'] / end_to_end:.2f}")  # fmt: skip
            if {"polars", "duckdb"} <= set(seconds):  # the figure docs/benchmarks.md tracks
                print(f"  polars_vs_duckdb: {seconds['polars'] / seconds['duckdb']:.2f}")


if __name__ == "__main__":
    main()
