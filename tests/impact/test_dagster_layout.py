"""`diff` over a warehouse the Dagster pipeline wrote (daily raw partitions + engine state)."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

from audience_pipeline.impact import edit_impact
from audience_pipeline.ingest import ingest
from audience_pipeline.membership.pipeline import engine_step
from audience_pipeline.orchestration import warehouse as wh
from audience_pipeline.spec.loader import load_space
from tests.impact.conftest import REPO_DEFINITIONS, edit
from tests.orchestration.conftest import AS_OF, make_landing

KEYS = ["audience_key", "level", "entity_id"]


def engine_run(warehouse: Path, definitions: Path) -> pl.DataFrame:
    """One engine step as the Dagster assets run it; returns the memberships it commits."""
    run, _ = engine_step(warehouse, definitions, AS_OF)
    return run.tables["memberships"]


def test_diff_reads_the_partitions_layout(tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    shutil.copytree(REPO_DEFINITIONS, before, ignore=shutil.ignore_patterns("destinations"))
    shutil.copytree(before, after)
    edit(after)
    make_landing(tmp_path / "landing", events=1500)
    warehouse = tmp_path / "warehouse"
    space = load_space(before, [])
    for day in sorted((tmp_path / "landing").iterdir()):
        result = ingest(sorted(day.iterdir()), space)
        wh.write_partition(warehouse, "raw_events", day.name, result.events)
        wh.write_partition(warehouse, "raw_trait_updates", day.name, result.trait_updates)
    old = engine_run(warehouse, before)
    report = edit_impact(after, warehouse, sample=10**9)
    now = engine_run(warehouse, after)  # the pipeline's next run with the edited space
    assert report.as_of == AS_OF
    for impact in report.audiences:

        def members(frame: pl.DataFrame, key: str = impact.audience_key) -> set[str]:
            return set(frame.filter(pl.col("audience_key") == key)["entity_id"])

        assert impact.size_after == len(members(now)), impact.audience_key
        assert {s["entity_id"] for s in impact.entering_sample} == members(now) - members(old)
        assert {s["entity_id"] for s in impact.exiting_sample} == members(old) - members(now)
    assert any(i.entering or i.exiting for i in report.audiences)
