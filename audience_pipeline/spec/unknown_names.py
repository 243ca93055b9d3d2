"""Trait names in expressions that nothing defines: a typo like `total_revenue_9Od > 500` would
otherwise validate and give an empty audience.

With `custom_traits` declared in space.yaml, an unknown name is an error (spec/compile.py);
without it, any name may be a custom trait from identify calls, so `validate` only warns. Both
suggest the closest known name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from typing import Any

from audience_pipeline.ir.walk import refs
from audience_pipeline.spec.expressions import ExprContext, ExprError, parse_expression
from audience_pipeline.spec.issues import Issue
from audience_pipeline.spec.models import AudienceDef, Definitions

WARNING = (
    "unknown trait name (not a computed trait; declare custom traits in space.yaml's custom_traits)"
)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the closest known name, or ''."""
    close = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_name_warnings(definitions: Definitions) -> list[Issue]:
    """Names no computed trait defines, when space.yaml declares no custom_traits."""
    if definitions.space.custom_traits is not None:
        return []  # declared: compile_space reports unknown names as errors
    keys = {
        level: {t.key for t in definitions.traits if t.level == level}
        for level in ("user", "account")
    }
    warnings = []
    seen: set[tuple[str, str, str]] = set()
    for audience in definitions.audiences:
        for path, level, name in _trait_names(audience.condition, "condition", audience.level):
            if name in keys[level] or (audience.key, path, name) in seen:
                continue
            seen.add((audience.key, path, name))
            # A computed trait of the other level is reported by compile_space.
            if name in keys["account" if level == "user" else "user"]:
                continue
            hint = did_you_mean(name, keys[level])
            warnings.append(_issue(audience, path, WARNING + hint, name))
    return warnings


def _issue(audience: AudienceDef, path: str, message: str, name: str) -> Issue:
    return Issue(audience.file, audience.key, path, message, name)


def _trait_names(raw: Any, path: str, level: str) -> Iterator[tuple[str, str, str]]:
    """(field path, level, trait name) of every trait a condition's expressions name."""
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            yield from _trait_names(item, f"{path}[{i}]", level)
        return
    if not isinstance(raw, dict):
        return
    if "users" in raw:  # {users: any, condition: ...}: the condition is about member users
        yield from _trait_names(raw.get("condition"), f"{path}.condition", "user")
        return
    for field, value in raw.items():
        where = f"{path}.{field}"
        if field == "traits" and isinstance(value, str):
            yield from ((where, level, n) for n in _names(value, ExprContext("traits")))
        elif field == "where" and isinstance(value, str):
            context = ExprContext("event_where", allow_parent=True)
            yield from ((where, level, n) for n in _names(value, context))
        elif isinstance(value, dict | list):
            yield from _trait_names(value, where, level)


def _names(text: str, context: ExprContext) -> list[str]:
    try:
        expression = parse_expression(text, context)
    except ExprError:
        return []  # reported by compile_space
    return [ref.path[0] for ref in refs(expression) if ref.scope == "trait"]


__all__ = ["did_you_mean", "unknown_name_warnings"]
