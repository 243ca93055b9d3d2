"""Benchmark reverse ETL: 1M membership changes to a local webhook and to PostgreSQL, and the
formatted CSV export of 1M members against Segment's stated ~30 s for that size.

The warehouse holds one user audience with ``--size`` members, each profile with a user_id, an
email and an anonymous_id. Each destination starts with an empty ledger, so the whole audience is
one backfill of ``--size`` "entered" changes (identify calls for the webhook, 1000 per request).
The webhook receiver runs in its own process (as a real receiver would), parses every body and
counts the messages; the sync's wall time includes planning, the ledger and every request.

Prints one ``name: value`` a line: webhook_changes_per_s, postgres_changes_per_s,
csv_formatted_1m_s (median wall seconds of ``--runs``; the name keeps "1m" whatever ``--size``),
csv_formatted_cpu_s (median CPU seconds of the process), csv_vs_segment (Segment's stated 30 s /
our seconds; goal >= 30), and the same medians for the unformatted and single formats. Comment
lines (``#``) give every run's wall and CPU seconds and the machine's load.

Usage:
    python benchmarks/destinations.py                 # 1M
    python benchmarks/destinations.py --size 100000
    python benchmarks/destinations.py --skip-postgres
    python benchmarks/destinations.py --skip-webhook --skip-postgres --runs 9   # export only
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audience_pipeline.destinations import export, sync  # noqa: E402
from audience_pipeline.warehouse.files import write_table  # noqa: E402

SEGMENT_FORMATTED_SECONDS = 30.0  # Segment docs: ~30 s for a formatted CSV of 1M rows


def build(root: Path, size: int, webhook_url: str) -> tuple[Path, Path]:
    defs = root / "defs"
    for sub in ("audiences", "traits", "destinations"):
        (defs / sub).mkdir(parents=True, exist_ok=True)
    (defs / "space.yaml").write_text(yaml.safe_dump({"space": "bench"}))
    (defs / "audiences" / "everyone.yaml").write_text(yaml.safe_dump(
        {"key": "everyone", "name": "Everyone", "condition": {"event": "Page Viewed"}}))  # fmt: skip
    (defs / "destinations" / "hook.yaml").write_text(yaml.safe_dump({
        "name": "hook", "type": "webhook", "settings": {"url": webhook_url},
        "send": ["identify"], "batch_size": 1000,
        "identifiers": {"user_id": "last", "email": "all"},
    }))  # fmt: skip
    (defs / "destinations" / "db.yaml").write_text(yaml.safe_dump({
        "name": "db", "type": "postgres", "batch_size": 50_000,
        "settings": {"dsn_env": "BENCH_DSN"},
    }))  # fmt: skip
    wh = root / "wh"
    ids = pl.int_range(0, size, eager=True).cast(pl.String).str.zfill(8)
    profiles = ("p_" + ids).alias("profile_id")
    write_table(pl.DataFrame({
        "audience_key": "everyone", "level": "user", "entity_id": profiles,
        "as_of": datetime(2026, 3, 1, tzinfo=UTC),
    }).with_columns(pl.col("as_of").cast(pl.Datetime("us", "UTC"))), wh, "memberships")  # fmt: skip
    identities = pl.concat([
        pl.DataFrame({"profile_id": profiles, "id_type": "user_id", "id_value": "u" + ids}),
        pl.DataFrame({"profile_id": profiles, "id_type": "email", "id_value": "user" + ids + "@example.com"}),
        pl.DataFrame({"profile_id": profiles, "id_type": "anonymous_id", "id_value": "a" + ids}),
    ])  # fmt: skip
    # Sorted as `compute` writes it (the export relies on that order for its fastest path).
    write_table(identities.sort("profile_id", "id_type", "id_value"), wh, "identities")
    return defs, wh


def handler(counter: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_POST(self) -> None:  # noqa: N802
            body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with counter.get_lock():
                counter.value += len(body["batch"])
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    return Handler


def serve(port: Any, counter: Any) -> None:
    """The receiver process: a threaded HTTP server on 127.0.0.1."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(counter))
    port.value = server.server_address[1]
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-webhook", action="store_true")
    parser.add_argument("--runs", type=int, default=5, help="export runs per format (median)")
    args = parser.parse_args(argv)
    counter, port = mp.Value("q", 0), mp.Value("i", 0)
    receiver = mp.get_context("fork").Process(target=serve, args=(port, counter), daemon=True)
    receiver.start()
    while not port.value:
        time.sleep(0.01)
    url = f"http://127.0.0.1:{port.value}/hook"
    # The machine may be shared: the load and this process's CPU seconds say how far the wall
    # times are from what an idle machine would show.
    print(f"# load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        defs, wh = build(Path(tmp), args.size, url)
        if not args.skip_webhook:
            start, start_cpu = time.perf_counter(), time.process_time()
            report = sync("hook", defs, wh)
            seconds, cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
            assert report.status == "ok" and counter.value == args.size, (report, counter.value)
            print(f"# webhook: {report.sent} changes in {seconds:.2f} s, {cpu_s:.2f} CPU s of the "
                  f"syncing process ({report.requests} requests)")  # fmt: skip
            print(f"webhook_changes_per_s: {report.sent / seconds:.0f}")
            print(f"webhook_changes_per_cpu_s: {report.sent / cpu_s:.0f}")
        receiver.terminate()

        if not args.skip_postgres:
            from tests.support.postgres import running_postgres

            with running_postgres() as pg:
                os.environ["BENCH_DSN"] = pg.dsn
                start, start_cpu = time.perf_counter(), time.process_time()
                report = sync("db", defs, wh)
                seconds, cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
                assert report.status == "ok", report
                print(f"# postgres: {report.sent} changes in {seconds:.2f} s, {cpu_s:.2f} CPU s "
                      "of the syncing process (the server's own work not counted)")  # fmt: skip
                print(f"postgres_changes_per_s: {report.sent / seconds:.0f}")

        for kind in ("formatted", "unformatted", "single"):
            out = Path(tmp) / f"{kind}.csv"
            times, cpu = [], []
            for _ in range(args.runs):
                start, start_cpu = time.perf_counter(), time.process_time()
                summary = export("everyone", kind, None, False, out, wh, defs)
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            wall_s, cpu_s = statistics.median(times), statistics.median(cpu)
            print(f"# {kind} CSV: {summary.rows} rows, {out.stat().st_size} bytes; wall s "
                  f"{' '.join(f'{t:.2f}' for t in times)}; CPU s "
                  f"{' '.join(f'{t:.2f}' for t in cpu)}")  # fmt: skip
            print(f"csv_{kind}_1m_s: {wall_s:.3f}")
            print(f"csv_{kind}_cpu_s: {cpu_s:.3f}")
            if kind == "formatted":
                print(f"csv_vs_segment: {SEGMENT_FORMATTED_SECONDS / wall_s:.1f}")
        print(f"# load average at end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
