"""Validated definitions -> IR: conditions parsed, names checked, audiences ordered by dependency."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from graphlib import CycleError, TopologicalSorter
from typing import Any

from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.walk import iter_conditions, refs
from audience_pipeline.spec.behaviour import (
    NEW_NODE_KEYS,
    parse_behaviour,
    parse_sample,
    sample_overlaps,
)
from audience_pipeline.spec.expressions import ExprContext, ExprError, parse_expression
from audience_pipeline.spec.fields import event_names, parse_duration
from audience_pipeline.spec.issues import DefinitionsError, Issue
from audience_pipeline.spec.loader import load_definitions, parse_window
from audience_pipeline.spec.models import AudienceDef, Definitions, TraitDef
from audience_pipeline.spec.sql_traits import check_sql_traits
from audience_pipeline.spec.unknown_names import did_you_mean

NODE_KEYS = ("all", "any", "not", "event", "traits", "audience", "funnel", "users",
             *NEW_NODE_KEYS)  # fmt: skip
EVENT_FIELDS = {"event", "where", "within", "between", "having"}
STEP_FIELDS = {"event", "where", "within", "performed"}
HAVING_DEFAULT = ir.Cmp(">=", ir.Agg("count_star", None), ir.Lit(1.0))


@dataclass
class _Scope:
    """Where a condition stands: the audience, its level and the field path for messages."""

    audience: AudienceDef
    level: ir.Level
    since: datetime | None
    issues: list[Issue]
    user_trait_keys: set[str]
    account_trait_keys: set[str]
    custom_traits: tuple[str, ...] | None
    audience_levels: Mapping[str, str]
    refs_out: set[str] = field(default_factory=set)
    id_types: tuple[str, ...] = ()  # the space's identifier types by priority (sample anchors)

    def issue(self, path: str, message: str, text: Any = None) -> None:
        self.issues.append(
            Issue(
                self.audience.file,
                self.audience.key,
                path,
                message,
                None if text is None else str(text),
            )  # fmt: skip
        )


def compile_space(definitions: Definitions, as_of: datetime) -> tuple[ir.Space, list[Issue]]:
    """Compile every trait and audience to IR; returns the space and the issues found."""
    issues: list[Issue] = []
    user_keys = {t.key for t in definitions.traits if t.level == "user"}
    account_keys = {t.key for t in definitions.traits if t.level == "account"}
    issues += check_sql_traits(definitions)
    # SQL traits are not aggregations: their rows reach the engines as per-entity objects.
    computed = [d for d in definitions.traits if d.kind != "sql"]
    traits = [t for t in (_compile_trait(d, issues) for d in computed) if t is not None]
    levels = {a.key: a.level for a in definitions.audiences}
    compiled: dict[str, ir.Audience] = {}
    deps: dict[str, set[str]] = {}
    for audience in definitions.audiences:
        since = None
        if not audience.backfill:
            since = audience.created_at or as_of
        scope = _Scope(audience, audience.level, since, issues, user_keys, account_keys,
                       definitions.space.custom_traits, levels,
                       id_types=tuple(i.type for i in definitions.space.identifiers))  # fmt: skip
        condition = _condition(audience.condition, "condition", scope)
        if audience.level == "user" and not audience.include_anonymous:
            pass
        if condition is None:
            continue
        compiled[audience.key] = ir.Audience(
            audience.key, audience.name, audience.level, audience.include_anonymous, condition
        )
        deps[audience.key] = scope.refs_out
    order = _order(definitions, deps, issues)
    audiences = tuple(compiled[k] for k in order if k in compiled)
    return ir.Space(tuple(traits), audiences), issues


def load_space_ir(root: str, as_of: datetime) -> tuple[Definitions, ir.Space]:
    """Load and compile a definitions folder; raises DefinitionsError with every issue."""
    definitions, issues = load_definitions(root)
    space, more = compile_space(definitions, as_of)
    issues += more
    if issues:
        raise DefinitionsError(issues)
    return definitions, space


def _order(definitions: Definitions, deps: dict[str, set[str]], issues: list[Issue]) -> list[str]:
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for key, needed in deps.items():
        sorter.add(key, *sorted(n for n in needed if n in deps))
    try:
        # Users first: account audiences may name user audiences, never the reverse.
        order = list(sorter.static_order())
    except CycleError as error:
        cycle = error.args[1]
        first = definitions.audience(cycle[0])
        issues.append(
            Issue(
                first.file if first else "audiences",
                cycle[0],
                "condition",
                "audiences form a cycle",
                " -> ".join(cycle),
            )  # fmt: skip
        )
        return []
    return order


def _compile_trait(d: TraitDef, issues: list[Issue]) -> ir.Trait | None:
    where = None
    if d.where is not None:
        try:
            where = parse_expression(d.where, ExprContext("trait_where"))
        except ExprError as error:
            issues.append(Issue(d.file, d.key, "where", error.message, error.text))
            return None
    prop = None
    if d.property is not None:
        try:
            parsed = parse_expression(d.property, ExprContext("trait_where"))
        except ExprError as error:
            issues.append(Issue(d.file, d.key, "property", error.message, error.text))
            return None
        if not isinstance(parsed, ir.Ref) or parsed.scope not in ("prop", "context"):
            issues.append(
                Issue(d.file, d.key, "property", "property is a property name", d.property)
            )
            return None
        prop = parsed
    return ir.Trait(
        d.key, d.level, d.kind, d.events, prop, where, d.window, d.min_frequency,  # type: ignore[arg-type]
        score=d.score,  # type: ignore[arg-type]
    )  # fmt: skip


def _expr(
    text: Any, path: str, role: str, scope: _Scope, *, allow_parent: bool = False
) -> ir.Expr | None:
    if not isinstance(text, str):
        scope.issue(path, "expected a SQL string", text)
        return None
    try:
        expr = parse_expression(text, ExprContext(role, allow_parent))  # type: ignore[arg-type]
    except ExprError as error:
        scope.issue(path, error.message, error.text)
        return None
    for ref in refs(expr):
        if ref.scope == "trait":
            _check_trait_name(ref.path[0], path, scope)
    return expr


def _check_trait_name(name: str, path: str, scope: _Scope) -> None:
    own = scope.user_trait_keys if scope.level == "user" else scope.account_trait_keys
    other = scope.account_trait_keys if scope.level == "user" else scope.user_trait_keys
    if name in own:
        return
    if name in other:
        where = (
            "a user-level condition"
            if scope.level == "user"
            else "an account condition outside users:"
        )
        other_level = "an account" if scope.level == "user" else "a user"
        scope.issue(path, f"{where} names {other_level} trait", name)
        return
    if scope.custom_traits is not None and name not in scope.custom_traits:
        hint = did_you_mean(name, [*own, *scope.custom_traits])
        message = "unknown trait (not a computed trait nor a declared custom trait)"
        scope.issue(path, message + hint, name)


def _condition(raw: Any, path: str, scope: _Scope) -> ir.Condition | None:
    if not isinstance(raw, dict):
        scope.issue(path, "a condition is a mapping", raw)
        return None
    present = [k for k in NODE_KEYS if k in raw]
    if len(present) != 1:
        scope.issue(path, f"a condition has exactly one of {', '.join(NODE_KEYS)}", sorted(raw))
        return None
    node = present[0]
    if node in ("all", "any"):
        children_raw = raw[node]
        if not isinstance(children_raw, list):
            scope.issue(f"{path}.{node}", "expects a list of conditions", children_raw)
            return None
        extra = set(raw) - {node}
        if extra:
            scope.issue(path, "unknown field", sorted(extra))
        children = [_condition(c, f"{path}.{node}[{i}]", scope) for i, c in enumerate(children_raw)]
        if any(c is None for c in children):
            return None
        kids = tuple(c for c in children if c is not None)
        return ir.AllOf(kids) if node == "all" else ir.AnyOf(kids)
    if node == "not":
        child = _condition(raw["not"], f"{path}.not", scope)
        return None if child is None else ir.NotC(child)
    if node == "event":
        return _event(raw, path, scope)
    if node == "traits":
        expr = _expr(raw["traits"], f"{path}.traits", "traits", scope)
        return None if expr is None else ir.TraitsCond(expr)
    if node == "audience":
        return _audience_ref(raw, path, scope)
    if node == "funnel":
        return _funnel(raw["funnel"], f"{path}.funnel", scope)
    if node in NEW_NODE_KEYS:
        return _new_node(node, raw, path, scope)
    return _users(raw, path, scope)


def _new_node(node: str, raw: dict[str, Any], path: str, scope: _Scope) -> ir.Condition | None:
    """Section 7's nodes: a one-key mapping with the fields under the key."""
    if len(raw) != 1:
        for extra in sorted(set(raw) - {node}, key=str):
            scope.issue(f"{path}.{extra}", f"unknown field (the fields of {node} go under it)", extra)  # fmt: skip
        return None
    if node == "sample":
        id_types = ("group_id",) if scope.level == "account" else scope.id_types
        return parse_sample(raw[node], path, id_types, scope.issue)

    def where(text: Any, where_path: str) -> ir.Expr | None:
        return _expr(text, where_path, "event_where", scope)

    return parse_behaviour(node, raw[node], path, scope.since, scope.issue, where)


