"""A level's CTE chain run one step at a time: each CTE becomes a temporary table, dropped after
its last reader (DuckDB).

DuckDB keeps a CTE that several steps read as an uncompressed in-memory result; at millions of
events the widest ones (every event with its typed path columns) outgrow a memory limit, and
spilling them while a dozen readers scan them costs more than the query. A temporary table is
stored compressed and spills by blocks; the answer is the same (the chain has no recursive or
correlated CTE, and every window in it orders by a unique key).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from audience_pipeline.sql.statements import create_as, relation

STEP_PREFIX = "_step_"


def chain_steps(query: exp.Expr) -> tuple[list[tuple[str, exp.Expr]], exp.Expr]:
    """The CTEs of `query` as (table name, body) in order, and the final SELECT; every reference
    to a CTE reads its table instead (aliased to the CTE's name, so qualified columns resolve)."""
    with_ = query.args.get("with_")
    if with_ is None:
        return [], query
    names = {cte.alias_or_name: STEP_PREFIX + cte.alias_or_name for cte in with_.expressions}

    def to_table(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table) and not node.args.get("db") and node.name in names:
            renamed = relation(names[node.name])
            renamed.set(
                "alias", node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(node.name))
            )
            return renamed
        return node

    steps = [(names[cte.alias_or_name], cte.this.transform(to_table)) for cte in with_.expressions]
    final = query.copy()
    final.set("with_", None)
    return steps, final.transform(to_table)


def run_in_steps(execute: Callable[[exp.Expr], None], query: exp.Expr, target: str) -> None:
    """CREATE TEMPORARY TABLE "target" AS `query`, one CTE at a time (see the module)."""
    steps, final = chain_steps(query)
    bodies = [body for _, body in steps] + [final]
    step_names = {name for name, _ in steps}
    last_read: dict[str, int] = {}
    for index, body in enumerate(bodies):
        for table in body.find_all(exp.Table):
            if table.name in step_names:
                last_read[table.name] = index
    for index, (name, body) in enumerate(steps):
        execute(create_as(name, body))
        for done in sorted(n for n, last in last_read.items() if last == index):
            execute(_drop(done))
    execute(create_as(target, final))
    for name in sorted(n for n, last in last_read.items() if last == len(steps)):
        execute(_drop(name))


def _drop(name: str) -> exp.Drop:
    return exp.Drop(tables=[relation(name)], kind="TABLE", exists=True)
