"""Profile API speed: requests/s and p50/p99 latency on 127.0.0.1 against ~1M profiles.

    python benchmarks/api.py [--profiles 1000000] [--base-events 1000000] [--rate 1000]
                             [--seconds 20] [--data benchmarks/data/api]

Data: generating and computing 1M profiles directly (about 13M events) takes longer than this
machine allows (1M events took 3 minutes and 6.7 GB), so a base warehouse is computed from
`--base-events` demo events (generator + compute, about 80k profiles per 1M events) and then
replicated: copy k of every profile, account, identifier value, message and membership gets
the suffix `~k` (and message seq numbers an offset), until `--profiles` is reached. Trait
values, audience memberships and events per profile keep the demo's distributions. Both are
cached under the data folder (benchmarks/data is gitignored).

Then `audience-pipeline serve` runs in its own process, and a separate load process (2 spawned
Python processes, asyncio, keep-alive connections) sends a request mix at a fixed rate for
`--seconds` (open loop: latency counts from when each request was due). The mix, over random
profiles and identifier types (user_id, email, anonymous_id): 70% traits, 10% traits with
class=audience, 10% external_ids, 5% metadata, 5% links. It prints `api_requests_per_s`,
`api_p50_ms`, `api_p99_ms` (and the goal: 1,000 requests/s at p99 < 20 ms), then the
throughput at saturation measured with wrk when it is installed (`api_max_requests_per_s`).

Then the same load again for `--reload-seconds` while new runs are published back to back (the
run is committed again, so the server loads the run anew: the same work as a new run):
`api_p99_during_reload_ms` is the p99 of the requests answered while a reload was under way
(goal: 20 ms), `api_reloads` how many reloads finished, `api_reload_seconds` their median
duration. `--reload-seconds 0` skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import orjson
import polars as pl
from api_load import Result, load, percentile

from audience_pipeline.demo.generate import DEFAULT_AS_OF, generate
from audience_pipeline.ingest import EVENTS_COLUMNS
from audience_pipeline.service import run_compute
from audience_pipeline.warehouse import begin_run, open_run
from audience_pipeline.warehouse.writer import amend_run

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "benchmark-token"
SPACE = "demo"
MIX = [("traits", 70), ("traits?class=audience", 10), ("external_ids", 10), ("metadata", 5),
       ("links", 5)]  # fmt: skip


def base_warehouse(data: Path, events: int, definitions: Path) -> Path:
    out = data / f"base-{events}"
    if (out / "current").exists():
        return out
    raw = data / f"events-{events}"
    if not raw.exists():
        print(f"generating {events} demo events ...", flush=True)
        generate(raw, events=events, seed=11)
    print("computing the base warehouse ...", flush=True)
    run_compute(raw, definitions, DEFAULT_AS_OF, out)
    return out


def _suffix(column: str, k: int) -> pl.Expr:
    return pl.col(column) + f"~{k}" if k else pl.col(column)


def scaled_warehouse(base: Path, data: Path, profiles: int) -> Path:
    """Replicate the base run until it holds about `profiles` profiles."""
    base_profiles = pl.scan_parquet(base / "user_traits.parquet").select(pl.len()).collect().item()
    copies = max(1, -(-profiles // base_profiles))
    out = data / f"scaled-{copies}x-{base.name}"
    if (out / "current").exists():
        return out
    print(f"replicating {base_profiles} profiles x{copies} ...", flush=True)
    run = open_run(base)
    assert run is not None and run.as_of is not None
    shutil.rmtree(out, ignore_errors=True)
    with begin_run(out, as_of=run.as_of) as writer:
        _replicate(base, writer.folder, copies)
        writer.commit(as_of=run.as_of, layout="normalized", json_columns=run.json_columns)
    return out


def _replicate(base: Path, tmp: Path, copies: int) -> None:
    """The base run's tables and normalized inputs, `copies` times, written into `tmp`."""
    (tmp / "_normalized").mkdir(parents=True)
    span = int(pl.scan_parquet(base / "_normalized/events.parquet").select(pl.col("seq").max())
               .collect().item()) + 1  # fmt: skip

    def each(name: str, change) -> pl.LazyFrame:  # noqa: ANN001
        frame = pl.scan_parquet(base / name)
        return pl.concat([frame.with_columns(change(k)) for k in range(copies)])

    tables = {
        "identities.parquet": lambda k: [_suffix("profile_id", k), _suffix("id_value", k)],
        "user_traits.parquet": lambda k: [_suffix("profile_id", k)],
        "account_traits.parquet": lambda k: [_suffix("account_id", k)],
        "memberships.parquet": lambda k: [_suffix("entity_id", k)],
        "account_user_memberships.parquet": lambda k: [
            _suffix("account_id", k),
            _suffix("profile_id", k),
        ],  # fmt: skip
        "_normalized/trait_updates.parquet": lambda k: [pl.col("seq") + k * span],
        "_normalized/message_profiles.parquet": lambda k: [
            pl.col("seq") + k * span,
            _suffix("profile_id", k),
        ],  # fmt: skip
    }
    for name, change in tables.items():
        each(name, change).sink_parquet(tmp / name)

    def events(k: int) -> list[pl.Expr]:
        ids = pl.col("ids").list.eval(
            pl.struct(
                pl.element().struct.field("id_type"), _suffix_element(k).alias("id_value")
            )  # fmt: skip
        )
        return [pl.col("seq") + k * span, _suffix("message_id", k), _suffix("group_id", k),
                _suffix("previous_id", k), ids.alias("ids")]  # fmt: skip

    frame = pl.scan_parquet(base / "_normalized/events.parquet").select(list(EVENTS_COLUMNS))
    pl.concat([frame.with_columns(events(k)) for k in range(copies)]).sink_parquet(
        tmp / "_normalized/events.parquet"
    )


