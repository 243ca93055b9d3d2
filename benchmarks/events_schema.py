"""`--events-schema` against JSON lines: the same events read from Segment's warehouse tables
(a DuckDB file) and from their JSON-lines files, in one run.

    python benchmarks/events_schema.py --events 1000000 [--reference]

Builds (once, kept under ``--data``) the events (`audience_pipeline.demo.generate`, 4 files),
Segment's tables of them (`segment_warehouse.build`, DuckDB) and a DuckDB database holding those
tables in schema ``segment``. Then, each in a fresh child process (so its peak RSS is its own):

- ``jsonl``: `ingest` of the JSON-lines files (what `compute --events DIR` does);
- ``events_schema``: `read_segment_warehouse` of the database (what `compute --events-schema
  segment` does): tables -> message lines (DuckDB) -> the same ingestion;
- ``export``: the tables -> message files step alone (`write_message_files`: its own memory);
- with ``--reference``: the path before streaming (tests/support/segment_reference.py: tables
  loaded whole, one message per row in Python), then the same ingestion.

Prints seconds, warehouse rows (events) per second, MB/s (of message lines: the JSON-lines
files for ``jsonl``, the lines the tables became for the others), the ratio to ``jsonl``, and
peak RSS of the main process and of the largest reader process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))


def _prepare(events: int, data: Path) -> tuple[Path, Path]:
    """The events folder and the warehouse database (built when missing)."""
    import duckdb
    from segment_warehouse import build

    from audience_pipeline.demo.generate import generate

    root = data / f"events-schema-{events}"
    folder, tables, database = root / "events", root / "segment", root / "warehouse.duckdb"
    if not (folder / ".complete").exists():
        generate(folder, events=events, seed=1, gzip=False, files=4)
        (folder / ".complete").touch()
    if not (tables / ".complete").exists():
        start = time.perf_counter()
        counts = build(folder, tables)
        (tables / ".complete").touch()
        print(f"  (Segment's tables built: {sum(counts.values())} rows, "
              f"{time.perf_counter() - start:.1f} s)", flush=True)  # fmt: skip
    if not database.exists():
        with duckdb.connect(str(database)) as con:
            con.execute("CREATE SCHEMA segment")
            for path in sorted(tables.glob("*.parquet")):
                con.execute(
                    f'CREATE TABLE segment."{path.stem}" AS SELECT * FROM read_parquet(?)',
                    [str(path)],
                )
    return folder, database


def _child(mode: str, source: str) -> dict[str, float]:
    """One measurement, in this (fresh) process."""
    import tempfile

    from audience_pipeline.ingest import ingest
    from audience_pipeline.ingest.segment_warehouse import read_segment_warehouse
    from audience_pipeline.spec.models import SpaceConfig

    start = time.perf_counter()
    if mode == "jsonl":
        result = ingest(source, SpaceConfig())
    elif mode == "events_schema":
        result = read_segment_warehouse(source, "segment", progress=lambda _: None)
    elif mode == "export":
        from audience_pipeline.ingest.segment_warehouse import write_message_files

        with tempfile.TemporaryDirectory() as tmp:
            write_message_files(source, "segment", Path(tmp))
            written = [p.read_bytes().count(b"\n") for p in Path(tmp).glob("*.jsonl")]
            size = sum(p.stat().st_size for p in Path(tmp).glob("*.jsonl"))
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "lines": sum(written), "messages": 0, "mb": size / 1e6,
                "peak_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "peak_reader_mb": 0.0}  # fmt: skip
    else:
        from tests.support.segment_reference import write_message_files

        with tempfile.TemporaryDirectory() as tmp:
            write_message_files(source, "segment", Path(tmp))
            result = ingest(sorted(Path(tmp).glob("*.jsonl")), SpaceConfig())
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "lines": result.stats["lines_read"],
        "messages": result.stats["messages"],
        "mb": result.stats["bytes"] / 1e6,
        "peak_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_reader_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def _measure(mode: str, source: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(source)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data")
    parser.add_argument("--reference", action="store_true", help="also time the old path")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child)))
        return
    folder, database = _prepare(args.events, args.data)
    modes = ["jsonl", "events_schema", "export", *(["reference"] if args.reference else [])]
    results = {}
    for mode in modes:
        source = folder if mode == "jsonl" else database
        results[mode] = figures = _measure(mode, source)
        ratio = figures["seconds"] / results["jsonl"]["seconds"]
        print(f"{mode}: {figures['seconds']:.1f} s, {figures['lines'] / figures['seconds']:,.0f} "
              f"rows/s, {figures['mb'] / figures['seconds']:.1f} MB/s "
              f"({figures['lines']:,} rows, {figures['mb']:,.1f} MB of lines, "
              f"{figures['messages']:,} kept), vs jsonl {ratio:.2f}, peak RSS main "
              f"{figures['peak_main_mb']:,.0f} MB / largest reader "
              f"{figures['peak_reader_mb']:,.0f} MB", flush=True)  # fmt: skip
    schema, lines = results["events_schema"], results["jsonl"]
    print(f"events_schema_rows_per_s {schema['lines'] / schema['seconds']:,.0f}")
    print(f"events_schema_mb_per_s {schema['mb'] / schema['seconds']:.1f}")
    print(f"events_schema_vs_jsonl {schema['seconds'] / lines['seconds']:.2f}")


if __name__ == "__main__":
    main()
