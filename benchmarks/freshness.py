"""Freshness end to end with a real `dagster dev`: a file lands -> memberships rewritten -> the
run finished (views, checks, snapshots) -> a webhook destination has received the changes.

Set-up (not timed): a temporary copy of the demo definitions whose only destination is a webhook
to a local HTTP receiver (min_interval 0m, so the measurement is the pipeline's, not a pause we
configured); demo events landed and materialized once (`orchestration.demo`); `dagster dev`
started on a free port (`setsid env --default-signal=INT,TERM`, one SIGINT stops the group) and
the destination's first sync (a backfill) awaited. Then one file lands in `landing/<today>/`
(written aside and renamed in, so the sensor never sees half a file): the demo generator's
events for today plus a new user who orders, so memberships certainly change.

Prints `name: value` lines, seconds after the file landed: run_requested (the landing sensor's
run created), run_started, memberships_rewritten (the memberships materialization),
run_finished, sync_started (the reverse-ETL run), webhook_received (the receiver's last request
of that sync) and freshness_s (= webhook_received). Goal: freshness_s <= 120.

Usage:
    python benchmarks/freshness.py                        # 50,000 demo events over 60 days
    python benchmarks/freshness.py --events 5000 --days 7 --keep /tmp/fresh
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
DESTINATION = "bench_webhook"
SECRET_ENV = "BENCH_WEBHOOK_SECRET"
STAGES = (
    "run_requested", "run_started", "memberships_rewritten", "run_finished", "sync_started",
    "webhook_received",
)  # fmt: skip


@dataclass
class Receiver:
    """A local webhook endpoint: the arrival time and message count of every request."""

    server: ThreadingHTTPServer
    requests: list[tuple[float, int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def after(self, t0: float) -> list[tuple[float, int]]:
        return [r for r in list(self.requests) if r[0] >= t0]


def start_receiver() -> Receiver:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802  (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            batch = orjson.loads(body).get("batch", []) if body else []
            receiver.requests.append((time.time(), len(batch)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def definitions(self) -> Path:
        return self.root / "definitions"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse"

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    def env(self, port: int | None = None) -> dict[str, str]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DAGSTER_HOME": str(self.home),
            "AUDIENCE_PIPELINE_DEFINITIONS": str(self.definitions),
            "AUDIENCE_PIPELINE_LANDING": str(self.landing),
            "AUDIENCE_PIPELINE_WAREHOUSE": str(self.warehouse),
            SECRET_ENV: "freshness-benchmark-secret",
            "PYTHONWARNINGS": "ignore",
        }
        if port is not None:
            env["DAGSTER_PORT"] = str(port)
        return env


def prepare(root: Path, receiver: Receiver, *, events: int, days: int) -> Workspace:
    """Definitions with one webhook destination, demo events landed and materialized once."""
    ws = Workspace(root)
    shutil.copytree(ROOT / "definitions", ws.definitions)
    for path in (ws.definitions / "destinations").glob("*.y*ml"):
        path.unlink()
    webhook = {
        "name": DESTINATION, "type": "webhook", "settings": {"url": receiver.url,
        "secret_env": SECRET_ENV}, "audiences": "all", "send": ["identify", "track"],
        "batch_size": 500, "min_interval": "0m",
    }  # fmt: skip
    (ws.definitions / "destinations" / f"{DESTINATION}.yaml").write_text(yaml.safe_dump(webhook))
    ws.home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", ws.home / "dagster.yaml")
    command = [sys.executable, "-m", "audience_pipeline.orchestration.demo",
               "--events", str(events), "--days", str(days)]  # fmt: skip
    subprocess.run(command, cwd=ROOT, env=ws.env(), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=1800)  # fmt: skip
    return ws


def start_dagster(ws: Workspace, port: int, log: Path) -> subprocess.Popen[bytes]:
    dagster = Path(sys.executable).parent / "dagster"
    command = ["setsid", "env", "--default-signal=INT,TERM", str(dagster), "dev", "-w",
               "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    handle = log.open("wb")
    return subprocess.Popen(command, cwd=ROOT, env=ws.env(port), stdout=handle,
                            stderr=subprocess.STDOUT)  # fmt: skip


def stop_dagster(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to the group (setsid made the child its leader); SIGKILL what outlives 60 s."""
    try:
        os.killpg(process.pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def wait_until_ready(port: int, timeout: float = 180) -> None:
    query = b'{"query": "{ version }"}'
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=query,
                                             headers={"Content-Type": "application/json"})  # fmt: skip
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"dagster dev did not answer on port {port}")


def _instance(ws: Workspace):  # type: ignore[no-untyped-def]
    import dagster as dg

    return dg.DagsterInstance.from_config(str(ws.home))


