"""What each audience names, for Dagster's lineage: read from the IR (`ir.walk`), the same
references the engines evaluate, not searched for in the YAML text."""

from __future__ import annotations

from datetime import UTC, datetime

from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.walk import audience_refs, condition_exprs, iter_conditions, refs
from audience_pipeline.spec.compile import compile_space
from audience_pipeline.spec.models import Definitions

# Per audience key: the computed traits it reads, the audiences it names (each sorted).
References = dict[str, tuple[tuple[str, ...], tuple[str, ...]]]


def audience_references(definitions: Definitions) -> References:
    """The computed traits and audiences each audience's condition names, wherever they stand:
    inside `users:` nodes, funnels and section 7's nodes too (a SQL trait's `crm.plan` names
    `crm`). Custom (identify) traits are no asset and are left out.

    An audience that does not compile (its definitions fail validation; the engine run fails
    with the same issues) names nothing here."""
    # The as-of only places `backfill: false` cuts; it changes no reference.
    space, _ = compile_space(definitions, datetime.now(UTC))
    trait_keys = {t.key for t in definitions.traits}
    audience_keys = {a.key for a in definitions.audiences}
    out: References = {}
    for audience in space.audiences:
        traits = {k for k in _trait_names(audience.condition) if k in trait_keys}
        named = {k for k in audience_refs(audience.condition) if k in audience_keys}
        named.discard(audience.key)
        out[audience.key] = (tuple(sorted(traits)), tuple(sorted(named)))
    return out


def _trait_names(condition: ir.Condition) -> set[str]:
    """The first part of every trait reference under `condition` (a trait's key)."""
    return {
        ref.path[0]
        for node in iter_conditions(condition)
        for expr in condition_exprs(node)
        for ref in refs(expr)
        if ref.scope == "trait" and ref.path
    }


__all__ = ["References", "audience_references"]
