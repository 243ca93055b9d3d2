"""A compiled space (IR) -> SQL for one dialect: the user level's CTEs, then the account level's."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.leaves import collect_leaves
from audience_pipeline.ir.naming import audience_column
from audience_pipeline.ir.walk import audience_refs, condition_exprs, iter_conditions, refs
from audience_pipeline.sql.dialects import SqlDialect, get_dialect
from audience_pipeline.sql.level import LevelBuilder, LevelInput
from audience_pipeline.sql.relations import ENTITY, Inputs, col, table, with_ctes


@dataclass
class SpaceSql:
    """The CTE chains of a space. `user_frame` / `account_frame` are None when not needed."""

    dialect: SqlDialect
    user_ctes: list[tuple[str, exp.Select]] = field(default_factory=list)
    account_ctes: list[tuple[str, exp.Select]] = field(default_factory=list)
    user_frame: str | None = None
    account_frame: str | None = None

    def level_query(self, level: ir.Level) -> exp.Select:
        """SELECT * from one level's frame (the account level reads `user_frame` as a table)."""
        ctes = self.user_ctes if level == "user" else self.account_ctes
        frame = self.user_frame if level == "user" else self.account_frame
        assert frame is not None
        return with_ctes(ctes, exp.select(exp.Star()).from_(table(frame)))

    def audience_query(self, audience: ir.Audience) -> exp.Select:
        """The members of one audience (entity_id), every CTE inlined."""
        frame = self.user_frame if audience.level == "user" else self.account_frame
        assert frame is not None
        ctes = list(self.user_ctes) if self.user_frame else []
        if audience.level == "account":
            ctes += self.account_ctes
        final = (
            exp.select(col(ENTITY))
            .from_(table(frame))
            .where(col(audience_column(audience.key)))
            .order_by(col(ENTITY))
        )
        return with_ctes(ctes, final)


def build_space_sql(
    space: ir.Space,
    dialect: str | SqlDialect,
    *,
    inputs: Inputs | None = None,
    flat_columns: set[str] | None = None,
) -> SpaceSql:
    """Build the SQL of every trait and audience of `space`.

    Args:
        space: computed traits and audiences (audiences in dependency order).
        dialect: duckdb, postgres, snowflake, bigquery or spark.
        inputs: names of the input relations (see `audience_pipeline.sql.relations`).
        flat_columns: stored flat path columns of the events relation (``p.price``) to read
            instead of a JSON lookup.

    Returns:
        The CTE chains; the as-of is the named parameter ``as_of`` (see `bind_as_of`).
    """
    d = get_dialect(dialect)
    inputs = inputs or Inputs()
    leaves = collect_leaves(space)
    result = SpaceSql(d)
    users_nodes = leaves.of("account", ir.UsersCond)
    user_audiences = [a for a in space.audiences if a.level == "user"]
    account_audiences = [a for a in space.audiences if a.level == "account"]
    user_condition_columns = {node: f"_uc{i}" for i, node in enumerate(users_nodes)}
    if user_audiences or users_nodes or any(t.level == "user" for t in space.traits):
        spec = LevelInput(
            level="user",
            traits=[t for t in space.traits if t.level == "user"],
            conditions=leaves.of("user", ir.EventCond),  # type: ignore[arg-type]
            funnels=leaves.of("user", ir.Funnel),  # type: ignore[arg-type]
            users={},
            audiences=user_audiences,
            user_condition_columns=user_condition_columns,  # type: ignore[arg-type]
            samples=leaves.of("user", ir.Sample),  # type: ignore[arg-type]
        )
        builder = LevelBuilder(d, spec, inputs, "u_", flat_columns)
        result.user_frame = builder.build()
        result.user_ctes = builder.ctes
    if account_audiences or any(t.level == "account" for t in space.traits):
        spec = LevelInput(
            level="account",
            traits=[t for t in space.traits if t.level == "account"],
            conditions=leaves.of("account", ir.EventCond),  # type: ignore[arg-type]
            funnels=leaves.of("account", ir.Funnel),  # type: ignore[arg-type]
            users=users_nodes,  # type: ignore[arg-type]
            audiences=account_audiences,
            user_frame=result.user_frame,
            user_condition_columns=user_condition_columns,  # type: ignore[arg-type]
            samples=leaves.of("account", ir.Sample),  # type: ignore[arg-type]
        )
        builder = LevelBuilder(d, spec, inputs, "a_", flat_columns)
        result.account_frame = builder.build()
        result.account_ctes = builder.ctes
    return result


def subspace(space: ir.Space, key: str) -> tuple[ir.Space, ir.Audience]:
    """The audience `key`, the audiences it names (transitively) and the traits they read."""
    by_key = {a.key: a for a in space.audiences}
    if key not in by_key:
        msg = f"unknown audience {key!r}; known: {', '.join(sorted(by_key)) or 'none'}"
        raise ValueError(msg)
    needed = {key}
    pending = [key]
    while pending:
        for ref in audience_refs(by_key[pending.pop()].condition):
            if ref not in needed:
                needed.add(ref)
                pending.append(ref)
    audiences = tuple(a for a in space.audiences if a.key in needed)
    trait_keys: set[str] = set()
    for audience in audiences:
        for node in iter_conditions(audience.condition):
            for expr in condition_exprs(node):
                trait_keys |= {r.path[0] for r in refs(expr) if r.scope == "trait"}
    traits = tuple(t for t in space.traits if t.key in trait_keys)
    return ir.Space(traits=traits, audiences=audiences), by_key[key]


def audiences_sql(space: ir.Space, dialect: str) -> dict[str, str]:
    """`audience_sql` for every audience of a compiled space."""
    result = {}
    for audience in space.audiences:
        sub, chosen = subspace(space, audience.key)
        compiled = build_space_sql(sub, dialect)
        result[audience.key] = compiled.dialect.render(compiled.audience_query(chosen))
    return result


def audience_sql(space: ir.Space, key: str, dialect: str, *, inputs: Inputs | None = None) -> str:
    """Readable SQL listing the members (entity_id) of one audience of a compiled space.

    Args:
        space: the compiled space (`spec.compile.load_space_ir`; its as-of only sets the
            `created_at` defaults of `backfill: false` audiences: the query itself takes the
            as-of as the named parameter ``as_of``).
        key: the audience key.
        dialect: duckdb, postgres, snowflake, bigquery or spark.
        inputs: names of the input relations.

    Returns:
        Pretty SQL text for the dialect.
    """
    sub, audience = subspace(space, key)
    compiled = build_space_sql(sub, dialect, inputs=inputs)
    return compiled.dialect.render(compiled.audience_query(audience))
