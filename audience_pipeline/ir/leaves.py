"""Names of the leaves a backend precomputes per entity: event conditions, funnels, `users:`
and `sample` nodes, at the level where each one runs (a shared IR pass)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.walk import condition_children


@dataclass
class NodeColumns:
    """Column names of the precomputed leaves (event conditions, funnels, users:) per level."""

    by_level: dict[str, dict[ir.Condition, str]] = field(
        default_factory=lambda: {"user": {}, "account": {}}
    )

    def name(self, level: str, node: ir.Condition) -> str:
        table = self.by_level[level]
        if node not in table:
            prefix = {ir.EventCond: "e", ir.Funnel: "f", ir.UsersCond: "u", ir.Sample: "s"}[
                type(node)
            ]
            table[node] = f"_{prefix}{level[0]}{len(table)}"
        return table[node]

    def of(self, level: str, kind: type) -> dict[ir.Condition, str]:
        return {n: c for n, c in self.by_level[level].items() if isinstance(n, kind)}


def collect_leaves(space: ir.Space) -> NodeColumns:
    """Name every event condition, funnel and users: node, at the level where it runs."""
    columns = NodeColumns()
    for audience in space.audiences:
        for node, level in _walk(audience.condition, audience.level):
            if isinstance(node, ir.EventCond | ir.Funnel | ir.UsersCond | ir.Sample):
                columns.name(level, node)
    return columns


def _walk(node: ir.Condition, level: str) -> Iterator[tuple[ir.Condition, str]]:
    yield node, level
    inner_level = "user" if isinstance(node, ir.UsersCond) else level
    for child in condition_children(node):
        yield from _walk(child, inner_level)
