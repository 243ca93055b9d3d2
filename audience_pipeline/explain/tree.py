"""An audience's condition tree with each node's value for one entity (JSON-ready dicts).

Every node's `held` is the engine's own expression for that node (`condition_expr`) evaluated on
the entity's row of the engine's frame; the details (counts, trait values, funnel steps, members)
come from the same frame. The texts shown (`where`, `having`, `within`, ...) are the definition's
own, taken from the YAML beside the compiled node.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, assert_never

import polars as pl

from audience_pipeline.engine.audiences import audience_column, condition_expr
from audience_pipeline.engine.columns import ENTITY
from audience_pipeline.engine.expressions import compile_expr
from audience_pipeline.engine.traitvalues import computed_column, custom_column
from audience_pipeline.engine.typed import Typed
from audience_pipeline.explain.behaviour import behaviour_node, sample_node
from audience_pipeline.explain.evaluate import Evaluation, LevelView
from audience_pipeline.explain.funnel_trace import StepTrace, trace_funnel
from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.walk import aggs, refs
from audience_pipeline.spec.compile import HAVING_DEFAULT
from audience_pipeline.spec.models import Definitions
from audience_pipeline.values import loads, untag

MAX_MEMBERS_SHOWN = 25


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _number(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def agg_label(agg: ir.Agg) -> str:
    if agg.arg is None:
        return "count(*)"
    arg = ("context." if agg.arg.scope == "context" else "") + agg.arg.dotted
    if agg.name == "count_distinct":
        return f"count(distinct {arg})"
    return f"{agg.name}({arg})"


def _raw(raw: Any, key: str) -> Any:
    return raw.get(key) if isinstance(raw, dict) else None


def _decode_tagged(text: str | None) -> Any:
    """A flat-tagged trait value (``s..``, ``n..``, ``b..``, ``o<json>``) as plain JSON."""
    if text is None:
        return None
    if text.startswith("o"):
        return loads(text[1:])
    return untag(text)


class TreeBuilder:
    """Builds explanations from one `Evaluation` (memoized per audience and entity)."""

    def __init__(self, evaluation: Evaluation, space: ir.Space, definitions: Definitions) -> None:
        self.evaluation = evaluation
        self.audiences = {a.key: a for a in space.audiences}
        self.raw = {a.key: a.condition for a in definitions.audiences}
        self._memo: dict[tuple[str, str], dict[str, Any]] = {}

    def view(self, level: str) -> LevelView:
        view = self.evaluation.users if level == "user" else self.evaluation.accounts
        if view is None:
            msg = f"no {level}s were evaluated"
            raise ValueError(msg)
        return view

    def audience(self, key: str, entity: str) -> dict[str, Any]:
        """The explanation of one audience for one entity of its level."""
        memo_key = (key, entity)
        if memo_key in self._memo:
            return self._memo[memo_key]
        audience = self.audiences[key]
        view = self.view(audience.level)
        row = view.row(entity)
        if row.height != 1:
            msg = f"{entity} was not evaluated at {audience.level} level"
            raise KeyError(msg)
        member = bool(row[audience_column(key)][0])
        out: dict[str, Any] = {
            "audience": key,
            "name": audience.name,
            "level": audience.level,
            "entity_id": entity,
            "as_of": iso(self.evaluation.as_of),
            "member": member,
        }
        if audience.level == "user":
            known = bool(row["_known"][0])
            out["include_anonymous"] = audience.include_anonymous
            out["in_universe"] = audience.include_anonymous or known
        out["condition"] = self.node(audience.condition, self.raw.get(key), view, entity)
        self._memo[memo_key] = out
        return out

    def held(self, node: ir.Condition, view: LevelView, entity: str) -> bool:
        expr = condition_expr(node, view.level, self.evaluation.leaves, view.traits)
        return bool(view.row(entity).select(expr).item())

    def node(self, node: ir.Condition, raw: Any, view: LevelView, entity: str) -> dict[str, Any]:
        held = self.held(node, view, entity)
        match node:
            case ir.AllOf(children=children) | ir.AnyOf(children=children):
                kind = "all" if isinstance(node, ir.AllOf) else "any"
                raws = _raw(raw, kind) or []
                kids = [
                    self.node(c, raws[i] if i < len(raws) else None, view, entity)
                    for i, c in enumerate(children)
                ]
                return {"type": kind, "held": held,
                        "children_held": sum(k["held"] for k in kids), "children": kids}  # fmt: skip
            case ir.NotC(child=child):
                return {"type": "not", "held": held,
                        "child": self.node(child, _raw(raw, "not"), view, entity)}  # fmt: skip
            case ir.EventCond():
                return self._event(node, raw, view, entity, held)
            case ir.TraitsCond(expr=expr):
                return self._traits(expr, raw, view, entity, held)
            case ir.AudienceRef(key=key):
                return {"type": "audience", "held": held, "audience": key,
                        "explanation": self.audience(key, entity)}  # fmt: skip
            case ir.Funnel():
                return self._funnel(node, raw, view, entity, held)
            case ir.UsersCond():
                return self._users(node, raw, entity, held)
            case ir.Behaviour():
                leaves = self.evaluation.leaves
                return behaviour_node(node, raw, view.row(entity),
                                      lambda part: leaves.name(view.level, part),
                                      self.evaluation.as_of, held)  # fmt: skip
            case ir.Sample():
                column = self.evaluation.leaves.name(view.level, node)
                return sample_node(node, raw, view.row(entity), column, held)
            case ir.AtLeast():
                msg = "AtLeast only appears inside a regularly node"
                raise TypeError(msg)
            case _:
                assert_never(node)

    def _event(
        self, node: ir.EventCond, raw: Any, view: LevelView, entity: str, held: bool
    ) -> dict[str, Any]:
        column = self.evaluation.leaves.name(view.level, node)
        row = view.row(entity)
        values: dict[str, Any] = {}
        seen: list[ir.Agg] = []
        for agg in aggs(node.having):
            if agg in seen:
                continue
            # LevelPlan.add_event_condition names aggregate i of a leaf `<leaf>__<i>`.
            values[agg_label(agg)] = _number(row[f"{column}__{len(seen)}"][0])
            seen.append(agg)
        out: dict[str, Any] = {"type": "event", "held": held, "event": _raw(raw, "event")}
        for field in ("where", "within", "between"):
            if _raw(raw, field) is not None:
                out[field] = _raw(raw, field)
        having = _raw(raw, "having")
        out["having"] = having if having is not None else "count(*) >= 1"
        if node.having == HAVING_DEFAULT and having is None:
            out["having_default"] = True
        if node.since is not None:
            out["since"] = iso(node.since)
        out["values"] = values
        return out

    def _traits(
        self, expr: ir.Expr, raw: Any, view: LevelView, entity: str, held: bool
    ) -> dict[str, Any]:
        row = view.row(entity)

        def resolve(ref: ir.Expr) -> Typed:
            assert isinstance(ref, ir.Ref)
            return view.traits.typed(ref.path)

        result = row.select(compile_expr(expr, resolve).read("bool")).item()
        values = {r.dotted: self._trait_value(view, row, r.path) for r in refs(expr)}
        return {"type": "traits", "held": held, "expression": _raw(raw, "traits"),
                "result": result, "traits": values}  # fmt: skip

    def _trait_value(self, view: LevelView, row: pl.DataFrame, path: tuple[str, ...]) -> Any:
        key, rest = path[0], path[1:]
        storage = view.traits.computed.get(key)
        value: Any
        if storage is not None:
            value = row[computed_column(key)][0]
            if isinstance(value, pl.Series):
                value = value.to_list()
            elif storage == "tagged":
                value = _decode_tagged(value)
        elif key in view.traits.custom and custom_column(key) in row.columns:
            value = _decode_tagged(row[custom_column(key)][0])
        else:
            value = None
        for part in rest:
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def _funnel(
        self, node: ir.Funnel, raw: Any, view: LevelView, entity: str, held: bool
    ) -> dict[str, Any]:
        spec = _raw(raw, "funnel") or {}
        raw_steps = _raw(spec, "steps") or []
        traces = trace_funnel(node, view, entity, self.evaluation.as_of)
        steps = []
        failed = None
        for step, trace in zip(node.steps, traces, strict=True):
            raw_step = raw_steps[trace.index - 1] if trace.index - 1 < len(raw_steps) else {}
            steps.append(_step(step, raw_step, trace))
            if failed is None and step.performed and not trace.reached:
                failed = trace.index
        last = node.steps[-1]
        if failed is None and not last.performed and not held:
            failed = len(node.steps)
        out: dict[str, Any] = {"type": "funnel", "held": held}
        for field in ("within", "between"):
            if _raw(spec, field) is not None:
                out[field] = _raw(spec, field)
        if node.since is not None:
            out["since"] = iso(node.since)
        out["failed_step"] = failed
        out["reason"] = _funnel_reason(node, traces, failed, held)
        out["steps"] = steps
        return out

    def _users(self, node: ir.UsersCond, raw: Any, account: str, held: bool) -> dict[str, Any]:
        members = self.evaluation.members.filter(pl.col("account_id") == account)
        ids = sorted(members["profile_id"].to_list())
        users = self.view("user")
        inner = _raw(raw, "condition")
        rows = users.frame.filter(pl.col(ENTITY).is_in(ids)).select(
            ENTITY,
            condition_expr(node.condition, "user", self.evaluation.leaves, users.traits).alias(
                "_held"
            ),
        )
        held_by = dict(rows.iter_rows())
        # Show the members that decide first: holders for any/none, the others for all.
        decisive = node.mode != "all"
        ordered = sorted(ids, key=lambda p: (bool(held_by.get(p)) != decisive, p))
        shown = [
            {
                "profile_id": p,
                "held": bool(held_by.get(p)),
                "condition": self.node(node.condition, inner, users, p),
            }  # fmt: skip
            for p in ordered[:MAX_MEMBERS_SHOWN]
        ]
        return {
            "type": "users",
            "held": held,
            "mode": node.mode,
            "members": len(ids),
            "members_held": sum(bool(held_by.get(p)) for p in ids),
            "members_shown": shown,
            "members_truncated": len(ids) > MAX_MEMBERS_SHOWN,
        }


def _step(step: ir.FunnelStep, raw: Any, trace: StepTrace) -> dict[str, Any]:
    out: dict[str, Any] = {"step": trace.index, "event": _raw(raw, "event")}
    for field in ("where", "within"):
        if _raw(raw, field) is not None:
            out[field] = _raw(raw, field)
    out["performed"] = step.performed
    out["matching_events"] = trace.candidates
    key = "reached" if step.performed else "violations"
    out[key] = len(trace.reached)
    if trace.reached:
        out["first_at"] = iso(min(trace.reached))
        out["last_at"] = iso(max(trace.reached))
    if trace.truncated:
        out["truncated"] = True
    return out


def _names(step: ir.FunnelStep) -> str:
    return " or ".join(repr(e) for e in step.events)


def _funnel_reason(node: ir.Funnel, traces: list[StepTrace], failed: int | None, held: bool) -> str:
    if held:
        last = traces[-1]
        if node.steps[-1].performed:
            return f"completed: step {last.index} reached at {iso(min(last.reached))}"
        return "completed: a reached step was not followed by the last step's event"
    if failed is None:
        return "not completed"
    step = node.steps[failed - 1]
    if failed == 1:
        return f"no {_names(step)} event matched the first step inside the funnel's window"
    previous = traces[failed - 2]
    when = (
        f"step {failed - 1} last reached at {iso(max(previous.reached))}"
        if previous.reached
        else ""
    )
    if not step.performed:
        return (
            f"every reached step {failed - 1} event was followed by a {_names(step)} event "
            f"inside the step's window ({when})"
        )
    return f"no {_names(step)} event completed step {failed} after a reached step {failed - 1} event ({when})"


__all__ = ["TreeBuilder", "agg_label", "iso"]
