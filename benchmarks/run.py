"""Core engine benchmark: ingestion speed, compute time against a hand-written floor, memory.

    python benchmarks/run.py --events 10000000

Generates (or reuses) `benchmarks/data/events-<N>/` with the demo generator (N events, N/10
profiles, 50k accounts), ingests it once (timed: ingest_mb_per_s), then times `compute` from the
normalized events with the benchmark space (benchmarks/definitions: 20 computed user traits, 50
user audiences, account traits and audiences), and a hand-written single Polars group-by computing
10 of those traits from the same normalized events file (floor_s). Each `compute` runs in a fresh
child process reading the normalized events as a scan under `--memory-limit` (the CLI's path),
so `peak_rss_mb` is that process's own peak (the largest over the runs); the floor runs in this
process between them. Medians of --repeat runs, wall and CPU seconds (`compute_vs_floor_cpu`:
on a shared machine wall time also counts the waiting). `--scale-from M` also times
normalized-M (`scale_<N>_vs_<M>`); `--synthesize-from M` first makes normalized-N from N/M
copies of normalized-M with new identifiers and timestamps shifted by the copy's index in
microseconds (no raw JSON needed); `--data-suffix=-shifted` reads (or synthesizes)
normalized-N-shifted instead; `--stages` prints the child's stage times. Prints one `name: value` a line.

In the same run it also times the DuckDB engine on the same normalized events, each run in a
child process that reads the Parquet itself (`benchmarks/duckdb_engine.py`: `duckdb_s`,
`duckdb_peak_rss_mb`; `polars_vs_duckdb`: Polars time / DuckDB time) and an incremental refresh after one day against a full recompute
(`incremental_vs_full`); `--skip-duckdb` / `--skip-incremental` leave those out.
Ingestion runs in a child process (`ingest_to_parquet`, writing the normalized tables included;
`ingest_peak_rss_mb` is its peak, main process only, `ingest_workers_peak_rss_mb` its reader
processes' largest, two run at once); the DuckDB and incremental runs read only the columns
compute needs from the normalized events (`read_events`) into this process.
`--reuse-normalized` skips ingestion when normalized events from an earlier run exist (for
profiling; no `ingest_mb_per_s` then).

Ingestion is also compared with DuckDB reading the same files: `read_json` with typed columns
(ids, event, timestamps as VARCHAR; properties, context, traits as JSON) written to one Parquet
file, in this run (`ingest_vs_duckdb_read`: our ingest seconds / DuckDB's; medians of
--ingest-repeat runs each). `--ingest-only` stops after that; `--reader` picks the reader of
JSON lines in the ingest child (AUDIENCE_PIPELINE_INGEST_READER: per_line, the default; native;
vectorized, which `--fast-ingest` also picks); `--ingest-out DIR` writes the normalized tables
there instead of benchmarks/data/normalized-<N> (shared data other jobs may be reading).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

# The package first: it sets Polars' allocator up before Polars loads (no variable needed).
# isort: off
import audience_pipeline  # noqa: E402, F401
import polars as pl  # noqa: E402

# isort: on

from audience_pipeline.demo.generate import generate  # noqa: E402
from audience_pipeline.engine.columns import needed_flat_columns  # noqa: E402
from audience_pipeline.engine.compute import compute  # noqa: E402
from audience_pipeline.engine.memory import DEFAULT_MEMORY_LIMIT, parse_size  # noqa: E402
from audience_pipeline.engine.source import scan_events  # noqa: E402
from audience_pipeline.incremental import full_compute, refresh  # noqa: E402
from audience_pipeline.ingest import ingest_to_parquet  # noqa: E402
from audience_pipeline.ingest.reader import READERS  # noqa: E402
from audience_pipeline.ingest.schema import EVENTS_COLUMNS, TRAIT_UPDATES_COLUMNS  # noqa: E402
from audience_pipeline.ingest.storage import EVENTS_FILE, TRAIT_UPDATES_FILE  # noqa: E402
from audience_pipeline.ir import nodes as ir  # noqa: E402
from audience_pipeline.spec.compile import load_space_ir  # noqa: E402
from audience_pipeline.spec.models import Definitions  # noqa: E402
from benchmarks.duckdb_engine import measure as measure_duckdb  # noqa: E402

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


def median_time(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ensure_data(events: int, accounts: int) -> Path:
    folder = ROOT / "data" / f"events-{events}"
    if not (folder / ".complete").exists():
        files = max(1, min(32, events // 500_000))
        generate(folder, events=events, profiles=max(1, events // 10), accounts=accounts,
                 as_of=AS_OF, days=120, files=files, gzip=False)  # fmt: skip
        (folder / ".complete").write_text("ok")
    return folder


def _num(column: str) -> pl.Expr:
    body = pl.col(column).str.slice(1)
    return pl.when(pl.col(column).str.starts_with("n")).then(body.cast(pl.Float64, strict=False))


def floor_plan(path: Path, space: ir.Space) -> pl.LazyFrame:
    """A hand-written group-by of 10 of the space's traits (no where clauses, no engine code)."""
    simple = [t for t in space.traits if t.level == "user" and t.where is None]
    simple = [t for t in simple if t.kind in ("count", "sum", "avg", "min", "max", "unique_count")]
    chosen = simple[:10]
    lf = pl.scan_parquet(path / "events.parquet")
    ts = pl.col("timestamp")
    aggs = []
    columns = {"ids", "timestamp", "event"}
    for trait in chosen:
        mask = pl.col("event").is_in(list(trait.events))
        if trait.window is not None:
            mask = mask & (ts > AS_OF - timedelta(seconds=trait.window.lower))
            mask = mask & (ts <= AS_OF - timedelta(seconds=trait.window.upper))
        if trait.kind == "count":
            aggs.append(mask.sum().alias(trait.key))
            continue
        assert trait.property is not None
        column = ("p." if trait.property.scope == "prop" else "c.") + trait.property.dotted
        columns.add(column)
        value = _num(column)
        agg = {
            "sum": value.filter(mask).sum(),
            "avg": value.filter(mask).mean(),
            "min": value.filter(mask).min(),
            "max": value.filter(mask).max(),
            "unique_count": pl.col(column).filter(mask).drop_nulls().n_unique(),
        }[trait.kind]
        aggs.append(agg.alias(trait.key))
    return (
        lf.select(sorted(columns))
        .with_columns(pl.col("ids").list.first().struct.field("id_value").alias("_who"))
        .group_by("_who")
        .agg(aggs)
    )


