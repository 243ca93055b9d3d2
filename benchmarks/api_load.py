"""A small HTTP/1.1 load client for benchmarks/api.py (asyncio, keep-alive, several processes).

Open loop: requests are due at a fixed rate whatever the server does, and each latency is
measured from the moment its request was due (so a stalled server shows as queueing latency
rather than as fewer requests: no coordinated omission). Closed loop: each connection sends its
next request as soon as the previous answer arrives (maximum throughput).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from dataclasses import dataclass, field


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds, from when each was due
    sent: list[float] = field(default_factory=list)  # seconds, from when each was written
    done_at: list[float] = field(default_factory=list)  # wall clock (time.time) of each answer
    errors: int = 0
    seconds: float = 0.0

    def merge(self, other: Result) -> None:
        self.latencies += other.latencies
        self.sent += other.sent
        self.done_at += other.done_at
        self.errors += other.errors
        self.seconds = max(self.seconds, other.seconds)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    await reader.readexactly(length)
    return status


def _raw(host: str, path: str, auth: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n\r\n".encode()


async def _open_loop(host: str, port: int, auth: str, paths: list[str], rate: float,
                     seconds: float, connections: int) -> Result:  # fmt: skip
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    result = Result()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while (item := await queue.get()) is not None:
            due, raw = item
            sent = time.perf_counter()
            status = await _request(reader, writer, raw)
            done = time.perf_counter()
            result.latencies.append(done - due)
            result.sent.append(done - sent)
            result.done_at.append(time.time())
            result.errors += status != 200
        writer.close()

    tasks = [asyncio.create_task(worker()) for _ in range(connections)]
    await asyncio.sleep(0.2)  # connections open
    start = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((due, _raw(host, paths[i % len(paths)], auth)))
    for _ in tasks:
        queue.put_nowait(None)
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - start
    return result


async def _closed_loop(host: str, port: int, auth: str, paths: list[str], seconds: float,
                       connections: int) -> Result:  # fmt: skip
    result = Result()
    stop = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        i = offset
        while time.perf_counter() < stop:
            sent = time.perf_counter()
            status = await _request(reader, writer, _raw(host, paths[i % len(paths)], auth))
            result.latencies.append(time.perf_counter() - sent)
            result.sent.append(result.latencies[-1])
            result.errors += status != 200
            i += connections
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(connections)))
    result.seconds = time.perf_counter() - start
    return result


def _run(args: tuple) -> Result:  # noqa: ANN001  (a picklable tuple for the process pool)
    mode, host, port, auth, paths, rate, seconds, connections, niceness = args
    if niceness:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    if mode == "open":
        return asyncio.run(_open_loop(host, port, auth, paths, rate, seconds, connections))
    return asyncio.run(_closed_loop(host, port, auth, paths, seconds, connections))


def load(mode: str, host: str, port: int, auth: str, paths: list[str], *, rate: float = 1000,
         seconds: float = 20, processes: int = 2, connections: int = 16,
         niceness: int = 0) -> Result:  # fmt: skip
    """Run the load in `processes` processes (spawned: none inherits the caller's threads)."""
    shares = [paths[k::processes] for k in range(processes)]
    jobs = [(mode, host, port, auth, share, rate / processes, seconds, connections, niceness)
            for share in shares]  # fmt: skip
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_run, jobs)
    total = Result()
    for part in parts:
        total.merge(part)
    return total
