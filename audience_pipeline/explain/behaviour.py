"""Explain section 7's nodes: each window a behaviour node reads, with its count, and a sample
node's anchor and bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from audience_pipeline.engine.samples import detail_columns
from audience_pipeline.ir import nodes as ir


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# What each part of a behaviour node's body asks, in the order `spec.behaviour` builds them.
PART_LABELS = {
    "first_time": ("a matching event in the last `within`", "none at or before that"),
    "stopped": ("a matching event in the `before` span ending `within` ago",
                "none in the last `within`"),
    "restarted": ("a matching event in the last `within`", "none in the `gap` before it",
                  "one at or before the gap"),
}  # fmt: skip


def _bounds(window: ir.Window | None, as_of: datetime) -> tuple[str | None, str | None]:
    if window is None:
        return None, iso(as_of)
    low = None if window.lower is None else iso(as_of - timedelta(seconds=window.lower))
    return low, iso(as_of - timedelta(seconds=window.upper))


def _need(having: ir.Expr) -> str:
    assert isinstance(having, ir.Cmp) and isinstance(having.right, ir.Lit)
    value = int(float(having.right.value or 0))
    return "none" if having.op == "=" else f"at least {value}"


def behaviour_node(node: ir.Behaviour, raw: Any, row: pl.DataFrame, column_of: Any,
                   as_of: datetime, held: bool) -> dict[str, Any]:  # fmt: skip
    """`column_of(event_condition)` names the leaf column of one part of the body."""
    spec = raw.get(node.kind) if isinstance(raw, dict) else None
    parts_nodes = node.body.children if isinstance(node.body, ir.AllOf | ir.AtLeast) else ()
    parts = []
    for index, part in enumerate(parts_nodes):
        assert isinstance(part, ir.EventCond)
        low, high = _bounds(part.window, as_of)
        column = column_of(part)
        count = row[f"{column}__0"][0]
        labels = PART_LABELS.get(node.kind)
        parts.append({
            "asks": labels[index] if labels else f"period {index + 1}",
            "after": low, "until": high, "matching_events": int(count or 0),
            "needs": _need(part.having), "held": bool(row[column][0]),
        })  # fmt: skip
    out: dict[str, Any] = {"type": node.kind, "held": held}
    if isinstance(spec, dict):
        out.update({k: v for k, v in spec.items()})
    since = next((p.since for p in parts_nodes if isinstance(p, ir.EventCond)), None)
    if since is not None:
        out["since"] = iso(since)
    if isinstance(node.body, ir.AtLeast):
        out["periods_held"] = sum(p["held"] for p in parts)
        out["min_periods"] = node.body.count
    out["windows"] = parts
    out["reason"] = _reason(node, parts, held)
    return out


def _reason(node: ir.Behaviour, parts: list[dict[str, Any]], held: bool) -> str:
    if node.kind == "regularly":
        count = sum(p["held"] for p in parts)
        return f"{count} of {len(parts)} periods held enough events (needs {node.param('min_periods')})"
    failed = [p for p in parts if not p["held"]]
    if held or not failed:
        return "every window holds: " + "; ".join(p["asks"] for p in parts)
    first = failed[0]
    return f"fails: {first['asks']} ({first['matching_events']} matching events, needs {first['needs']})"


def sample_node(node: ir.Sample, raw: Any, row: pl.DataFrame, column: str,
                held: bool) -> dict[str, Any]:  # fmt: skip
    bucket_column, anchor_column = detail_columns(column)
    bucket = row[bucket_column][0] if bucket_column in row.columns else None
    anchor = row[anchor_column][0] if anchor_column in row.columns else None
    low, high = node.low / 100, node.high / 100
    out = {"type": "sample", "held": held, "salt": node.salt, "from": low, "to": high,
           "anchor": anchor, "bucket": bucket}  # fmt: skip
    if bucket is None:
        out["reason"] = "no anchor identifier"
    else:
        inside = "inside" if held else "outside"
        out["reason"] = f"bucket {bucket} is {inside} [{node.low}, {node.high})"
    return out