# What PERF-NOTES.md timed: the message fields as text, the nested objects as JSON.
DUCKDB_COLUMNS = {
    **dict.fromkeys(
        ("type", "userId", "anonymousId", "event", "messageId", "timestamp", "receivedAt"),
        "VARCHAR",
    ),
    **dict.fromkeys(("properties", "context", "traits"), "JSON"),
}


def duckdb_read_seconds(data: Path, out: Path) -> float:
    """Seconds DuckDB takes to read the event files (typed read_json) into one Parquet file."""
    import duckdb

    files = [str(p) for p in sorted(data.glob("events-*"))]
    con = duckdb.connect()
    con.execute("SET memory_limit = '2GB'")
    start = time.perf_counter()
    relation = con.read_json(
        files, format="newline_delimited", columns=DUCKDB_COLUMNS, ignore_errors=True
    )
    relation.write_parquet(str(out))
    seconds = time.perf_counter() - start
    con.close()
    out.unlink()
    return seconds


def ingest_in_child(
    data: Path, normalized: Path, definitions: str, *, reader: str = "per_line"
) -> dict[str, float]:
    """Ingest `data` into `normalized` in a fresh process; its seconds and peak RSS."""
    env = {**os.environ, "AUDIENCE_PIPELINE_INGEST_READER": reader}
    out = subprocess.run(
        [sys.executable, __file__, "--ingest-child", str(data), str(normalized), definitions],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    stats: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return stats


def _ingest_child(data: str, normalized: str, definitions_root: str) -> int:
    definitions, _ = load_space_ir(definitions_root, AS_OF)
    start = time.perf_counter()
    cpu = time.process_time()
    # Straight to disk (parts, then a streaming assembly): memory does not grow with events.
    ingest_to_parquet(Path(data), definitions.space, Path(normalized))
    seconds = time.perf_counter() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = time.process_time() - cpu + children.ru_utime + children.ru_stime
    (Path(normalized) / ".complete").write_text("ok")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The reader processes (up to 2 at once): ru_maxrss of children is the largest one's peak.
    workers_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu_s": cpu_s, "peak_rss_mb": peak_mb,
                      "workers_peak_mb": workers_mb}))  # fmt: skip
    return 0


