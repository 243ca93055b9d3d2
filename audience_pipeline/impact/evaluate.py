"""Evaluate the definitions on disk over the last run's inputs and as-of; write nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from audience_pipeline.impact.last_run import read_last_run
from audience_pipeline.impact.model import AudienceImpact, compare_memberships
from audience_pipeline.ir import walk
from audience_pipeline.ir.nodes import Space
from audience_pipeline.spec.issues import DefinitionsError, Issue
from audience_pipeline.spec.loader import load_definitions


@dataclass(frozen=True)
class ImpactReport:
    """Everything `diff` prints: the run it compared with, and one entry per audience."""

    as_of: datetime
    audiences: list[AudienceImpact]
    selected: list[str] = field(default_factory=list)  # the keys asked for ([] = all)


def dependents(space: Space, keys: Sequence[str]) -> set[str]:
    """``keys`` (audience or computed trait keys) and every audience that names them, directly
    or through other audiences. A trait counts as named when an expression uses its key as a
    name (over-approximate on purpose: an extra audience in a diff costs nothing)."""
    names: dict[str, set[str]] = {}
    for audience in space.audiences:
        used = set(walk.audience_refs(audience.condition))
        for node in walk.iter_conditions(audience.condition):
            for expr in walk.condition_exprs(node):
                used.update(ref.path[0] for ref in walk.refs(expr) if ref.path)
                used.update(ref.dotted for ref in walk.refs(expr))
        names[audience.key] = used
    found = set(keys)
    changed = True
    while changed:
        more = {key for key, used in names.items() if key not in found and used & found}
        found |= more
        changed = bool(more)
    return found


def labeler(identities: pl.DataFrame, priority: Sequence[str]) -> Callable[[list[str], str],
                                                                            Mapping[str, str]]:  # fmt: skip
    """A profile's label is its identifier of the highest-priority type, smallest value first."""
    rank = {id_type: n for n, id_type in enumerate(priority)}

    def label(ids: list[str], level: str) -> Mapping[str, str]:
        if level != "user":
            return {i: f"group_id:{i}" for i in ids}
        rows = identities.filter(pl.col("profile_id").is_in(ids)).with_columns(
            pl.col("id_type").replace_strict(rank, default=len(rank)).alias("rank")
        )
        best = rows.sort("profile_id", "rank", "id_value").unique("profile_id", keep="first")
        return {p: f"{t}:{v}" for p, t, v in best.select("profile_id", "id_type", "id_value")
                .iter_rows()}  # fmt: skip

    return label


def edit_impact(
    definitions_dir: str | Path,
    warehouse: str | Path,
    keys: Sequence[str] = (),
    *,
    sample: int = 5,
) -> ImpactReport:
    """What the definitions on disk would change against the warehouse's last run.

    Args:
        definitions_dir: The (edited) definitions folder.
        warehouse: A folder `compute` (or the Dagster pipeline) wrote.
        keys: Audience or computed trait keys; the report covers them and every audience that
            depends on them. Empty: every audience on disk and every one the last run had.
        sample: How many entering and exiting entities to list per audience.

    Raises:
        DefinitionsError: invalid definitions, or a key that is neither on disk nor in the run.
        ValueError: a negative ``sample``.
        FileNotFoundError: no computed warehouse, or its last run kept no inputs.
    """
    from audience_pipeline.service import compute_tables  # the same engine call as `compute`

    if sample < 0:
        msg = f"--sample: a count of entities to list, 0 or more (got {sample})"
        raise ValueError(msg)

    definitions, issues = load_definitions(str(definitions_dir))
    if issues:
        raise DefinitionsError(issues)
    last = read_last_run(warehouse)
    ir_definitions, result = compute_tables(last.inputs, definitions_dir, last.as_of)
    space = _space(definitions_dir, last.as_of)
    on_disk = {a.key: a.level for a in definitions.audiences}
    before = dict(last.memberships.select("audience_key", "level").unique().iter_rows())
    known = set(on_disk) | set(before) | {t.key for t in definitions.traits}
    unknown = [k for k in keys if k not in known]
    if unknown:
        where = str(Path(definitions_dir))
        raise DefinitionsError([Issue(where, k, None, "no audience or computed trait has this key",
                                      k) for k in unknown])  # fmt: skip
    wanted = dependents(space, keys) if keys else set(on_disk) | set(before)
    order = [*on_disk, *sorted(set(before) - set(on_disk))]
    audiences = [
        (key, on_disk.get(key) or before[key],
         "new" if key not in before else "deleted" if key not in on_disk else "existing")
        for key in order if key in wanted
    ]  # fmt: skip
    priority = [spec.type for spec in ir_definitions.space.identifiers]
    impacts = compare_memberships(
        last.memberships, result.memberships, audiences, sample=sample,
        now_labels=labeler(last.identities, priority),
        after_labels=labeler(result.identities, priority),
    )  # fmt: skip
    return ImpactReport(last.as_of, impacts, list(keys))


def _space(definitions_dir: str | Path, as_of: datetime) -> Space:
    from audience_pipeline.spec.compile import load_space_ir

    return load_space_ir(str(definitions_dir), as_of)[1]


__all__ = ["ImpactReport", "dependents", "edit_impact", "labeler"]
