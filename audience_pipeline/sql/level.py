"""One level (users or accounts) as a chain of CTEs: events, traits, leaves, audiences.

The chain, with a prefix per level (``u_``/``a_``):

1. ``ev``: the level's events with one tagged column per referenced property/context path;
2. ``evr``: plus the readings of those columns (number, text, ...) computed once, and the custom
   traits a `where` names;
3. ``evm``: plus one boolean per distinct (events, where, window, since) mask;
4. ``agg``: one fused GROUP BY with every computed trait and event condition as conditional
   aggregates; ``fl*`` / ``mf*``: first/last and most_frequent, which need ranking;
5. ``traits``: every entity with its computed and custom traits (empty results filled);
6. a second ``evt``/``evtm``/``agg2`` pass for event conditions and funnels whose `where` names a
   computed trait; ``f*`` funnels; ``users*`` (accounts);
7. ``base``: every leaf as a boolean column; ``frame``: plus one boolean per audience.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

from sqlglot import exp

from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.naming import STORAGE_BY_KIND, audience_column, computed_column
from audience_pipeline.ir.walk import aggs, condition_children, refs
from audience_pipeline.sql.dialects import SqlDialect
from audience_pipeline.sql.expressions import compile_predicate
from audience_pipeline.sql.funnels import funnel_ctes
from audience_pipeline.sql.relations import (
    ENTITY,
    Inputs,
    alias,
    as_of_param,
    coalesce,
    col,
    count_if,
    eq,
    seconds,
    star,
    table,
)
from audience_pipeline.sql.samples import (
    account_anchor_select,
    anchor_select,
    buckets_select,
    sample_holds,
)
from audience_pipeline.sql.scores import raw_aggregate, score_from_raw
from audience_pipeline.sql.typed import (
    CachedValue,
    NullValue,
    NumberValue,
    OtherValue,
    TaggedValue,
    TextValue,
    Typed,
    case,
)

KNOWN = "_known"


@dataclass
class LevelInput:
    """What one level computes."""

    level: ir.Level
    traits: list[ir.Trait]
    conditions: dict[ir.EventCond, str]
    funnels: dict[ir.Funnel, str]
    users: dict[ir.UsersCond, str]
    audiences: list[ir.Audience]
    user_frame: str | None = None  # the user level's frame relation (for `users:`)
    user_condition_columns: dict[ir.UsersCond, str] = field(default_factory=dict)
    samples: dict[ir.Sample, str] = field(default_factory=dict)


@dataclass
class Columns:
    """Names of the columns the chain materializes."""

    paths: dict[tuple[str, str], str] = field(default_factory=dict)  # (source, key) -> column
    readings: dict[tuple[str, str], tuple[str, exp.Expr]] = field(default_factory=dict)
    custom: dict[str, str] = field(default_factory=dict)  # dotted custom key -> column
    nested: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)

    def path(self, scope: str, path: tuple[str, ...]) -> str:
        source = "context" if scope in ("context", "parent_context") else "properties"
        key = (source, ".".join(path))
        if key not in self.paths:
            self.paths[key] = f"_{'c' if source == 'context' else 'p'}{len(self.paths)}"
        return self.paths[key]

    def register(self, column: str, reading: str, expr: exp.Expr) -> str:
        key = (column, reading)
        if key not in self.readings:
            self.readings[key] = (f"{column}_{reading}", expr)
        return self.readings[key][0]

    def custom_column(self, dotted: str) -> str:
        if dotted not in self.custom:
            self.custom[dotted] = f"_ct{len(self.custom)}"
        return self.custom[dotted]


@dataclass
class LevelTraits:
    """How a `trait.k` / traits-condition name reads the level's traits in some relation."""

    dialect: SqlDialect
    computed: dict[str, ir.Trait]
    columns: Columns

    def typed(self, path: tuple[str, ...], table_name: str | None, *,
              custom_only: bool = False) -> Typed:  # fmt: skip
        d = self.dialect
        key, rest = path[0], path[1:]
        if not custom_only and key in self.computed:
            trait = self.computed[key]
            storage = STORAGE_BY_KIND[trait.kind]
            column = col(computed_column(key), table_name)
            if rest:
                if storage == "tagged":
                    return TaggedValue(d, col(self.columns.nested[(key, rest)], table_name))
                return NullValue(d)
            if storage == "number":
                return NumberValue(d, column)
            if storage == "text":
                return TextValue(d, column)
            if storage == "list":
                return OtherValue(d, column)
            return TaggedValue(d, column)
        return TaggedValue(d, col(self.columns.custom_column(".".join(path)), table_name))