def compute_in_child(normalized: Path, definitions: str, memory_limit: int, *,
                     users_only: bool = False) -> dict[str, float]:  # fmt: skip
    """One `compute` from the normalized folder (a lazy scan) in a fresh process: its seconds
    and the process's peak RSS (ru_maxrss: imports and the trait updates included), so that no
    run's peak hides in another's. No allocator variable is passed: the package sets it."""
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    command = [sys.executable, __file__, "--compute-child", str(normalized), definitions,
               str(memory_limit), "users" if users_only else "all"]  # fmt: skip
    # stderr passes through: with --stages the child logs each stage's seconds there.
    out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env)
    stats: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return stats


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _log_stages() -> None:
    """Log compute's stage times to stderr, each with the largest RSS seen since the stage
    before (sampled every 50 ms by a thread), so the peak can be placed in a stage."""
    import logging
    import threading

    peak = [0.0]

    def sample() -> None:
        while True:
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.05)

    def with_peak(record: logging.LogRecord) -> bool:
        record.msg = f"{record.msg} (peak {max(peak[0], _rss_mb()):.0f} MB)"
        peak[0] = 0.0
        return True

    threading.Thread(target=sample, daemon=True).start()
    logging.basicConfig(format="%(relativeCreated)8.0f ms %(message)s")
    logging.getLogger().handlers[0].addFilter(with_peak)
    for name in ("audience_pipeline.engine.compute", "audience_pipeline.engine.buckets",
                 "audience_pipeline.identity.graph"):  # fmt: skip
        logging.getLogger(name).setLevel(logging.DEBUG)


def _compute_child(normalized: str, definitions_root: str, limit: str, which: str) -> int:
    if os.environ.get("BENCH_STAGES"):
        _log_stages()
    definitions, space = load_space_ir(definitions_root, AS_OF)
    if which == "users":
        space = users_only(space)
    updates = read_normalized_updates(Path(normalized))
    start, cpu = time.perf_counter(), time.process_time()
    result = compute(scan_events(Path(normalized)), updates, definitions.space, space, AS_OF,
                     memory_limit=int(limit))  # fmt: skip
    seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu_s": cpu_s, "peak_rss_mb": peak_mb,
                      "events": result.stats["messages"]}))  # fmt: skip
    return 0


def users_only(space: ir.Space) -> ir.Space:
    return ir.Space(
        tuple(t for t in space.traits if t.level == "user"),
        tuple(a for a in space.audiences if a.level == "user"),
    )


