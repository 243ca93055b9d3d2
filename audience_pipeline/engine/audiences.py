"""Audience conditions -> boolean Polars expressions over one level's entity frame.

Event conditions, funnels and `users:` nodes are precomputed as boolean columns (see
`engine.level`); here the tree is folded: `all`/`any`/`not` are two-valued, `traits` SQL is
three-valued inside and TRUE-only outside.
"""

from __future__ import annotations

from typing import assert_never

import polars as pl

from audience_pipeline.engine.expressions import compile_predicate
from audience_pipeline.engine.traitvalues import TraitColumns
from audience_pipeline.engine.typed import Typed
from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.leaves import NodeColumns, collect_leaves  # noqa: F401 (moved, re-exported)
from audience_pipeline.ir.naming import audience_column


def condition_expr(
    node: ir.Condition, level: str, leaves: NodeColumns, traits: TraitColumns
) -> pl.Expr:
    """A non-null boolean expression: does the entity satisfy the condition?"""
    match node:
        case ir.AllOf(children=children):
            if not children:
                return pl.lit(True)
            return pl.all_horizontal([condition_expr(c, level, leaves, traits) for c in children])
        case ir.AnyOf(children=children):
            if not children:
                return pl.lit(False)
            return pl.any_horizontal([condition_expr(c, level, leaves, traits) for c in children])
        case ir.NotC(child=child):
            return ~condition_expr(child, level, leaves, traits)
        case ir.AtLeast(count=count, children=children):
            held = [condition_expr(c, level, leaves, traits).cast(pl.Int32) for c in children]
            return pl.sum_horizontal(held) >= count if held else pl.lit(count <= 0)
        case ir.Behaviour(body=body):
            return condition_expr(body, level, leaves, traits)
        case ir.AudienceRef(key=key):
            return pl.col(audience_column(key))
        case ir.TraitsCond(expr=expr):

            def resolve(ref: ir.Expr) -> Typed:
                assert isinstance(ref, ir.Ref)
                return traits.typed(ref.path)

            return compile_predicate(expr, resolve)
        case ir.EventCond() | ir.Funnel() | ir.UsersCond() | ir.Sample():
            return pl.col(leaves.name(level, node))
    assert_never(node)