def _event(raw: dict[str, Any], path: str, scope: _Scope) -> ir.Condition | None:
    ok = True
    for extra in sorted(set(raw) - EVENT_FIELDS):
        scope.issue(f"{path}.{extra}", "unknown field", extra)
        ok = False
    events = event_names(raw["event"])
    if events is None:
        scope.issue(f"{path}.event", "event is a name or a list of names", raw["event"])
        ok = False
    where = None
    if raw.get("where") is not None:
        where = _expr(raw["where"], f"{path}.where", "event_where", scope)
        ok = ok and where is not None
    having: ir.Expr | None = HAVING_DEFAULT
    if raw.get("having") is not None:
        having = _expr(raw["having"], f"{path}.having", "having", scope)
        ok = ok and having is not None
    before = len(scope.issues)
    window = parse_window(raw, scope.issues, scope.audience.file, scope.audience.key, f"{path}.")
    if not ok or len(scope.issues) > before or events is None or having is None:
        return None
    return ir.EventCond(events, where, window, having, scope.since)


def _audience_ref(raw: dict[str, Any], path: str, scope: _Scope) -> ir.Condition | None:
    key = raw["audience"]
    if not isinstance(key, str) or key not in scope.audience_levels:
        scope.issue(f"{path}.audience", "unknown audience", key)
        return None
    if scope.audience_levels[key] != scope.level:
        scope.issue(f"{path}.audience", f"names a {scope.audience_levels[key]}-level audience in a {scope.level}-level condition", key)  # fmt: skip
        return None
    if key == scope.audience.key:
        scope.issue(f"{path}.audience", "an audience cannot contain itself (cycle)", key)
        return None
    scope.refs_out.add(key)
    return ir.AudienceRef(key)