def _runs_after(instance, t0: float) -> list:  # type: ignore[no-untyped-def]  # noqa: ANN001
    import dagster as dg

    created = datetime.fromtimestamp(t0, UTC)
    return list(instance.get_run_records(filters=dg.RunsFilter(created_after=created)))


def wait_for_sync(ws: Workspace, since: float, timeout: float) -> object:
    """The first successful reverse-ETL run of the webhook created after `since`."""
    import dagster as dg

    instance = _instance(ws)
    deadline = time.time() + timeout
    while time.time() < deadline:
        for record in _runs_after(instance, since):
            run = record.dagster_run
            if run.tags.get("destination") != DESTINATION:
                continue
            if run.status == dg.DagsterRunStatus.SUCCESS:
                return record
            if run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
                raise RuntimeError(f"the webhook sync run {run.run_id} ended {run.status}")
        time.sleep(0.5)
    raise TimeoutError(f"no webhook sync finished within {timeout:.0f} s")


def land_file(ws: Workspace) -> tuple[Path, float]:
    """Today's events plus a new ordering user, renamed into landing/<today>/; (path, time)."""
    from audience_pipeline.demo.generate import generate

    now = datetime.now(UTC).replace(microsecond=0)
    aside = ws.root / "aside"
    generate(aside, events=500, as_of=now, days=1, files=1, seed=int(now.timestamp()) % 10_000,
             gzip=False)  # fmt: skip
    user = f"fresh-{int(now.timestamp())}"
    extra = [
        {"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com"},
         "messageId": f"{user}-identify", "timestamp": now.isoformat()},
        {"type": "track", "userId": user, "event": "Order Completed", "messageId": f"{user}-order",
         "properties": {"revenue": 900.0, "currency": "USD"}, "timestamp": now.isoformat()},
    ]  # fmt: skip
    source = next(aside.glob("events-*"))
    with source.open("ab") as handle:
        for message in extra:
            handle.write(orjson.dumps(message) + b"\n")
    day = ws.landing / now.date().isoformat()
    day.mkdir(parents=True, exist_ok=True)
    target = day / f"fresh-{int(now.timestamp())}.jsonl"
    os.replace(source, target)
    landed = time.time()
    shutil.rmtree(aside, ignore_errors=True)
    return target, landed


def measure(ws: Workspace, receiver: Receiver, landed: float, timeout: float) -> dict[str, float]:
    """Seconds from `landed` to each stage (see the module docstring)."""
    import dagster as dg

    instance = _instance(ws)
    sync = wait_for_sync(ws, landed, timeout)
    landing_runs = [
        r for r in _runs_after(instance, landed)
        if r.dagster_run.tags.get("dagster/sensor_name") == "landing_files"
    ]  # fmt: skip
    if not landing_runs:
        raise RuntimeError("the landing sensor started no run")
    run = max(landing_runs, key=lambda r: r.create_timestamp.timestamp())
    event = instance.get_latest_materialization_event(dg.AssetKey("memberships"))
    requests = receiver.after(sync.start_time or landed)  # type: ignore[attr-defined]
    if not requests:
        raise RuntimeError("the webhook received nothing after the file landed")
    stages = {
        "run_requested": run.create_timestamp.timestamp(),
        "run_started": run.start_time,
        "memberships_rewritten": event.timestamp if event is not None else float("nan"),
        "run_finished": run.end_time,
        "sync_started": sync.start_time,  # type: ignore[attr-defined]
        "webhook_received": max(t for t, _ in requests),
    }
    return {name: round(float(value or 0.0) - landed, 1) for name, value in stages.items()}


def run(root: Path, *, events: int, days: int, timeout: float = 600) -> dict[str, float]:
    receiver = start_receiver()
    try:
        ws = prepare(root, receiver, events=events, days=days)
        port = free_port()
        started = time.time()
        process = start_dagster(ws, port, root / "dagster.log")
        try:
            wait_until_ready(port)
            wait_for_sync(ws, started, timeout)  # the first sync: a backfill of every member
            time.sleep(2)  # let the sensor's tick that started it settle
            _, landed = land_file(ws)
            stages = measure(ws, receiver, landed, timeout)
        finally:
            stop_dagster(process)
        stages["messages_received"] = float(sum(n for _, n in receiver.after(landed)))
        stages["freshness_s"] = stages["webhook_received"]
        return stages
    finally:
        receiver.server.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--timeout", type=float, default=600, help="seconds per stage wait")
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep it")
    args = parser.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="freshness-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        stages = run(root, events=args.events, days=args.days, timeout=args.timeout)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"# {args.events} demo events over {args.days} days; seconds after the file landed")
    for name in (*STAGES, "messages_received", "freshness_s"):
        print(f"{name}: {stages[name]:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
