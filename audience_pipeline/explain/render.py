"""Explanations as indented text for the command line (the JSON form is the API's)."""

from __future__ import annotations

from typing import Any

import orjson

YES, NO = "✓", "✗"


def _mark(held: bool) -> str:
    return YES if held else NO


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _events(value: Any) -> str:
    if isinstance(value, list):
        return " or ".join(str(v) for v in value)
    return str(value)


def render(explanation: dict[str, Any], *, subject: str | None = None) -> str:
    """One audience's explanation as text: a headline, then the condition tree."""
    who = subject or explanation["entity_id"]
    verdict = "MEMBER" if explanation["member"] else "NOT A MEMBER"
    lines = [
        f"{explanation['audience']} ({explanation['level']}-level, {explanation['name']!r}) "
        f"for {who} as of {explanation['as_of']}: {verdict}"
    ]
    stored = explanation.get("warehouse_member")
    if stored is not None and stored != explanation["member"]:
        lines.append(
            f"  note: the warehouse's memberships say {'member' if stored else 'not a member'}; "
            "the definitions changed since that run?"
        )
    if explanation.get("in_universe") is False:
        lines.append("  outside the audience's universe: include_anonymous is false and the "
                     "profile has no user_id or email")  # fmt: skip
    _node(explanation["condition"], 1, lines)
    return "\n".join(lines)


def _node(node: dict[str, Any], depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    mark = _mark(node["held"])
    kind = node["type"]
    if kind in ("all", "any"):
        n = len(node["children"])
        lines.append(f"{pad}{mark} {kind} ({node['children_held']} of {n} held)")
        for child in node["children"]:
            _node(child, depth + 1, lines)
    elif kind == "not":
        lines.append(f"{pad}{mark} not")
        _node(node["child"], depth + 1, lines)
    elif kind == "event":
        parts = [f"event {_events(node['event'])}"]
        for field in ("where", "within", "between", "since"):
            if field in node:
                parts.append(f"{field} {_text(node[field])}")
        values = ", ".join(f"{k} = {_text(v)}" for k, v in node["values"].items())
        lines.append(f"{pad}{mark} {'; '.join(parts)}: {values}; having {node['having']}")
    elif kind == "traits":
        values = ", ".join(f"{k} = {_text(v)}" for k, v in node["traits"].items())
        lines.append(
            f"{pad}{mark} traits {node['expression']} -> {_text(node['result'])} [{values}]"
        )
    elif kind == "audience":
        inner = node["explanation"]
        lines.append(f"{pad}{mark} audience {node['audience']}: "
                     f"{'member' if inner['member'] else 'not a member'}")  # fmt: skip
        if inner.get("in_universe") is False:
            lines.append(f"{pad}    outside its universe (include_anonymous: false)")
        _node(inner["condition"], depth + 2, lines)
    elif kind == "funnel":
        window = node.get("within") or node.get("between")
        lines.append(f"{pad}{mark} funnel{' within ' + _text(window) if window else ''}: "
                     f"{node['reason']}")  # fmt: skip
        for step in node["steps"]:
            _step(step, node, depth + 1, lines)
    elif kind in ("first_time", "stopped", "restarted", "regularly"):
        lines.append(f"{pad}{mark} {kind} {_events(node.get('event'))}: {node['reason']}")
        for window in node["windows"]:
            after = window["after"] or "the beginning"
            lines.append(f"{pad}  {_mark(window['held'])} {window['asks']}: "
                         f"{window['matching_events']} matching events in ({after}, "
                         f"{window['until']}], needs {window['needs']}")  # fmt: skip
    elif kind == "sample":
        lines.append(f"{pad}{mark} sample {node['salt']!r} [{node['from']:g}%, {node['to']:g}%): "
                     f"anchor {node['anchor']}, {node['reason']}")  # fmt: skip
    elif kind == "users":
        lines.append(f"{pad}{mark} users {node['mode']} ({node['members_held']} of "
                     f"{node['members']} members held)")  # fmt: skip
        for member in node["members_shown"]:
            lines.append(f"{pad}  {_mark(member['held'])} member {member['profile_id']}")
            _node(member["condition"], depth + 2, lines)
        if node["members_truncated"]:
            lines.append(f"{pad}  ... {node['members'] - len(node['members_shown'])} more")


def _step(step: dict[str, Any], funnel: dict[str, Any], depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    parts = [f"step {step['step']} {_events(step['event'])}"]
    for field in ("where", "within"):
        if field in step:
            parts.append(f"{field} {step[field]}")
    failed = funnel["failed_step"]
    if not step["performed"]:
        parts.append("performed: false")
        count = step["violations"]
        mark = _mark(funnel["held"]) if failed is None or step["step"] <= failed else "·"
        what = f"{count} of {step['matching_events']} matching events follow a reached step"
    else:
        count = step["reached"]
        mark = _mark(count > 0) if failed is None or step["step"] <= failed else "·"
        what = f"{count} of {step['matching_events']} matching events reached it"
    if not step["matching_events"]:
        what = "no matching events"
    when = f" (first {step['first_at']}, last {step['last_at']})" if count else ""
    lines.append(f"{pad}{mark} {', '.join(parts)}: {what}{when}")


__all__ = ["render"]
