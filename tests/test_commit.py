"""One commit point per run: a run stopped at any write boundary, or killed at a random moment,
leaves every reader on the previous run whole, and a rerun writes what a clean run writes.

Fault injection: `warehouse.writer.boundary_hooks` stops the run at each boundary in turn with
an exception that no cleanup code catches (as a kill: the run's folder stays behind). Random
SIGKILLs: the real CLI in a subprocess. Readers checked: the run resolved by `open_run`, the
fixed `<table>.parquet` paths of SPEC section 6, `sql`, `export` and the pinned snapshot the
Profile API and explain use.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audience_pipeline import service
from audience_pipeline.demo.generate import generate
from audience_pipeline.destinations import export
from audience_pipeline.warehouse import open_run
from audience_pipeline.warehouse import writer as writer_module
from audience_pipeline.warehouse.layout import NORMALIZED_INPUTS, RUNS
from audience_pipeline.warehouse.snapshot import SERVED_TABLES, open_snapshot

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = ROOT / "definitions"
AS_OF_A = datetime(2026, 2, 26, tzinfo=UTC)
AS_OF_B = datetime(2026, 3, 1, tzinfo=UTC)
AUDIENCE = "big_spenders"


class Killed(BaseException):
    """Stops a run as a kill would: not an Exception, so no cleanup code catches it."""


def _tables(warehouse: Path) -> dict[str, pl.DataFrame]:
    """Every table of the current run and its normalized inputs, read through the commit point."""
    run = open_run(warehouse)
    assert run is not None
    frames = {name: pl.read_parquet(run.path(name)) for name in run.tables}
    for name, relative in NORMALIZED_INPUTS.items():
        frames[f"input:{name}"] = pl.read_parquet(run.file(relative))
    return frames


def _assert_same(got: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame]) -> None:
    assert sorted(got) == sorted(want)
    for name, frame in want.items():
        assert_frame_equal(got[name], frame, rel_tol=1e-12)  # parallel float sums: last bits


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Events, a warehouse after run A, and the tables of run A and of a clean run B on it."""
    root = tmp_path_factory.mktemp("commit")
    events = root / "events"
    generate(events, events=1200, seed=5, as_of=AS_OF_B, days=20, files=1, gzip=False)
    after_a = root / "after_a"
    service.run_compute(events, DEFINITIONS, AS_OF_A, after_a)
    clean = root / "clean"
    shutil.copytree(after_a, clean, symlinks=True)
    steps: list[str] = []
    writer_module.boundary_hooks.append(steps.append)
    try:
        service.run_compute(events, DEFINITIONS, AS_OF_B, clean)
    finally:
        writer_module.boundary_hooks.remove(steps.append)
    return {
        "events": events,
        "after_a": after_a,
        "a": _tables(after_a),
        "b": _tables(clean),
        "steps": steps,
    }


def _fresh(world: dict[str, object], tmp_path: Path, name: str = "warehouse") -> Path:
    target = tmp_path / name
    shutil.copytree(world["after_a"], target, symlinks=True)  # type: ignore[arg-type]
    return target


def _check_readers(warehouse: Path, want: dict[str, pl.DataFrame], as_of: datetime) -> None:
    """Every reader sees exactly the run `want` (all of it, nothing of another run)."""
    _assert_same(_tables(warehouse), want)
    for name in ("memberships", "membership_history", "membership_changes", "identities"):
        assert pl.read_parquet(warehouse / f"{name}.parquet").equals(want[name]), name
    counts = service.query(
        "SELECT (SELECT count(*) FROM memberships) AS m, "
        "(SELECT count(*) FROM membership_history) AS h", warehouse
    )  # fmt: skip
    assert counts.row(0) == (want["memberships"].height, want["membership_history"].height)
    snapshot = open_snapshot(warehouse)
    assert snapshot.as_of == as_of
    for name in SERVED_TABLES:
        assert snapshot.table(name).equals(want[name]), name
    members = want["memberships"].filter(pl.col("audience_key") == AUDIENCE).height
    exported = export(AUDIENCE, "unformatted", None, False, warehouse / "x.csv", warehouse,
                      DEFINITIONS)  # fmt: skip
    (warehouse / "x.csv").unlink()
    assert exported.members == members


