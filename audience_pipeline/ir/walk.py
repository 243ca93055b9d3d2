"""Read-only traversals of IR trees."""

from __future__ import annotations

from collections.abc import Iterator

from audience_pipeline.ir.nodes import (
    Agg,
    AllOf,
    And,
    AnyOf,
    Arith,
    AtLeast,
    AudienceRef,
    Behaviour,
    Cmp,
    Condition,
    EventCond,
    Expr,
    Func,
    Funnel,
    IsNull,
    Like,
    Neg,
    Not,
    NotC,
    Or,
    Ref,
    Sample,
    Space,
    TraitsCond,
    UsersCond,
)


def expr_children(node: Expr) -> tuple[Expr, ...]:
    match node:
        case Cmp(left=left, right=right) | Arith(left=left, right=right):
            return (left, right)
        case And(args=args) | Or(args=args) | Func(args=args):
            return args
        case Not(arg=arg) | IsNull(arg=arg) | Like(arg=arg) | Neg(arg=arg):
            return (arg,)
        case Agg(arg=arg):
            return (arg,) if arg is not None else ()
    return ()


def iter_expr(node: Expr) -> Iterator[Expr]:
    yield node
    for child in expr_children(node):
        yield from iter_expr(child)


def refs(node: Expr | None) -> list[Ref]:
    if node is None:
        return []
    return [n for n in iter_expr(node) if isinstance(n, Ref)]


def aggs(node: Expr) -> list[Agg]:
    return [n for n in iter_expr(node) if isinstance(n, Agg)]


def condition_children(node: Condition) -> tuple[Condition, ...]:
    match node:
        case AllOf(children=children) | AnyOf(children=children) | AtLeast(children=children):
            return children
        case Behaviour(body=body):
            return (body,)
        case NotC(child=child):
            return (child,)
        case UsersCond(condition=child):
            return (child,)
    return ()


def iter_conditions(node: Condition, *, into_users: bool = True) -> Iterator[Condition]:
    yield node
    if isinstance(node, UsersCond) and not into_users:
        return
    for child in condition_children(node):
        yield from iter_conditions(child, into_users=into_users)


def uses_samples(space: Space) -> bool:
    """Whether some audience has a `sample` node (its value hangs on identifiers, not events)."""
    return any(
        isinstance(node, Sample) for a in space.audiences for node in iter_conditions(a.condition)
    )


def audience_refs(node: Condition) -> list[str]:
    return [n.key for n in iter_conditions(node) if isinstance(n, AudienceRef)]


def condition_exprs(node: Condition) -> Iterator[Expr]:
    """Every expression directly held by this condition node (not its children)."""
    match node:
        case EventCond(where=where, having=having):
            if where is not None:
                yield where
            yield having
        case TraitsCond(expr=expr):
            yield expr
        case Funnel(steps=steps):
            for step in steps:
                if step.where is not None:
                    yield step.where


__all__ = [
    "aggs",
    "audience_refs",
    "condition_children",
    "condition_exprs",
    "expr_children",
    "iter_conditions",
    "iter_expr",
    "refs",
    "uses_samples",
]