def synthesize(source: Path, target: Path, copies: int) -> None:
    """Normalized events `copies` times the size of `source`'s: each copy's identifiers,
    message ids and groupIds get a suffix (new profiles and accounts, not more events of the
    same ones), its seqs an offset and its timestamps `copy` microseconds more (so that copies
    do not tie in processing order); events and properties stay as they are.
    Written by Polars' streaming sink (a stand-in for ingesting 3x the raw JSON, which takes
    about an hour here at 30M events)."""
    from audience_pipeline.ingest.storage import EVENTS_FILE, QUARANTINE_FILE, TRAIT_UPDATES_FILE

    target.mkdir(parents=True, exist_ok=True)
    events = pl.scan_parquet(source / EVENTS_FILE)
    updates = pl.scan_parquet(source / TRAIT_UPDATES_FILE)
    offset = int(events.select(pl.col("seq").max()).collect().item()) + 1

    def tagged(column: str, copy: int) -> pl.Expr:
        return pl.when(pl.col(column).is_not_null()).then(pl.col(column) + f"~{copy}")

    parts, update_parts = [], []
    for copy in range(copies):
        ids = pl.col("ids").list.eval(
            pl.struct(pl.element().struct.field("id_type"),
                      pl.element().struct.field("id_value") + f"~{copy}")
        )  # fmt: skip
        shifted = events.with_columns(pl.col("seq") + copy * offset)
        if copy:
            # Timestamps move by the copy's index in microseconds: unshifted, every message of
            # a copy shared its timestamp with the first copy's, and identity's processing order
            # read and ranked the messageIds of every message (real data rarely ties).
            shifted = shifted.with_columns(
                pl.col("timestamp") + pl.duration(microseconds=copy),
                ids.alias("ids"),
                *(tagged(c, copy).alias(c) for c in ("message_id", "previous_id", "group_id")),
            )
        parts.append(shifted)
        update_parts.append(updates.with_columns(pl.col("seq") + copy * offset))
    pl.concat(parts).sink_parquet(target / EVENTS_FILE, engine="streaming")
    pl.concat(update_parts).sink_parquet(target / TRAIT_UPDATES_FILE, engine="streaming")
    pl.read_parquet(source / QUARANTINE_FILE).write_parquet(target / QUARANTINE_FILE)
    (target / ".complete").write_text(
        f"synthesized: {copies} copies of {source.name}, timestamps shifted by the copy (us)"
    )


def read_normalized_updates(normalized: Path) -> pl.DataFrame:
    frame = pl.read_parquet(normalized / TRAIT_UPDATES_FILE)
    return frame.select(pl.col(c).cast(t) for c, t in TRAIT_UPDATES_COLUMNS.items())


