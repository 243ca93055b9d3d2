"""The edit_impact check shows, after a run, the numbers `diff` gave before it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl

from audience_pipeline.impact import edit_impact
from audience_pipeline.orchestration.impact import CHANGED_TAG, CHECK_NAME, edit_impact_check
from audience_pipeline.orchestration.resources import PipelineSettings
from audience_pipeline.service import parse_as_of, run_compute
from tests.impact.conftest import AS_OF


def test_check_metadata_equals_the_diff_taken_before_the_run(
    run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    root, before, after = run
    wh = tmp_path / "wh"
    run_compute(root / "events", before, parse_as_of(AS_OF), wh)
    expected = edit_impact(after, wh, ["big_spenders", "total_revenue_90d"])
    # A microsecond later: a run at the same as-of would replace the first one (and be compared
    # with the run before it, docs/semantics.md), not follow it as the pipeline's next run does.
    run_compute(root / "events", after, parse_as_of(AS_OF) + timedelta(microseconds=1), wh)

    @dg.asset(name="memberships")
    def memberships() -> pl.DataFrame:  # stands in for the engine's output, already on disk
        return pl.read_parquet(wh / "memberships.parquet")

    settings = PipelineSettings(definitions_dir=str(after), warehouse_dir=str(wh))
    result = dg.materialize(
        [memberships, edit_impact_check],
        resources={"settings": settings},
        tags={CHANGED_TAG: "audience/big_spenders, trait/total_revenue_90d"},
    )
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == CHECK_NAME and check.passed
    shown = {r["audience_key"]: r for r in check.metadata["audiences"].value}  # type: ignore[union-attr]
    assert set(shown) == {i.audience_key for i in expected.audiences}
    for impact in expected.audiences:
        row = shown[impact.audience_key]
        numbers = (row["size_now"], row["size_after"], row["entering"], row["exiting"])
        assert numbers == (impact.size_now, impact.size_after, impact.entering, impact.exiting)
        assert row["entering_sample"] == impact.entering_sample
    assert "### Audience impact" in str(check.metadata["impact"].value)
