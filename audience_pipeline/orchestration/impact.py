"""Dagster: the edit impact of a run as an asset check on the memberships, for reviewers.

``edit_impact`` runs after the memberships asset: it reads the run's memberships and
membership_changes and reports, per audience, the numbers ``audience-pipeline diff`` gives
(size before the run and after it, entering, exiting and a few of each) as metadata. On the
definitions sensor's run (tag ``audience_pipeline/changed``) it covers the edited audiences and
traits and every audience that depends on them; on other runs, every audience that moved. With
the same inputs and as-of this equals the diff taken before the run: the diff's "after" is the
next run's memberships. The check never fails: it informs.

It is wired into the code location in ``definitions.py``.
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from audience_pipeline.impact.evaluate import dependents, labeler
from audience_pipeline.impact.model import KEYS, AudienceImpact, compare_memberships
from audience_pipeline.impact.render import render_markdown
from audience_pipeline.orchestration import warehouse as wh
from audience_pipeline.orchestration.resources import PipelineSettings
from audience_pipeline.spec.compile import load_space_ir

CHECK_NAME = "edit_impact"
CHANGED_TAG = "audience_pipeline/changed"


def before_run(memberships: pl.DataFrame, changes: pl.DataFrame) -> pl.DataFrame:
    """The memberships before the run: after, less who entered, plus who exited."""
    entered = changes.filter(pl.col("change") == "entered").select(KEYS)
    exited = changes.filter(pl.col("change") == "exited").select(KEYS)
    return pl.concat([memberships.select(KEYS).join(entered, on=KEYS, how="anti"), exited])


def changed_keys(tag: str | None) -> list[str] | None:
    """Keys named by the definitions sensor's tag (``audience/x, trait/y, space``); None: none."""
    if not tag:
        return None
    keys = [part.strip().split("/", 1)[1] for part in tag.split(",") if "/" in part]
    return keys or None


def run_impact(settings: PipelineSettings, changed: list[str] | None,
               sample: int = 5) -> tuple[str, list[AudienceImpact]]:  # fmt: skip
    """(as-of text, impacts) of the run the warehouse holds now."""
    memberships = wh.read_whole(settings.warehouse, "memberships")
    changes = wh.read_whole(settings.warehouse, "membership_changes")
    if memberships is None or changes is None:
        return "", []
    as_of = memberships["as_of"].max() if memberships.height else changes["as_of"].max()
    definitions, space = load_space_ir(settings.definitions_dir, as_of)  # type: ignore[arg-type]
    levels = {a.key: a.level for a in definitions.audiences}
    for key, level in changes.select("audience_key", "level").unique().iter_rows():
        levels.setdefault(key, level)
    moved = set(changes["audience_key"].to_list())
    wanted = dependents(space, changed) if changed else moved
    audiences = [
        (key, level, "deleted" if key not in {a.key for a in definitions.audiences} else "existing")
        for key, level in levels.items() if key in wanted
    ]  # fmt: skip
    before = before_run(memberships, changes)
    identities = wh.read_whole(settings.warehouse, "identities")
    if identities is None:
        identities = pl.DataFrame(schema={"profile_id": pl.String, "id_type": pl.String,
                                          "id_value": pl.String})  # fmt: skip
    label = labeler(identities, [spec.type for spec in definitions.space.identifiers])
    impacts = compare_memberships(before, memberships, audiences, sample=sample,
                                  now_labels=label, after_labels=label)  # fmt: skip
    return str(as_of), impacts


@dg.asset_check(
    asset=dg.AssetKey("memberships"),
    name=CHECK_NAME,
    blocking=False,
    description="What this run changed per audience (size before/after, entering, exiting); on "
    "a definitions change, the edited audiences and what depends on them",
)
def edit_impact_check(context, settings: PipelineSettings) -> dg.AssetCheckResult:  # noqa: ANN001
    changed = changed_keys(context.run.tags.get(CHANGED_TAG))
    as_of, impacts = run_impact(settings, changed)
    return dg.AssetCheckResult(
        passed=True,
        metadata={
            "changed_definitions": dg.MetadataValue.text(", ".join(changed or []) or "-"),
            "audiences": dg.MetadataValue.json([i.as_dict() for i in impacts]),
            "impact": dg.MetadataValue.md(render_markdown(impacts, as_of)),
            "entering": sum(i.entering for i in impacts),
            "exiting": sum(i.exiting for i in impacts),
        },
    )


__all__ = ["CHECK_NAME", "before_run", "changed_keys", "edit_impact_check", "run_impact"]