def trait_refs(expr: ir.Expr | None) -> list[ir.Ref]:
    return [r for r in refs(expr) if r.scope == "trait"]


class LevelBuilder:
    """Builds the CTE chain of one level."""

    def __init__(self, dialect: SqlDialect, spec: LevelInput, inputs: Inputs, prefix: str,
                 flat_columns: set[str] | None = None) -> None:  # fmt: skip
        self.d = dialect
        self.spec = spec
        self.inputs = inputs
        self.prefix = prefix
        self.flat_columns = flat_columns or set()
        self.columns = Columns()
        self.traits = LevelTraits(dialect, {t.key: t for t in spec.traits}, self.columns)
        self.ctes: list[tuple[str, exp.Select]] = []
        self.counter = 0
        self.first_outputs: set[str] = set()  # aggregates of the first pass (in `traits`)

    def name(self, stem: str) -> str:
        return self.prefix + stem

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"_{stem}{self.counter}"

    # --- masks --------------------------------------------------------------------------------

    def window(self, ts: exp.Expr, window: ir.Window | None,
               since: datetime | None) -> list[exp.Expr]:  # fmt: skip
        parts: list[exp.Expr] = [exp.LTE(this=ts.copy(), expression=as_of_param())]
        if window is not None:
            if window.lower is not None:
                lower = exp.Sub(this=as_of_param(), expression=seconds(window.lower))
                parts.append(exp.GT(this=ts.copy(), expression=lower))
            if window.upper:
                upper = exp.Sub(this=as_of_param(), expression=seconds(window.upper))
                parts.append(exp.LTE(this=ts.copy(), expression=upper))
        if since is not None:
            parts.append(exp.GTE(this=ts.copy(), expression=self.d.timestamp(since.isoformat())))
        return parts

    def names_in(self, event: exp.Expr, events: tuple[str, ...]) -> exp.Expr:
        if not events:  # a score trait without `event`: every track, page and screen event
            return exp.true()
        if len(events) == 1:
            return eq(event, exp.Literal.string(events[0]))
        return exp.In(this=event, expressions=[exp.Literal.string(e) for e in events])

    def event_resolver(self, table_name: str | None, *,
                       custom_only: bool = False) -> Callable[[ir.Expr], Typed]:  # fmt: skip
        def resolve(node: ir.Expr) -> Typed:
            assert isinstance(node, ir.Ref)
            if node.scope == "trait":
                return self.traits.typed(node.path, table_name, custom_only=custom_only)
            column = self.columns.path(node.scope, node.path)
            return CachedValue(self.d, table_name, column, self.columns.register)

        return resolve

    # --- the chain ----------------------------------------------------------------------------

    def build(self) -> str:
        """Append every CTE; returns the name of the frame relation."""
        spec = self.spec
        self._scan_refs()
        first_pass, second_pass = self._split_conditions()
        funnel_traits = any(
            r.path[0] in self.traits.computed
            for f in spec.funnels for s in f.steps for r in trait_refs(s.where)
        )  # fmt: skip
        # Compile every mask, aggregate and funnel first: the paths and readings they register
        # are the columns of the first CTEs.
        stage = _AggStage(self, "evr", "agg")
        for trait in spec.traits:
            stage.add_trait(trait)
        for cond, out in first_pass.items():
            stage.add_condition(cond, out)
        stage2 = _AggStage(self, "evt", "agg2")
        for cond, out in second_pass.items():
            stage2.add_condition(cond, out)
        needs_traits = bool(second_pass) or funnel_traits
        funnel_source = self.name("evt") if needs_traits else self.name("evr")
        funnel_names: dict[str, str] = {}
        funnels: list[tuple[str, exp.Select]] = []
        for index, (funnel, out) in enumerate(spec.funnels.items()):
            relation = self.name(f"f{index}")
            funnels += funnel_ctes(self, funnel, funnel_source, relation)
            funnel_names[out] = relation

        self._events_ctes()
        stage.emit("evm")
        self._traits_cte(stage)
        if needs_traits:
            # evr has the custom trait columns already: a second copy is ambiguous in PostgreSQL.
            custom = set(self.columns.custom.values())
            names = [c for c in self._trait_column_names() if c not in custom]
            self.ctes.append((self.name("evt"), _evt_select(
                self.name("evr"), self.name("traits"), names)))  # fmt: skip
        if second_pass:
            stage2.emit("evtm")
        self.ctes += funnels
        users_names = self._users_ctes()
        self._sample_ctes()
        self._base_cte(stage.having + stage2.having, bool(second_pass), funnel_names,
                       users_names)  # fmt: skip
        return self._frame_cte()

    def _scan_refs(self) -> None:
        """Register nested picks of first/last traits (`trait.k.x`) before the traits pass."""
        spec = self.spec
        exprs: list[ir.Expr | None] = [c.where for c in spec.conditions]
        exprs += [s.where for f in spec.funnels for s in f.steps]
        for audience in spec.audiences:
            exprs += _traits_exprs(audience.condition)
        if spec.level == "user":
            for node in spec.user_condition_columns:
                exprs += _traits_exprs(node.condition)
        for ref in (r for e in exprs for r in trait_refs(e)):
            trait = self.traits.computed.get(ref.path[0])
            if trait is None:
                self.columns.custom_column(ref.dotted)
            if trait is None or len(ref.path) == 1:
                continue
            if STORAGE_BY_KIND[trait.kind] == "tagged":
                key = (ref.path[0], ref.path[1:])
                self.columns.nested.setdefault(key, f"_trn{len(self.columns.nested)}")
        for trait in spec.traits:  # `trait.k` in a computed trait's where: a custom trait
            for ref in trait_refs(trait.where):
                self.columns.custom_column(ref.dotted)

    def _split_conditions(self) -> tuple[dict[ir.EventCond, str], dict[ir.EventCond, str]]:
        first: dict[ir.EventCond, str] = {}
        second: dict[ir.EventCond, str] = {}
        for cond, out in self.spec.conditions.items():
            named = {r.path[0] for r in trait_refs(cond.where)}
            (second if named & set(self.traits.computed) else first)[cond] = out
        return first, second

    def _events_ctes(self) -> None:
        inputs, d = self.inputs, self.d
        ev = self.name("ev")
        columns = [
            alias(col("timestamp", "e"), "timestamp"),
            alias(col("message_id", "e"), "message_id"),
            alias(col("seq", "e"), "seq"),
            alias(col("event", "e"), "event"),
        ]
        for (source, key), name in self.columns.paths.items():
            flat = ("p." if source == "properties" else "c.") + key
            if flat in self.flat_columns:
                value: exp.Expr = exp.column(exp.to_identifier(flat, quoted=True), "e")
            else:
                value = d.json_text(col(source, "e"), key)
            columns.append(alias(value, name))
        if self.spec.level == "user":
            select = exp.select(alias(col("profile_id", "e"), ENTITY), *columns).from_(
                table(inputs.events, "e")
            )
        else:
            select = (
                exp.select(alias(col("account_id", "m"), ENTITY), *columns)
                .from_(table(inputs.events, "e"))
                .join(table(inputs.account_members, "m"),
                      on=eq(col("profile_id", "e"), col("profile_id", "m")))
            )  # fmt: skip
        select = select.where(exp.LTE(this=col("timestamp", "e"), expression=as_of_param()))
        self.ctes.append((ev, select))
        evr = exp.select(star("e")).from_(table(ev, "e"))
        readings: list[exp.Expr] = [
            alias(expr.copy(), name) for name, expr in self.columns.readings.values()
        ]
        if self.columns.custom:
            evr = evr.join(
                table(self.name("custom"), "ct"),
                on=eq(col(ENTITY, "e"), col(ENTITY, "ct")),
                join_type="left",
            )
            readings += [col(c, "ct") for c in self.columns.custom.values()]
            self.ctes.append((self.name("custom"), self._custom_select()))
        # Readings are defined over bare column names: qualify them with the events alias.
        evr = evr.select(*[_qualify(r, "e") for r in readings])
        self.ctes.append((self.name("evr"), evr))

    def _custom_select(self) -> exp.Select:
        source = (
            self.inputs.user_traits if self.spec.level == "user" else self.inputs.account_traits
        )
        owner = "profile_id" if self.spec.level == "user" else "account_id"
        pivots = [
            alias(exp.Max(this=case((eq(col("key"), exp.Literal.string(key)), col("tagged")))),
                  name)
            for key, name in self.columns.custom.items()
        ]  # fmt: skip
        return (
            exp.select(alias(col(owner), ENTITY), *pivots)
            .from_(table(source))
            .where(exp.In(this=col("key"),
                          expressions=[exp.Literal.string(k) for k in self.columns.custom]))
            .group_by(col(owner))
        )  # fmt: skip

    def _trait_column_names(self) -> list[str]:
        names = [computed_column(t.key) for t in self.spec.traits]
        names += list(self.columns.nested.values())
        return names + list(self.columns.custom.values())

    def _entities(self) -> exp.Select:
        if self.spec.level == "user":
            return exp.select(alias(col("profile_id"), ENTITY), alias(col("known"), KNOWN)).from_(
                table(self.inputs.profiles)
            )
        return exp.select(alias(col("account_id"), ENTITY)).from_(table(self.inputs.accounts))

    def _traits_cte(self, stage: _AggStage) -> None:
        d = self.d
        entities = self.name("entities")
        self.ctes.append((entities, self._entities()))
        select = exp.select(col(ENTITY, "n")).from_(table(entities, "n"))
        if self.spec.level == "user":
            select = select.select(col(KNOWN, "n"))
        joined: list[tuple[str, str]] = [(self.name("agg"), "g")]
        joined += [(rel, f"fl{i}") for i, rel in enumerate(stage.first_last_relations)]
        joined += [(rel, f"mf{i}") for i, rel in enumerate(stage.most_frequent_relations)]
        if self.columns.custom:
            joined.append((self.name("custom"), "ct"))
        for relation, short in joined:
            select = select.join(
                table(relation, short),
                on=eq(col(ENTITY, "n"), col(ENTITY, short)),
                join_type="left",
            )
        for name, (short_stage, fill) in stage.outputs_with_fill().items():
            value = col(name, short_stage)
            if name in stage.scores:
                select = select.select(alias(score_from_raw(d, value), name))
            elif fill == "list":
                select = select.select(alias(coalesce(value, d.empty_list()), name))
            elif isinstance(fill, exp.Expr):
                select = select.select(alias(coalesce(value, fill), name))
            else:
                select = select.select(alias(value, name))
        select = select.select(*[col(c, "ct") for c in self.columns.custom.values()])
        self.ctes.append((self.name("traits"), select))

    def _users_ctes(self) -> dict[str, str]:
        names: dict[str, str] = {}
        spec = self.spec
        for index, (node, out) in enumerate(spec.users.items()):
            assert spec.user_frame is not None
            holds = coalesce(col(spec.user_condition_columns[node], "uf"), exp.false())
            flag = case((holds, exp.Literal.number(1)), default=exp.Literal.number(0))
            select = (
                exp.select(alias(col("account_id", "m"), ENTITY),
                           alias(exp.Max(this=flag), "_any"),
                           alias(exp.Min(this=flag.copy()), "_all"))
                .from_(table(self.inputs.account_members, "m"))
                .join(table(spec.user_frame, "uf"),
                      on=eq(col("profile_id", "m"), col(ENTITY, "uf")), join_type="left")
                .group_by(col("account_id", "m"))
            )  # fmt: skip
            relation = self.name(f"users{index}")
            self.ctes.append((relation, select))
            names[out] = relation
        return names

    def _salts(self) -> dict[str, str]:
        salts: dict[str, str] = {}
        for node in self.spec.samples:
            salts.setdefault(node.salt, f"_sb{len(salts)}")
        return salts

    def _sample_ctes(self) -> None:
        """Anchors and one bucket per salt, when the level has sample nodes."""
        if not self.spec.samples:
            return
        anchors = self.name("anchors")
        if self.spec.level == "user":
            id_types = next(iter(self.spec.samples)).id_types
            self.ctes.append((anchors, anchor_select(self.d, self.inputs.identities, id_types)))
        else:
            self.ctes.append((anchors, account_anchor_select(self.name("entities"))))
        self.ctes.append((self.name("buckets"), buckets_select(self.d, anchors, self._salts())))

    def _base_cte(self, having: list[tuple[str, ir.EventCond, dict[ir.Agg, str]]],
                  second: bool, funnels: dict[str, str], users: dict[str, str]) -> None:  # fmt: skip
        select = exp.select(star("t")).from_(table(self.name("traits"), "t"))
        if second:
            select = select.join(
                table(self.name("agg2"), "g2"),
                on=eq(col(ENTITY, "t"), col(ENTITY, "g2")),
                join_type="left",
            )
        tables = {self.name("agg"): "t", self.name("agg2"): "g2"}
        for out, condition, agg_columns in having:
            select = select.select(alias(self._having(condition, agg_columns, tables), out))
        for index, (out, relation) in enumerate(funnels.items()):
            short = f"fu{index}"
            select = select.join(
                table(relation, short),
                on=eq(col(ENTITY, "t"), col(ENTITY, short)),
                join_type="left",
            )
            present = exp.not_(exp.Is(this=col(ENTITY, short), expression=exp.null()))
            select = select.select(alias(present, out))
        for index, (out, relation) in enumerate(users.items()):
            short = f"us{index}"
            select = select.join(
                table(relation, short),
                on=eq(col(ENTITY, "t"), col(ENTITY, short)),
                join_type="left",
            )
            node = next(n for n, c in self.spec.users.items() if c == out)
            one = exp.Literal.number(1)
            any_ = eq(coalesce(col("_any", short), exp.Literal.number(0)), one)
            all_ = eq(coalesce(col("_all", short), exp.Literal.number(0)), one.copy())
            value = {"any": any_, "all": all_, "none": exp.not_(any_.copy())}[node.mode]
            select = select.select(alias(value, out))
        if self.spec.samples:
            select = select.join(table(self.name("buckets"), "sb"),
                                 on=eq(col(ENTITY, "t"), col(ENTITY, "sb")), join_type="left")  # fmt: skip
            salts = self._salts()
            for sample, out in self.spec.samples.items():
                holds = sample_holds(sample, col(salts[sample.salt], "sb"))
                select = select.select(alias(holds, out))
        self.ctes.append((self.name("base"), select))

    def _having(self, condition: ir.EventCond, agg_columns: dict[ir.Agg, str],
                tables: dict[str, str]) -> exp.Expr:  # fmt: skip
        def resolve(node: ir.Expr) -> Typed:
            assert isinstance(node, ir.Agg)
            name = agg_columns[node]
            relation = self.name("agg") if name in self.first_outputs else self.name("agg2")
            value: exp.Expr = col(name, tables[relation])
            if node.name in ("count_star", "count", "count_distinct", "sum"):
                value = coalesce(value, self.d.to_double(exp.Literal.number(0)))
            return NumberValue(self.d, value)

        return compile_predicate(self.d, condition.having, resolve)

    def _frame_cte(self) -> str:
        spec = self.spec
        base = self.name("base")
        built: dict[str, exp.Expr] = {}
        select = exp.select(star("b")).from_(table(base, "b"))
        for audience in spec.audiences:
            expr = self.condition(audience.condition, "b", built)
            if spec.level == "user" and not audience.include_anonymous:
                expr = exp.and_(col(KNOWN, "b"), expr)
            built[audience.key] = expr
            select = select.select(alias(expr.copy(), audience_column(audience.key)))
        for node, out in spec.user_condition_columns.items():
            if spec.level != "user":
                break  # the account level only reads them, from the user frame
            select = select.select(alias(self.condition(node.condition, "b", built), out))
        frame = self.name("frame")
        self.ctes.append((frame, select))
        return frame

    def condition(self, node: ir.Condition, table_name: str,
                  built: dict[str, exp.Expr]) -> exp.Expr:  # fmt: skip
        """A never-null boolean: does the entity satisfy the condition?"""
        match node:
            case ir.AllOf(children=children):
                if not children:
                    return exp.true()
                return exp.and_(*[self.condition(c, table_name, built) for c in children],
                                wrap=True)  # fmt: skip
            case ir.AnyOf(children=children):
                if not children:
                    return exp.false()
                parts = [self.condition(c, table_name, built) for c in children]
                return exp.paren(exp.or_(*parts, wrap=True))
            case ir.NotC(child=child):
                return exp.not_(exp.paren(self.condition(child, table_name, built)))
            case ir.AtLeast(count=count, children=children):
                if not children:
                    return exp.true() if count <= 0 else exp.false()
                one, zero = exp.Literal.number(1), exp.Literal.number(0)
                flags = [case((self.condition(c, table_name, built), one.copy()), default=zero.copy())
                         for c in children]  # fmt: skip
                total = flags[0]
                for flag in flags[1:]:
                    total = exp.Add(this=total, expression=flag)
                return exp.paren(exp.GTE(this=total, expression=exp.Literal.number(count)))
            case ir.Behaviour(body=body):
                return self.condition(body, table_name, built)
            case ir.AudienceRef(key=key):
                if key in built:
                    return exp.paren(built[key].copy())
                return col(audience_column(key), table_name)
            case ir.TraitsCond(expr=expr):

                def resolve(ref: ir.Expr) -> Typed:
                    assert isinstance(ref, ir.Ref)
                    return self.traits.typed(ref.path, table_name)

                return compile_predicate(self.d, expr, resolve)
            case ir.EventCond() | ir.Funnel() | ir.UsersCond() | ir.Sample():
                return col(self._leaf(node), table_name)
        assert_never(node)

    def _leaf(self, node: ir.Condition) -> str:
        spec = self.spec
        for table_ in (spec.conditions, spec.funnels, spec.users, spec.samples):
            if node in table_:
                return table_[node]  # type: ignore[index]
        msg = f"condition not precomputed at level {spec.level}: {node!r}"
        raise KeyError(msg)


