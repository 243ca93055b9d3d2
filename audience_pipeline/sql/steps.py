"""A level's CTE chain run in steps (DuckDB): each CTE becomes a temporary table, dropped after
its last reader (`TABLE_READERS` can keep single-reader CTEs as CTEs of their reader instead).

DuckDB keeps a CTE that several steps read as one uncompressed in-memory result; at millions of
events the widest (every event with its typed path columns, read by a dozen steps) outgrows a
memory limit, and spilling it while its readers scan it costs more than the query (63 GB written
in 9 minutes at 10M events under 3 GiB). A temporary table is stored compressed and spills by
block. The answer is the same: the chain has no recursive or correlated CTE, and every window in
it orders by a unique key.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from audience_pipeline.sql.buckets import create_in_buckets, split_source
from audience_pipeline.sql.statements import create_as, relation

STEP_PREFIX = "_step_"
# A CTE with at least this many readers becomes a table; the others stay CTEs of their one
# reader. 1 (every CTE that is read is a table): at 300k events the chain then runs under a
# 300 MiB limit, while with 2 DuckDB's longer pipelines ran out of memory even at 400 MiB (it
# cannot spill every operator's state), and it was no faster with memory to spare.
TABLE_READERS = 1


def _readers(ctes: list[tuple[str, exp.Expr]], final: exp.Expr) -> dict[str, list[int]]:
    """For each CTE, the indexes of the bodies reading it (len(ctes) is the final SELECT)."""
    names = {name for name, _ in ctes}
    found: dict[str, list[int]] = {name: [] for name in names}
    for index, body in enumerate([*[b for _, b in ctes], final]):
        for name in {t.name for t in body.find_all(exp.Table) if t.name in names}:
            found[name].append(index)
    return found


def chain_steps(query: exp.Expr) -> tuple[list[tuple[str, exp.Expr]], exp.Expr, dict[str, int]]:
    """The statements of `query`'s chain: (table name, body) of each shared CTE in order, the
    final SELECT, and the index of each table's last reader (len(steps) for the final SELECT).
    Shared CTEs are read as tables (aliased to the CTE's name, so qualified columns resolve);
    each body carries the single-reader CTEs it needs as its own WITH."""
    with_ = query.args.get("with_")
    if with_ is None:
        return [], query, {}
    final = query.copy()
    final.set("with_", None)
    chain = _Chain([(cte.alias_or_name, cte.this) for cte in with_.expressions], final)
    steps = [(chain.shared[name], chain.with_inlined(chain.bodies[name])) for name in chain.steps]
    last_read = {}
    for name in chain.steps:
        runs = [run for run in map(chain.statement_of, chain.readers[name]) if run is not None]
        last_read[chain.shared[name]] = max(runs, default=len(chain.steps))
    return steps, chain.with_inlined(final.transform(chain.to_table)), last_read


class _Chain:
    """A query's CTEs: which are shared (tables of their own), and each body with shared CTEs
    read as tables."""

    def __init__(self, ctes: list[tuple[str, exp.Expr]], final: exp.Expr) -> None:
        self.ctes = ctes
        self.readers = _readers(ctes, final)
        self.shared = {name: STEP_PREFIX + name for name, _ in ctes
                       if len(self.readers[name]) >= TABLE_READERS}  # fmt: skip
        self.bodies = {name: body.transform(self.to_table) for name, body in ctes}
        self.inline = {name for name, _ in ctes if name not in self.shared and self.readers[name]}
        self.order = [name for name, _ in ctes]
        self.steps = [name for name, _ in ctes if name in self.shared]
        self.step_index = {name: index for index, name in enumerate(self.steps)}

    def to_table(self, node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table) and not node.args.get("db") and node.name in self.shared:
            renamed = relation(self.shared[node.name])
            alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(node.name))
            renamed.set("alias", alias)
            return renamed
        return node

    def with_inlined(self, body: exp.Expr) -> exp.Expr:
        """`body` with the single-reader CTEs it reads (transitively) as its own WITH."""
        needed: set[str] = set()
        pending = [body]
        while pending:
            for table in pending.pop().find_all(exp.Table):
                if table.name in self.inline and table.name not in needed:
                    needed.add(table.name)
                    pending.append(self.bodies[table.name])
        if not needed:
            return body
        chain = [exp.CTE(this=self.bodies[n].copy(), alias=exp.TableAlias(this=exp.to_identifier(n)))
                 for n in self.order if n in needed]  # fmt: skip
        body = body.copy()
        body.set("with_", exp.With(expressions=chain))
        return body

    def statement_of(self, index: int) -> int | None:
        """The statement that runs body `index`: its own if a table, else its reader's; None
        for a CTE nothing reads (never run)."""
        while index < len(self.ctes):
            name = self.ctes[index][0]
            if name in self.step_index:
                return self.step_index[name]
            if not self.readers[name]:
                return None
            index = self.readers[name][0]
        return len(self.steps)


def run_in_steps(
    execute: Callable[[exp.Expr], None],
    query: exp.Expr,
    target: str,
    buckets: Callable[[str], int] | None = None,
) -> None:
    """CREATE TEMPORARY TABLE "target" AS `query`, in steps (see the module).

    `buckets`: how many entity-hash buckets a step grouping a table by entity runs in, given the
    table's name (`sql.buckets`); None: every step at once."""
    steps, final, last_read = chain_steps(query)
    for index, (name, body) in enumerate(steps):
        source = split_source(body) if buckets is not None else None
        count = buckets(source) if buckets is not None and source is not None else 1
        if count > 1:
            create_in_buckets(execute, name, body, count)  # type: ignore[arg-type]
        else:
            execute(create_as(name, body))
        for done in sorted(n for n, last in last_read.items() if last == index):
            execute(_drop(done))
    execute(create_as(target, final))
    for name in sorted(n for n, last in last_read.items() if last == len(steps)):
        execute(_drop(name))


def _drop(name: str) -> exp.Drop:
    return exp.Drop(tables=[relation(name)], kind="TABLE", exists=True)
