"""Asset checks: pandera contracts, unique memberships, valid definitions (audience size swings:
size_change.py, evaluated with the audience views)."""

from __future__ import annotations

import dagster as dg
import polars as pl

from audience_pipeline.orchestration import warehouse as wh
from audience_pipeline.orchestration.resources import PipelineSettings
from audience_pipeline.orchestration.schemas import SCHEMAS, problems
from audience_pipeline.orchestration.size_change import size_change

MEMBERSHIP_KEYS = ["audience_key", "level", "entity_id"]


def schema_check(table: str) -> dg.AssetChecksDefinition:
    """The table's pandera schema holds (every problem listed at once)."""

    @dg.asset_check(
        asset=dg.AssetKey(table),
        name="pandera_schema",
        blocking=False,
        description=f"Every column of {table} has its declared type, nullability and allowed "
        "values (pandera schema in orchestration/schemas.py); failures list each bad value.",
    )
    def _check(settings: PipelineSettings) -> dg.AssetCheckResult:
        frame = _read(settings, table)
        if frame is None:
            return dg.AssetCheckResult(passed=False, description=f"{table} is missing")
        failures = problems(table, frame)
        if failures is None:
            return dg.AssetCheckResult(passed=True, metadata={"rows": frame.height})
        return dg.AssetCheckResult(
            passed=False,
            metadata={
                "failures": failures.height,
                "sample": dg.MetadataValue.md(str(failures.head(10))),
            },
        )

    return _check


def _read(settings: PipelineSettings, table: str) -> pl.DataFrame | None:
    if table in ("quarantine",):
        parts = wh.read_partitions(settings.warehouse, table)
        return pl.concat(parts) if parts else None
    return wh.read_whole(settings.warehouse, table)


@dg.asset_check(asset=dg.AssetKey("memberships"), name="unique_memberships", blocking=True)
def unique_memberships(settings: PipelineSettings) -> dg.AssetCheckResult:
    """No entity is listed twice in one audience."""
    frame = wh.read_whole(settings.warehouse, "memberships")
    if frame is None:
        return dg.AssetCheckResult(passed=False, description="memberships is missing")
    duplicated = frame.filter(pl.struct(MEMBERSHIP_KEYS).is_duplicated())
    return dg.AssetCheckResult(
        passed=duplicated.height == 0, metadata={"duplicate_rows": duplicated.height}
    )


DEFINITIONS_CHECK = dg.AssetCheckKey(dg.AssetKey("memberships"), "definitions_valid")


@dg.asset_check(
    asset=dg.AssetKey("memberships"),
    name="definitions_valid",
    blocking=False,
    description="The definitions folder loads and validates. A failure lists each problem with "
    "its file, key, field and text; until it is fixed the last valid traits and audiences stay "
    "in place and recomputes fail.",
)
def definitions_valid(settings: PipelineSettings) -> dg.AssetCheckResult:
    from audience_pipeline.service import validate

    issues = validate(settings.definitions_dir)
    if not issues:
        return dg.AssetCheckResult(passed=True, metadata={"problems": 0})
    rows = ["| file | key | field | problem | text |", "| --- | --- | --- | --- | --- |"]
    rows += [
        "| " + " | ".join(_cell(v) for v in (i.file, i.key, i.field, i.message, i.text)) + " |"
        for i in issues
    ]
    return dg.AssetCheckResult(
        passed=False,
        description=f"{len(issues)} problem(s); first: {issues[0]}",
        metadata={"problems": len(issues), "issues": dg.MetadataValue.md("\n".join(rows))},
    )


def _cell(value: str | None) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def all_checks() -> list[dg.AssetChecksDefinition]:
    """The table checks; each audience's size_change check runs in the audience_views step
    (assets.audience_assets), which has the sizes at hand."""
    return [*(schema_check(t) for t in SCHEMAS), unique_memberships, definitions_valid]


__all__ = ["DEFINITIONS_CHECK", "all_checks", "definitions_valid", "schema_check", "size_change"]