def _qualify(node: exp.Expr, table_name: str) -> exp.Expr:
    def swap(n: exp.Expr) -> exp.Expr:
        if isinstance(n, exp.Column) and not n.table and not isinstance(n.this, exp.Star):
            return exp.column(n.name, table_name)
        return n

    return node.transform(swap)


def _evt_select(evr: str, traits: str, trait_columns: list[str]) -> exp.Select:
    return (
        exp.select(star("e"), *[col(c, "t") for c in trait_columns])
        .from_(table(evr, "e"))
        .join(table(traits, "t"), on=eq(col(ENTITY, "e"), col(ENTITY, "t")))
    )


def _traits_exprs(node: ir.Condition) -> list[ir.Expr | None]:
    found: list[ir.Expr | None] = []
    if isinstance(node, ir.TraitsCond):
        found.append(node.expr)
    if isinstance(node, ir.UsersCond):
        return found  # the user level reads those
    for child in condition_children(node):
        found += _traits_exprs(child)
    return found


class _AggStage:
    """Masks and one fused GROUP BY over a source relation (`evr` or `evt`)."""

    def __init__(self, builder: LevelBuilder, source: str, grouped: str) -> None:
        self.b = builder
        self.source = builder.name(source)
        self.grouped = builder.name(grouped)
        self.masks: dict[tuple[object, ...], tuple[str, Callable[[], exp.Expr]]] = {}
        self.aggs: dict[str, exp.Expr] = {}
        self.fills: dict[str, exp.Expr | str | None] = {}
        self.first_last: dict[str, list[tuple[str, str, str]]] = {}  # mask -> (out, column, kind)
        self.most_frequent: list[tuple[str, exp.Expr, int]] = []
        self.having: list[tuple[str, ir.EventCond, dict[ir.Agg, str]]] = []
        self.first_last_relations: list[str] = []
        self.most_frequent_relations: list[str] = []
        self.outputs: list[str] = []
        self.mask_exprs: dict[str, exp.Expr] = {}
        self.scores: set[str] = set()  # outputs holding a score's raw value (ranked in traits)

    def mask(self, events: tuple[str, ...], where: ir.Expr | None, window: ir.Window | None,
             since: datetime | None, *, custom_only: bool = False) -> str:  # fmt: skip
        key = (events, where, window, since, custom_only)
        if key not in self.masks:
            b = self.b
            name = b.fresh("m")
            parts = [b.names_in(col("event"), events), *b.window(col("timestamp"), window, since)]
            if where is not None:
                resolve = b.event_resolver(None, custom_only=custom_only)
                parts.append(compile_predicate(b.d, where, resolve))
            self.mask_exprs[name] = exp.and_(*parts, wrap=True)
            self.masks[key] = (name, lambda: col(name))
        return self.masks[key][0]

    def _value(self, ref: ir.Ref) -> CachedValue:
        b = self.b
        return CachedValue(b.d, None, b.columns.path(ref.scope, ref.path), b.columns.register)

    def add_trait(self, trait: ir.Trait) -> None:
        b, d = self.b, self.b.d
        mask_name = self.mask(trait.events, trait.where, trait.window, None, custom_only=True)
        mask = col(mask_name)
        out = computed_column(trait.key)
        kind = trait.kind
        if kind == "count":
            self._agg(out, d.cast(count_if(mask), "BIGINT"), exp.Literal.number(0))
            return
        if kind == "score":
            self._agg(out, raw_aggregate(d, trait, lambda: col(mask_name)), None)
            self.scores.add(out)
            return
        assert trait.property is not None
        value = self._value(trait.property)
        if kind in ("sum", "avg", "min", "max"):
            pre = case((mask, value.num()))
            fn = {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}[kind]
            fill = d.to_double(exp.Literal.number(0)) if kind == "sum" else None
            self._agg(out, d.to_double(fn(this=pre)), fill)
        elif kind in ("first", "last"):
            picks = self.first_last.setdefault(mask_name, [])
            picks.append((out, value.column_name, kind))
            for (key, rest), nested in b.columns.nested.items():
                if key == trait.key:
                    column = b.columns.path(trait.property.scope, trait.property.path + rest)
                    picks.append((nested, column, kind))
        elif kind == "unique_count":
            distinct = exp.Count(
                this=exp.Distinct(expressions=[case((mask, value.distinct_text()))])
            )
            self._agg(out, d.cast(distinct, "BIGINT"), exp.Literal.number(0))
        elif kind == "unique_list":
            self._agg(out, d.sorted_set(case((mask, value.distinct_text()))), "list")
        else:
            self.most_frequent.append((out, case((mask, value.distinct_text())),
                                       trait.min_frequency))  # fmt: skip

    def _agg(self, out: str, expr: exp.Expr, fill: exp.Expr | str | None) -> None:
        self.aggs[out] = expr
        self.fills[out] = fill
        self.outputs.append(out)

    def add_condition(self, cond: ir.EventCond, out: str) -> None:
        mask = col(self.mask(cond.events, cond.where, cond.window, cond.since))
        columns: dict[ir.Agg, str] = {}
        for agg in aggs(cond.having):
            if agg in columns:
                continue
            name = f"{out}__{len(columns)}"
            columns[agg] = name
            self.aggs[name] = self._aggregate(agg, mask)
            self.fills[name] = None
            self.outputs.append(name)
            if self.grouped == self.b.name("agg"):
                self.b.first_outputs.add(name)
        self.having.append((out, cond, columns))

    def _aggregate(self, agg: ir.Agg, mask: exp.Expr) -> exp.Expr:
        d = self.b.d
        if agg.name == "count_star":
            return d.to_double(count_if(mask))
        assert agg.arg is not None
        value = self._value(agg.arg)
        if agg.name == "count":
            return d.to_double(count_if(exp.and_(mask.copy(), exp.not_(value.is_null()))))
        if agg.name == "count_distinct":
            return d.to_double(
                exp.Count(this=exp.Distinct(expressions=[case((mask, value.distinct_text()))]))
            )
        fn = {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}[agg.name]
        return d.to_double(fn(this=case((mask, value.num()))))

    def emit(self, masked: str) -> None:
        b = self.b
        masked_name, grouped_name = b.name(masked), self.grouped
        select = exp.select(star("e")).from_(table(self.source, "e"))
        select = select.select(*[alias(_qualify(e, "e"), n) for n, e in self.mask_exprs.items()])
        b.ctes.append((masked_name, select))
        group = exp.select(col(ENTITY)).from_(table(masked_name)).group_by(col(ENTITY))
        group = group.select(*[alias(e, n) for n, e in self.aggs.items()])
        b.ctes.append((grouped_name, group))
        for mask, picks in self.first_last.items():
            relation = b.name(f"fl{len(self.first_last_relations)}")
            b.ctes.append((relation, _first_last(masked_name, mask, picks)))
            self.first_last_relations.append(relation)
        for out, value, min_frequency in self.most_frequent:
            relation = b.name(f"mf{len(self.most_frequent_relations)}")
            b.ctes.append((relation, _most_frequent(masked_name, value, min_frequency, out)))
            self.most_frequent_relations.append(relation)

    def outputs_with_fill(self) -> dict[str, tuple[str, exp.Expr | str | None]]:
        result: dict[str, tuple[str, exp.Expr | str | None]] = {
            name: ("g", self.fills[name]) for name in self.outputs
        }
        for index, picks in enumerate(self.first_last.values()):
            for out, _, _ in picks:
                result[out] = (f"fl{index}", None)
        for index, (out, _, _) in enumerate(self.most_frequent):
            result[out] = (f"mf{index}", None)
        return result


