"""Section 7's computed-trait kinds: `kind: score` (behavioural scores)."""

from __future__ import annotations

from typing import Any

from audience_pipeline.ir.nodes import Window
from audience_pipeline.spec.issues import Issue
from audience_pipeline.spec.loader import _check_key, event_names, parse_duration
from audience_pipeline.spec.models import TraitDef

SCORES = ("quantity", "frequency", "recency", "momentum", "consistency")
SCORE_FIELDS = {"key", "name", "description", "level", "kind", "score", "event", "where", "within"}
DEFAULT_SCORE_WINDOW = 90 * 86400


def load_score_trait(raw: dict[str, Any], file: str, issues: list[Issue]) -> TraitDef | None:
    """`kind: score`: score required; event optional (every event); where; within (90d)."""
    key = _check_key(raw, file, issues)
    before = len(issues)
    for extra in sorted(set(raw) - SCORE_FIELDS, key=str):
        why = "not a field of a score trait" if extra in ("property", "between", "min_frequency") else "unknown field"  # fmt: skip
        issues.append(Issue(file, key, str(extra), why, str(extra)))
    level = raw.get("level", "user")
    if level not in ("user", "account"):
        issues.append(Issue(file, key, "level", "level is user or account", str(level)))
    score = raw.get("score")
    if score not in SCORES:
        issues.append(Issue(file, key, "score", f"score is one of {', '.join(SCORES)}", str(score)))
    events: tuple[str, ...] | None = ()
    if raw.get("event") is not None:
        events = event_names(raw["event"])
        if events is None:
            issues.append(Issue(file, key, "event", "event is a name or a list of names",
                                str(raw["event"])))  # fmt: skip
    where = raw.get("where")
    if where is not None and not isinstance(where, str):
        issues.append(Issue(file, key, "where", "where is a SQL string", str(where)))
    window = DEFAULT_SCORE_WINDOW
    if raw.get("within") is not None:
        try:
            window = parse_duration(raw["within"])
        except ValueError as error:
            issues.append(Issue(file, key, "within", str(error), str(raw["within"])))
        else:
            if window <= 0:
                issues.append(Issue(file, key, "within", "within is greater than 0", str(raw["within"])))  # fmt: skip
    if key is None or len(issues) > before:
        return None
    return TraitDef(
        key=key, level=level, kind="score", events=events or (), property=None, where=where,
        window=Window(window), min_frequency=1, file=file,
        description=raw.get("description") or raw.get("name"), raw=raw, score=str(score),
    )  # fmt: skip


__all__ = ["SCORES", "load_score_trait"]