def _leftovers(warehouse: Path) -> list[str]:
    run = open_run(warehouse)
    assert run is not None
    kept = {run.run_id, run.previous, run.base}
    return [p.name for p in (warehouse / RUNS).iterdir() if p.name not in kept]


def test_the_boundaries_cover_every_write(world: dict[str, object]) -> None:
    steps = world["steps"]
    assert isinstance(steps, list)
    tables = {s.split(":", 1)[1] for s in steps if s.startswith("table:")}
    assert {"memberships", "membership_changes", "membership_history", "quarantine"} <= tables
    assert steps.index("run-file") < steps.index("swap") < steps.index("cleanup")


def _kill_at(step: str) -> Iterator[None]:
    def hook(at: str) -> None:
        if at == step:
            raise Killed(step)

    writer_module.boundary_hooks.append(hook)
    try:
        yield
    finally:
        writer_module.boundary_hooks.remove(hook)


def test_a_run_stopped_at_each_boundary(world: dict[str, object], tmp_path: Path) -> None:
    steps = world["steps"]
    assert isinstance(steps, list)
    events = world["events"]
    committed = False
    for k, step in enumerate(steps):
        committed = committed or step == "swap"
        warehouse = _fresh(world, tmp_path, f"w{k}")
        stop = _kill_at(step)
        next(stop)
        with pytest.raises(Killed):
            service.run_compute(events, DEFINITIONS, AS_OF_B, warehouse)  # type: ignore[arg-type]
        next(stop, None)
        if committed:
            _check_readers(warehouse, world["b"], AS_OF_B)  # type: ignore[arg-type]
        else:
            _check_readers(warehouse, world["a"], AS_OF_A)  # type: ignore[arg-type]
        service.run_compute(events, DEFINITIONS, AS_OF_B, warehouse)  # type: ignore[arg-type]
        _assert_same(_tables(warehouse), world["b"])  # type: ignore[arg-type]
        assert not _leftovers(warehouse), (step, _leftovers(warehouse))
        shutil.rmtree(warehouse)


def _cli(events: Path, warehouse: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "audience_pipeline.cli", "compute", "--events", str(events),
               "--as-of", AS_OF_B.isoformat(), "--out", str(warehouse),
               "--definitions", str(DEFINITIONS)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _started(warehouse: Path, known: set[str], process: subprocess.Popen[bytes]) -> float:
    """Wait until the run's folder appears (the writer has begun); returns when it did."""
    while process.poll() is None:
        if {p.name for p in (warehouse / RUNS).iterdir()} - known:
            return time.monotonic()
        time.sleep(0.005)
    return time.monotonic()


def test_random_sigkills_of_the_cli(world: dict[str, object], tmp_path: Path) -> None:
    events = world["events"]
    assert isinstance(events, Path)
    warehouse = _fresh(world, tmp_path)
    known = {p.name for p in (warehouse / RUNS).iterdir()}
    process = _cli(events, warehouse)
    began = _started(warehouse, known, process)
    before = os.readlink(warehouse / "current")
    while os.readlink(warehouse / "current") == before and process.poll() is None:
        time.sleep(0.002)
    span = time.monotonic() - began  # from the run's first write to its commit
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err.decode()[-2000:]
    rng = random.Random(11)
    seen = set()
    for k in range(6):
        warehouse = _fresh(world, tmp_path, f"k{k}")
        process = _cli(events, warehouse)
        _started(warehouse, known, process)
        time.sleep(rng.uniform(0, 1.2 * span))
        process.send_signal(signal.SIGKILL)
        process.wait()
        run = open_run(warehouse)
        assert run is not None and run.as_of in (AS_OF_A, AS_OF_B)
        seen.add(run.as_of)
        want = world["b"] if run.as_of == AS_OF_B else world["a"]
        _check_readers(warehouse, want, run.as_of)  # type: ignore[arg-type]
        service.run_compute(events, DEFINITIONS, AS_OF_B, warehouse)
        _assert_same(_tables(warehouse), world["b"])  # type: ignore[arg-type]
        assert not _leftovers(warehouse)
        shutil.rmtree(warehouse)
    assert AS_OF_A in seen  # at least one kill landed before the commit