def _suffix_element(k: int) -> pl.Expr:
    value = pl.element().struct.field("id_value")
    return value + f"~{k}" if k else value


def request_paths(warehouse: Path, n: int = 200_000, seed: int = 5) -> list[str]:
    ids = pl.read_parquet(warehouse / "identities.parquet", columns=["id_type", "id_value"])
    sample = ids.sample(n=min(n, ids.height), seed=seed, with_replacement=True)
    rnd = random.Random(seed)
    kinds = [k for k, w in MIX for _ in range(w)]
    paths = []
    for id_type, value in sample.iter_rows():
        resource = rnd.choice(kinds)
        external = quote(f"{id_type}:{value}", safe="@:")
        paths.append(f"/v1/spaces/{SPACE}/collections/users/profiles/{external}/{resource}")
    return paths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    warehouse: Path, definitions: Path, port: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AUDIENCE_PIPELINE_API_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "audience_pipeline.cli", "serve", "--warehouse", str(warehouse),
               "--definitions", str(definitions), "--port", str(port), "--poll", "0.25"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("server did not start in 15 minutes")


def republish(warehouse: Path) -> None:
    """Commit the warehouse's run again as a new run (its files carried over by hard link): the
    server reloads it as new, the same work as a new run."""
    amend_run(warehouse, {})


def served_generation(port: int) -> int:
    return int(httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()["generation"])


def reload_loop(
    warehouse: Path, port: int, until: float, windows: list[tuple[float, float]]
) -> None:
    """Reloads back to back until `until` (wall clock): each window is (published, swapped)."""
    generation = served_generation(port)
    while time.time() < until:
        published = time.time()
        republish(warehouse)
        while served_generation(port) == generation:
            if time.time() > until + 900:
                return
            time.sleep(0.1)
        generation += 1
        windows.append((published, time.time()))
    windows.append((time.time(), float("inf")))  # a last reload may still be running