def _funnel(raw: Any, path: str, scope: _Scope) -> ir.Condition | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("steps"), list):
        scope.issue(path, "a funnel is {within, steps: [...]}", raw)
        return None
    for extra in sorted(set(raw) - {"within", "between", "steps"}):
        scope.issue(f"{path}.{extra}", "unknown field", extra)
    before = len(scope.issues)
    window = parse_window(raw, scope.issues, scope.audience.file, scope.audience.key, f"{path}.")
    steps_raw = raw["steps"]
    if len(steps_raw) < 2:
        scope.issue(f"{path}.steps", "a funnel has at least two steps", len(steps_raw))
    steps: list[ir.FunnelStep] = []
    for index, step in enumerate(steps_raw):
        spath = f"{path}.steps[{index}]"
        if not isinstance(step, dict):
            scope.issue(spath, "a step is a mapping", step)
            continue
        for extra in sorted(set(step) - STEP_FIELDS):
            scope.issue(f"{spath}.{extra}", "unknown field", extra)
        events = event_names(step.get("event"))
        if events is None:
            scope.issue(f"{spath}.event", "event is a name or a list of names", step.get("event"))
        where = None
        if step.get("where") is not None:
            where = _expr(
                step["where"], f"{spath}.where", "event_where", scope, allow_parent=index > 0
            )
        within = None
        if step.get("within") is not None:
            if index == 0:
                scope.issue(
                    f"{spath}.within",
                    "the first step's window is the funnel's within",
                    step["within"],
                )
            else:
                try:
                    within = parse_duration(step["within"])
                except ValueError as error:
                    scope.issue(f"{spath}.within", str(error), step["within"])
        performed = step.get("performed", True)
        if not isinstance(performed, bool):
            scope.issue(f"{spath}.performed", "must be true or false", performed)
            performed = True
        if not performed and index != len(steps_raw) - 1:
            scope.issue(f"{spath}.performed", "performed: false is allowed on the last step only (a positive step follows it)", performed)  # fmt: skip
        if not performed and index == 0:
            scope.issue(
                f"{spath}.performed", "the first step cannot be performed: false", performed
            )
        steps.append(ir.FunnelStep(events or (), where, within, performed))
    if len(scope.issues) > before:
        return None
    return ir.Funnel(window, tuple(steps), scope.since)


def _users(raw: dict[str, Any], path: str, scope: _Scope) -> ir.Condition | None:
    mode = raw["users"]
    if scope.level != "account":
        scope.issue(f"{path}.users", "users: is only allowed in account-level audiences", mode)
        return None
    if mode not in ("any", "all", "none"):
        scope.issue(f"{path}.users", "users is any, all or none", mode)
        return None
    for extra in sorted(set(raw) - {"users", "condition"}):
        scope.issue(f"{path}.{extra}", "unknown field", extra)
    if "condition" not in raw:
        scope.issue(f"{path}.condition", "users: needs a user-level condition", None)
        return None
    inner = _Scope(scope.audience, "user", scope.since, scope.issues, scope.user_trait_keys,
                   scope.account_trait_keys, scope.custom_traits, scope.audience_levels,
                   scope.refs_out, scope.id_types)  # fmt: skip
    child = _condition(raw["condition"], f"{path}.condition", inner)
    if child is None:
        return None
    if any(isinstance(n, ir.UsersCond) for n in iter_conditions(child)):
        scope.issue(f"{path}.condition", "users: cannot nest", None)
        return None
    return ir.UsersCond(mode, child)


def validate_definitions(root: str, as_of: datetime) -> list[Issue]:
    """Every problem in a definitions folder, at once."""
    definitions, issues = load_definitions(root)
    _, more = compile_space(definitions, as_of)
    return issues + more


def validation_warnings(root: str, as_of: datetime) -> list[str]:
    """What `validate` points out without failing: overlapping sample ranges of one salt."""
    definitions, _ = load_definitions(root)
    space, _ = compile_space(definitions, as_of)
    return sample_overlaps(space, {a.key: a.file for a in definitions.audiences})


__all__ = [
    "DefinitionsError",
    "compile_space",
    "load_space_ir",
    "validate_definitions",
    "validation_warnings",
]