def _order(descending: bool) -> list[exp.Ordered]:
    """SPEC's event order: (timestamp, messageId with a missing one last, read order)."""
    keys = [col("timestamp"), exp.paren(exp.Is(this=col("message_id"), expression=exp.null())),
            col("message_id"), col("seq")]  # fmt: skip
    return [exp.Ordered(this=k, desc=descending, nulls_first=descending) for k in keys]


def _first_last(masked: str, mask: str, picks: list[tuple[str, str, str]]) -> exp.Select:
    columns = sorted({column for _, column, _ in picks})
    ranked = exp.select(
        col(ENTITY),
        *[col(c) for c in columns],
        alias(exp.Window(this=exp.RowNumber(), partition_by=[col(ENTITY)],
                         order=exp.Order(expressions=_order(False))), "_rn_first"),
        alias(exp.Window(this=exp.RowNumber(), partition_by=[col(ENTITY)],
                         order=exp.Order(expressions=_order(True))), "_rn_last"),
    ).from_(table(masked)).where(col(mask))  # fmt: skip
    one = exp.Literal.number(1)
    values = [
        alias(exp.Max(this=case((eq(col("_rn_" + kind), one.copy()), col(column)))), out)
        for out, column, kind in picks
    ]
    return exp.select(col(ENTITY), *values).from_(ranked.subquery("r")).group_by(col(ENTITY))


def _most_frequent(masked: str, value: exp.Expr, min_frequency: int,
                   out: str) -> exp.Select:  # fmt: skip
    counts = (
        exp.select(col(ENTITY), alias(value, "_value"), alias(exp.Count(this=exp.Star()), "_n"))
        .from_(table(masked))
        .group_by(col(ENTITY), value.copy())
        .having(exp.GTE(this=exp.Count(this=exp.Star()),
                        expression=exp.Literal.number(min_frequency)))
    )  # fmt: skip
    counts = counts.where(exp.not_(exp.Is(this=value.copy(), expression=exp.null())))
    order = exp.Order(
        expressions=[
            exp.Ordered(this=col("_n"), desc=True),
            exp.Ordered(this=col("_value"), nulls_first=False),
        ]
    )
    ranked = exp.select(
        col(ENTITY), col("_value"),
        alias(exp.Window(this=exp.RowNumber(), partition_by=[col(ENTITY)], order=order), "_rn"),
    ).from_(counts.subquery("c"))  # fmt: skip
    return (
        exp.select(col(ENTITY), alias(col("_value"), out))
        .from_(ranked.subquery("r"))
        .where(eq(col("_rn"), exp.Literal.number(1)))
    )