def during_reloads(result: Result, windows: list[tuple[float, float]]) -> list[float]:
    """Latencies of the requests answered while a reload was under way."""
    return [
        latency
        for latency, done in zip(result.latencies, result.done_at, strict=True)
        if any(start <= done <= end for start, end in windows)
    ]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wrk_max(
    port: int, paths: list[str], seconds: int, data: Path, niceness: int = 0
) -> dict[str, float] | None:
    """Saturation throughput with wrk (2 threads, 32 connections), if wrk is installed."""
    if shutil.which("wrk") is None:
        return None
    listing = data / "paths.txt"
    listing.write_text("\n".join(paths[:50_000]) + "\n")
    script = data / "paths.lua"
    auth = "Basic " + __import__("base64").b64encode(f"{TOKEN}:".encode()).decode()
    script.write_text(
        "local paths = {}\n"
        f"for line in io.lines({json.dumps(str(listing))}) do paths[#paths + 1] = line end\n"
        f'wrk.headers["Authorization"] = {json.dumps(auth)}\n'
        "local i = math.random(#paths)\n"
        "request = function()\n  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\nend\n'
    )
    done = subprocess.run(
        ["nice", "-n", str(niceness), "wrk", "-t2", "-c32", f"-d{seconds}s", "--latency",
         "-s", str(script), f"http://127.0.0.1:{port}"],  # fmt: skip
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    text = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    out = {"api_max_requests_per_s": rate}
    for pct in ("50", "99"):
        match = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", text)
        if match:
            value, unit = float(match.group(1)), match.group(2)
            out[f"api_max_p{pct}_ms"] = value * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["api_max_non_2xx"] = float(errors.group(1)) if errors else 0.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--base-events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--reload-seconds", type=float, default=120)
    parser.add_argument("--data", default=str(ROOT / "benchmarks" / "data" / "api"))
    parser.add_argument("--definitions", default=str(ROOT / "definitions"))
    parser.add_argument(
        "--niceness", type=int, default=0,
        help="run the server and the load processes at this nice value (negative needs root): "
        "shields the measurement from other busy processes on a shared machine",
    )  # fmt: skip
    args = parser.parse_args()
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    definitions = Path(args.definitions)
    warehouse = scaled_warehouse(
        base_warehouse(data, args.base_events, definitions), data, args.profiles
    )
    paths = request_paths(warehouse)
    port = free_port()
    started = time.perf_counter()
    server = start_server(warehouse, definitions, port, data / "server.log")
    ready = time.perf_counter() - started
    if args.niceness:
        os.setpriority(os.PRIO_PROCESS, server.pid, args.niceness)
    try:
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        auth = "Basic " + __import__("base64").b64encode(f"{TOKEN}:".encode()).decode()
        nice = args.niceness
        load("open", "127.0.0.1", port, auth, paths[-20_000:], rate=args.rate, seconds=3,
             niceness=nice)  # warm-up  # fmt: skip
        result = load("open", "127.0.0.1", port, auth, paths, rate=args.rate,
                      seconds=args.seconds, niceness=nice)  # fmt: skip
        saturation = wrk_max(port, paths, 15, data, nice)
        memory = rss_mb(server.pid)
        windows: list[tuple[float, float]] = []
        reloading = None
        if args.reload_seconds > 0:
            until = time.time() + args.reload_seconds
            trigger = threading.Thread(target=reload_loop, args=(warehouse, port, until, windows))
            trigger.start()
            reloading = load("open", "127.0.0.1", port, auth, paths, rate=args.rate,
                             seconds=args.reload_seconds, niceness=nice)  # fmt: skip
            trigger.join()
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    p50 = percentile(result.latencies, 50) * 1000
    p99 = percentile(result.latencies, 99) * 1000
    rate = len(result.latencies) / result.seconds
    print(f"profiles: {health['profiles']}")
    print(f"accounts: {health['accounts']}")
    print(f"api_server_ready_seconds: {ready:.1f}")
    print(f"api_server_rss_mb: {memory:.0f}")
    print(f"api_niceness: {args.niceness}")
    print(f"api_target_requests_per_s: {args.rate:.0f}")
    print(f"api_requests_per_s: {rate:.0f}")
    print(f"api_p50_ms: {p50:.2f}")
    print(f"api_p99_ms: {p99:.2f}")
    print(f"api_p99_from_send_ms: {percentile(result.sent, 99) * 1000:.2f}")
    print(f"api_errors: {result.errors}")
    print(f"api_goal_met: {rate >= 0.98 * 1000 and p99 < 20 and result.errors == 0}")
    if saturation:
        for key, value in saturation.items():
            print(f"{key}: {value:.2f}" if "ms" in key else f"{key}: {value:.0f}")
    extra: dict[str, float] = {}
    if reloading is not None:
        finished = [end - start for start, end in windows if end != float("inf")]
        inside = during_reloads(reloading, windows)
        extra = {
            "api_reloads": len(finished),
            "api_reload_seconds": statistics.median(finished) if finished else float("nan"),
            "api_requests_during_reload": len(inside),
            "api_p50_during_reload_ms": percentile(inside, 50) * 1000,
            "api_p99_during_reload_ms": percentile(inside, 99) * 1000,
            "api_max_during_reload_ms": max(inside, default=float("nan")) * 1000,
            "api_errors_during_reload": reloading.errors,
        }
        for key, value in extra.items():
            print(f"{key}: {value:.2f}" if isinstance(value, float) else f"{key}: {value}")
    (data / "last_run.json").write_bytes(orjson.dumps({"rate": rate, "p50_ms": p50, "p99_ms": p99,
                                                       **(saturation or {}), **extra}))  # fmt: skip


if __name__ == "__main__":
    main()
