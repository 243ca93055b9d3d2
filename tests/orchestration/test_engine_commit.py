"""The Dagster pipeline's engine goes through the same commit point as `compute`: stopped at any
write boundary, a rerun commits what a clean run commits (history, snapshots, state and
registry included), and the empty-input guard holds."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audience_pipeline.ingest import ingest
from audience_pipeline.membership.pipeline import engine_step
from audience_pipeline.orchestration import warehouse as wh
from audience_pipeline.orchestration.resources import PipelineSettings
from audience_pipeline.spec.loader import load_space
from audience_pipeline.warehouse import EmptyInput, open_run
from audience_pipeline.warehouse import writer as writer_module
from audience_pipeline.warehouse.layout import RUNS
from tests.orchestration.conftest import AS_OF


class Killed(BaseException):
    pass


def _land(settings: PipelineSettings, days: list[Path]) -> Path:
    warehouse = Path(settings.warehouse_dir)
    space = load_space(Path(settings.definitions_dir), [])
    for day in days:
        result = ingest(sorted(day.iterdir()), space)
        wh.write_partition(warehouse, "raw_events", day.name, result.events)
        wh.write_partition(warehouse, "raw_trait_updates", day.name, result.trait_updates)
    return warehouse


def _tables(warehouse: Path) -> dict[str, pl.DataFrame]:
    run = open_run(warehouse)
    assert run is not None
    out = {name: pl.read_parquet(run.path(name)) for name in run.tables}
    out["_state/messages"] = pl.read_parquet(run.file("_state/messages.parquet"))
    out["registry"] = pl.DataFrame({"text": [run.file("_audience_registry.json").read_text()]})
    return out


def _same(got: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame]) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        assert_frame_equal(got[name], want[name], rel_tol=1e-12)  # parallel float sums: last bits


def test_engine_stopped_at_each_boundary(space: PipelineSettings, tmp_path: Path) -> None:
    days = sorted(Path(space.landing_dir).iterdir())
    warehouse = _land(space, days[:-1])
    first = AS_OF - timedelta(days=1)
    engine_step(warehouse, space.definitions_dir, first)
    _land(space, days[-1:])  # a new day lands; the next run is incremental
    base = tmp_path / "base"
    shutil.copytree(warehouse, base, symlinks=True)
    steps: list[str] = []
    writer_module.boundary_hooks.append(steps.append)
    try:
        engine_step(warehouse, space.definitions_dir, AS_OF)
    finally:
        writer_module.boundary_hooks.remove(steps.append)
    clean = _tables(warehouse)
    before = _tables(base)
    assert "state" in steps and "table:membership_history" in steps
    for k, step in enumerate(steps):
        target = tmp_path / f"w{k}"
        shutil.copytree(base, target, symlinks=True)

        def stop(at: str, step: str = step) -> None:
            if at == step:
                raise Killed(at)

        hook: Callable[[str], None] = stop
        writer_module.boundary_hooks.append(hook)
        try:
            with pytest.raises(Killed):
                engine_step(target, space.definitions_dir, AS_OF)
        finally:
            writer_module.boundary_hooks.remove(hook)
        seen = _tables(target)
        _same(seen, clean if k >= steps.index("swap") else before)
        engine_step(target, space.definitions_dir, AS_OF)
        _same(_tables(target), clean)
        history = clean["membership_history"]
        assert history.filter(pl.col("valid_to").is_null()).height == clean["memberships"].height
        run = open_run(target)
        assert run is not None
        kept = {run.run_id, run.previous, run.base}
        assert all(p.name in kept for p in (target / RUNS).iterdir())
        shutil.rmtree(target)


def test_engine_empty_input_guard(space: PipelineSettings) -> None:
    days = sorted(Path(space.landing_dir).iterdir())
    warehouse = _land(space, days)
    engine_step(warehouse, space.definitions_dir, AS_OF)
    committed = open_run(warehouse)
    for table in ("raw_events", "raw_trait_updates"):
        shutil.rmtree(warehouse / table)
    later = AS_OF + timedelta(days=1)
    with pytest.raises(EmptyInput, match="no event read"):
        engine_step(warehouse, space.definitions_dir, later)
    assert open_run(warehouse) == committed
    engine_step(warehouse, space.definitions_dir, later, allow_empty=True)
    assert pl.read_parquet(warehouse / "memberships.parquet").height == 0