def read_events(normalized: Path, space: ir.Space) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The normalized events and trait updates, events projected to what the runs read.

    Both engines and the incremental run read the message columns and the flattened path
    columns; the JSON text of properties and context is only read for paths without a
    flattened column, so it is loaded as null when every path the space names has one (the
    outputs are the same: tests/unit/test_engine_columns.py).
    """
    path = normalized / EVENTS_FILE
    available = pl.read_parquet_schema(path)
    flat = needed_flat_columns(space, set(available))
    base = [c for c in EVENTS_COLUMNS if c not in ("properties", "context")]
    columns = base + sorted(flat.columns)
    # The streaming engine reads row group by row group: at 10M events read_parquet peaked at
    # 4.5x the loaded table's size (10.5 GB for 2.4 GB), the streaming scan at 2.5x.
    events = pl.scan_parquet(path).select(columns).collect(engine="streaming")
    json_text = {
        source: (pl.read_parquet(path, columns=[source]).get_column(source) if needed
                 else pl.repeat(None, events.height, dtype=pl.String, eager=True).alias(source))
        for source, needed in (("properties", flat.needs_properties),
                               ("context", flat.needs_context))
    }  # fmt: skip
    events = events.with_columns(*json_text.values()).select(
        *[pl.col(c).cast(t) for c, t in EVENTS_COLUMNS.items()], *sorted(flat.columns)
    )
    updates = read_normalized_updates(normalized)
    return events, updates


def incremental_vs_full(
    events: pl.DataFrame, updates: pl.DataFrame, definitions: Definitions, repeat: int
) -> tuple[float, float, str]:
    """Median seconds of `refresh` one day after a previous run, and of `full_compute`.

    The previous state is a full run as of AS_OF - 1 day over the events up to then; the
    refresh then sees every event (the new day included), as a daily run would.
    """
    before = AS_OF - timedelta(days=1)
    earlier = events.filter(pl.col("timestamp") <= before)
    previous = full_compute(earlier, updates, definitions, before).state
    del earlier
    modes: list[str] = []

    def run_refresh() -> None:
        modes.append(refresh(events, updates, definitions, AS_OF, previous).mode)

    refresh_s = median_time(run_refresh, repeat)
    full_s = median_time(lambda: full_compute(events, updates, definitions, AS_OF), repeat)
    return refresh_s, full_s, ",".join(sorted(set(modes)))


def _short(events: int) -> str:
    return f"{events // 1_000_000}m" if events % 1_000_000 == 0 else str(events)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--definitions", default=str(ROOT / "definitions"))
    parser.add_argument("--skip-duckdb", action="store_true", help="no polars_vs_duckdb")
    parser.add_argument("--skip-incremental", action="store_true", help="no incremental_vs_full")
    parser.add_argument(
        "--reuse-normalized", action="store_true", help="skip ingestion if normalized data exists"
    )
    parser.add_argument("--ingest-only", action="store_true", help="stop after ingestion")
    parser.add_argument("--ingest-repeat", type=int, default=1, help="ingest runs (median)")
    parser.add_argument("--fast-ingest", action="store_true", help="the vectorized reader")
    parser.add_argument("--reader", choices=READERS, default=None,
                        help="the reader of JSON lines (default: per_line)")  # fmt: skip
    parser.add_argument("--ingest-out", type=Path, default=None,
                        help="normalized tables go here (with --ingest-only)")  # fmt: skip
    parser.add_argument("--skip-users", action="store_true", help="no users_only_s")
    parser.add_argument("--stages", action="store_true", help="compute's stage times (stderr)")
    parser.add_argument("--memory-limit", default=f"{DEFAULT_MEMORY_LIMIT >> 20}MB",
                        help="the engine's --memory-limit (default: the CLI's)")  # fmt: skip
    parser.add_argument("--scale-from", type=int, default=None,
                        help="also time the normalized events of this size: scale_<N>_vs_<M>")  # fmt: skip
    parser.add_argument("--synthesize-from", type=int, default=None,
                        help="make normalized-<N> from copies of normalized-<M> (no raw JSON)")  # fmt: skip
    parser.add_argument("--data-suffix", default="",
                        help="read (or synthesize) normalized-<N><suffix>, e.g. -shifted")  # fmt: skip
    parser.add_argument("--ingest-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--compute-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ingest_child:
        return _ingest_child(*args.ingest_child)

    if args.compute_child:
        return _compute_child(*args.compute_child)

    definitions, space = load_space_ir(args.definitions, AS_OF)
    normalized = ROOT / "data" / f"normalized-{args.events}{args.data_suffix}"
    if args.ingest_out is not None:
        if not args.ingest_only:
            parser.error("--ingest-out: only with --ingest-only (compute reads normalized-<N>)")
        normalized = args.ingest_out
    reader = args.reader or ("vectorized" if args.fast_ingest else "per_line")
    if args.synthesize_from and not (normalized / ".complete").exists():
        source = ROOT / "data" / f"normalized-{args.synthesize_from}"
        synthesize(source, normalized, args.events // args.synthesize_from)
    ingest_stats: dict[str, float] = {}
    if not (args.reuse_normalized and (normalized / ".complete").exists()):
        data = ensure_data(args.events, args.accounts)
        raw_bytes = sum(p.stat().st_size for p in data.glob("events-*"))
        runs = [
            ingest_in_child(data, normalized, args.definitions, reader=reader)
            for _ in range(args.ingest_repeat)
        ]
        ingest_stats = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        ingest_stats["max_peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        ingest_stats["max_workers_peak_mb"] = max(r["workers_peak_mb"] for r in runs)
        duckdb_s = statistics.median(
            duckdb_read_seconds(data, ROOT / "data" / "duckdb-read.parquet")
            for _ in range(args.ingest_repeat)
        )
        print(f"reader: {reader}")
        print(f"raw_mb: {raw_bytes / 1e6:.0f}")
        print(f"ingest_s: {ingest_stats['seconds']:.1f}")
        print(f"ingest_cpu_s: {ingest_stats['cpu_s']:.1f}")
        print(f"ingest_mb_per_s: {raw_bytes / 1e6 / ingest_stats['seconds']:.1f}")
        print(f"duckdb_read_s: {duckdb_s:.1f}")
        print(f"ingest_vs_duckdb_read: {ingest_stats['seconds'] / duckdb_s:.2f}")
        print(f"ingest_peak_rss_mb: {ingest_stats['max_peak_rss_mb']:.0f}")
        print(f"ingest_workers_peak_rss_mb: {ingest_stats['max_workers_peak_mb']:.0f}", flush=True)
    if args.ingest_only:
        return 0

    limit = parse_size(args.memory_limit)
    if args.stages:
        os.environ["BENCH_STAGES"] = "1"
    plan = floor_plan(normalized, space)
    runs, floors, floor_cpus = [], [], []
    for _ in range(args.repeat):  # interleaved: both see the same load
        runs.append(compute_in_child(normalized, args.definitions, limit))
        cpu = time.process_time()
        floors.append(median_time(plan.collect, 1))
        floor_cpus.append(time.process_time() - cpu)
    compute_s = statistics.median(r["seconds"] for r in runs)
    floor_s = statistics.median(floors)
    # CPU seconds (all threads) too: on a shared machine wall time also counts the waiting.
    compute_cpu_s = statistics.median(r["cpu_s"] for r in runs)
    floor_cpu_s = statistics.median(floor_cpus)
    n_events = int(runs[0]["events"])
    print(f"events: {n_events}")
    print(f"memory_limit_mb: {limit / 2**20:.0f}")
    print(f"compute_s: {compute_s:.2f}")
    print(f"floor_s: {floor_s:.2f}")
    print(f"compute_vs_floor: {compute_s / floor_s:.2f}")
    print(f"compute_cpu_s: {compute_cpu_s:.2f}")
    print(f"floor_cpu_s: {floor_cpu_s:.2f}")
    print(f"compute_vs_floor_cpu: {compute_cpu_s / floor_cpu_s:.2f}")
    print(f"events_per_s: {n_events / compute_s:.0f}")
    print(f"peak_rss_mb: {max(r['peak_rss_mb'] for r in runs):.0f}", flush=True)
    if args.scale_from:
        smaller = ROOT / "data" / f"normalized-{args.scale_from}"
        base = [compute_in_child(smaller, args.definitions, limit) for _ in range(args.repeat)]
        base_s = statistics.median(r["seconds"] for r in base)
        base_cpu = statistics.median(r["cpu_s"] for r in base)
        name = f"scale_{_short(args.events)}_vs_{_short(args.scale_from)}"
        print(f"compute_s_{_short(args.scale_from)}: {base_s:.2f}")
        print(f"compute_cpu_s_{_short(args.scale_from)}: {base_cpu:.2f}")
        print(f"{name}_cpu: {compute_cpu_s / base_cpu:.2f}")
        print(f"peak_rss_mb_{_short(args.scale_from)}: {max(r['peak_rss_mb'] for r in base):.0f}")
        print(f"{name}: {compute_s / base_s:.2f}", flush=True)
    if not args.skip_users:
        users = [compute_in_child(normalized, args.definitions, limit, users_only=True)
                 for _ in range(args.repeat)]  # fmt: skip
        users_s = statistics.median(r["seconds"] for r in users)
        print(f"users_only_s: {users_s:.2f}")
        print(f"accounts_overhead: {(compute_s - users_s) / users_s:.2f}", flush=True)
    if args.skip_duckdb and args.skip_incremental:
        return 0

    if not args.skip_duckdb:
        # In its own processes, reading the normalized Parquet itself (as `compute` does).
        found = measure_duckdb(normalized, args.definitions, args.repeat)
        print(f"duckdb_s: {found['seconds']:.2f}")
        print(f"duckdb_peak_rss_mb: {found['peak_rss_mb']:.0f}")
        print(f"polars_vs_duckdb: {compute_s / found['seconds']:.2f}", flush=True)

    if not args.skip_incremental:
        events, updates = read_events(normalized, space)
        refresh_s, full_s, mode = incremental_vs_full(events, updates, definitions, args.repeat)
        print(f"incremental_mode: {mode}")
        print(f"incremental_s: {refresh_s:.2f}")
        print(f"full_compute_s: {full_s:.2f}")
        print(f"incremental_vs_full: {refresh_s / full_s:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
