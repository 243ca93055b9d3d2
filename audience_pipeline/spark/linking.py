"""SPEC's identity rule over the components where a limit bites, one Spark task per component.

The script's loop (`sql.script.identity`) links the next message of every such component per
round; on Spark each round is a few jobs, so instead every component's steps (``ap_sq_steps``:
comp, step, pos, node, trank) go to one task (grouped by component) that runs the same
rule in plain Python and returns the script's ``ap_sq_owner`` rows (comp, node, trank, prof):
a profile is known by the step that created it, a merge keeps the earlier one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

OWNER_SCHEMA = "comp long, node long, trank long, prof long"


def link_component(steps: Iterable[tuple[int, int, int, int]],
                   limits: Mapping[int, int]) -> list[tuple[int, int, int]]:  # fmt: skip
    """(step, pos, node, trank) rows of one component -> (node, trank, prof) of linked nodes."""
    by_step: dict[int, list[tuple[int, int, int]]] = {}
    for step, pos, node, trank in steps:
        by_step.setdefault(step, []).append((pos, node, trank))
    owner: dict[int, int] = {}
    parent: dict[int, int] = {}
    counts: dict[int, dict[int, int]] = {}
    types: dict[int, int] = {}

    def find(p: int) -> int:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for step in sorted(by_step):
        ids = [(node, trank) for _, node, trank in sorted(by_step[step])]
        first, first_type = ids[0]
        types[first] = first_type
        if first in owner:
            p = find(owner[first])
        else:
            p = parent[step] = step
            counts[p] = {first_type: 1}
            owner[first] = p
        for node, trank in ids[1:]:
            types[node] = trank
            if node not in owner:
                n = counts[p].get(trank, 0) + 1
                if n <= limits[trank]:
                    counts[p][trank] = n
                    owner[node] = p
                continue
            q = find(owner[node])
            if q == p:
                continue
            merged = dict(counts[p])
            for t, n in counts[q].items():
                merged[t] = merged.get(t, 0) + n
            if any(n > limits[t] for t, n in merged.items()):
                continue
            keep, gone = min(p, q), max(p, q)
            parent[gone] = keep
            counts[keep], counts[gone] = merged, {}
            p = keep
    return [(node, types[node], find(prof)) for node, prof in owner.items()]


def owners_on_spark(spark: Any, limits: Mapping[int, int], steps_table: str = "ap_sq_steps") -> Any:
    """The owner rows of every component of `steps_table`, one task per component (rows grouped
    by component with the RDD API: no pandas needed on the workers)."""
    limit_of = dict(limits)
    steps = spark.table(steps_table).selectExpr(
        "CAST(comp AS LONG) AS comp", "CAST(step AS LONG) AS step", "CAST(pos AS LONG) AS pos",
        "CAST(node AS LONG) AS node", "CAST(trank AS LONG) AS trank",
    )  # fmt: skip
    owners = (
        steps.rdd.map(lambda r: (r.comp, (r.step, r.pos, r.node, r.trank)))
        .groupByKey()
        .flatMap(lambda kv: [(kv[0], *row) for row in link_component(kv[1], limit_of)])
    )
    return spark.createDataFrame(owners, OWNER_SCHEMA)
