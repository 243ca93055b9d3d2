"""Section-7 condition nodes: first_time, stopped, restarted, regularly and sample.

Each behaviour node is parsed into an `ir.Behaviour` whose `body` says the same thing with
event conditions (windows, `count(*)` and the audience's `backfill: false` cut), so that every
backend, the incremental path and explain evaluate it with the machinery they already trust:

- first_time: one in (T-D, T] and none at or before T-D;
- stopped: one in (T-D-B, T-D] and none in (T-D, T];
- restarted: one in (T-D, T], none in (T-D-G, T-D] and one at or before T-D-G;
- regularly: at least M of the K periods (T-(i+1)P, T-iP] hold N or more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from audience_pipeline.ir import nodes as ir
from audience_pipeline.spec.fields import event_names, parse_duration

BEHAVIOUR_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # node: (required fields, optional fields)
    "first_time": ({"event", "within"}, {"where"}),
    "stopped": ({"event", "within", "before"}, {"where"}),
    "restarted": ({"event", "within", "gap"}, {"where"}),
    "regularly": ({"event", "times", "period", "periods"}, {"where", "min_periods"}),
}
SAMPLE_FIELDS = {"salt", "from", "to"}
NEW_NODE_KEYS = (*BEHAVIOUR_FIELDS, "sample")
DURATION_FIELDS = ("within", "before", "gap", "period")


def count_at_least(n: int) -> ir.Expr:
    return ir.Cmp(">=", ir.Agg("count_star", None), ir.Lit(float(n)))


NONE = ir.Cmp("=", ir.Agg("count_star", None), ir.Lit(0.0))

Report = Callable[[str, str, Any], None]  # (field path, message, offending text)
WhereParser = Callable[[Any, str], "ir.Expr | None"]


@dataclass(frozen=True)
class _Common:
    events: tuple[str, ...]
    where: ir.Expr | None
    since: datetime | None

    def cond(self, window: ir.Window, having: ir.Expr) -> ir.EventCond:
        return ir.EventCond(self.events, self.where, window, having, self.since)


def parse_behaviour(node: str, raw: Any, path: str, since: datetime | None, report: Report,
                    parse_where: WhereParser) -> ir.Behaviour | None:  # fmt: skip
    """`{first_time|stopped|restarted|regularly: {...}}`'s body -> IR, or None after reporting."""
    here = f"{path}.{node}"
    if not isinstance(raw, dict):
        report(here, f"{node} is a mapping of its fields", raw)
        return None
    required, optional = BEHAVIOUR_FIELDS[node]
    if not _fields_ok(raw, here, required, optional, report):
        return None
    ok = True
    events = event_names(raw["event"])
    if events is None:
        report(f"{here}.event", "event is a name or a list of names", raw["event"])
    where = None
    if raw.get("where") is not None:
        where = parse_where(raw["where"], f"{here}.where")
        ok = where is not None
    seconds: dict[str, int] = {}
    for name in DURATION_FIELDS:
        if name in raw:
            value = _duration(raw[name], f"{here}.{name}", report)
            ok = ok and value is not None
            seconds[name] = value or 0
    counts: dict[str, int] = {}
    if node == "regularly":
        parsed = _regular_counts(raw, here, report)
        ok = ok and parsed is not None
        counts = parsed or {}
    if not ok or events is None:
        return None
    common = _Common(events, where, since)
    params = tuple(sorted({**seconds, **counts}.items()))
    return ir.Behaviour(node, events, params, _body(node, common, seconds, counts))  # type: ignore[arg-type]


def _body(node: str, c: _Common, s: dict[str, int], counts: dict[str, int]) -> ir.Condition:
    if node == "first_time":
        d = s["within"]
        return ir.AllOf((c.cond(ir.Window(d), count_at_least(1)), c.cond(ir.Window(None, d), NONE)))
    if node == "stopped":
        d, b = s["within"], s["before"]
        return ir.AllOf(
            (c.cond(ir.Window(d + b, d), count_at_least(1)), c.cond(ir.Window(d), NONE))
        )
    if node == "restarted":
        d, g = s["within"], s["gap"]
        return ir.AllOf((
            c.cond(ir.Window(d), count_at_least(1)),
            c.cond(ir.Window(d + g, d), NONE),
            c.cond(ir.Window(None, d + g), count_at_least(1)),
        ))  # fmt: skip
    p, k, n = s["period"], counts["periods"], counts["times"]
    periods = tuple(c.cond(ir.Window((i + 1) * p, i * p), count_at_least(n)) for i in range(k))
    return ir.AtLeast(counts["min_periods"], periods)


def _fields_ok(raw: dict[str, Any], here: str, required: set[str] | frozenset[str],
               optional: set[str] | frozenset[str], report: Report) -> bool:  # fmt: skip
    """Report every unknown and every missing field (SPEC 7a: an unknown field is invalid)."""
    ok = True
    for extra in sorted(set(raw) - required - optional, key=str):
        report(f"{here}.{extra}", "unknown field", extra)
        ok = False
    for missing in sorted(required - set(raw)):
        report(f"{here}.{missing}", "required field is missing", None)
        ok = False
    return ok


def _duration(value: Any, path: str, report: Report) -> int | None:
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        report(path, str(error), value)
        return None
    if seconds <= 0:
        report(path, "a duration here is greater than 0", value)
        return None
    return seconds


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _regular_counts(raw: dict[str, Any], here: str, report: Report) -> dict[str, int] | None:
    times, periods = _integer(raw["times"]), _integer(raw["periods"])
    ok = True
    if times is None or times < 1:
        report(f"{here}.times", "times is an integer >= 1", raw["times"])
        ok = False
    if periods is None or periods < 1:
        report(f"{here}.periods", "periods is an integer >= 1", raw["periods"])
        return None
    minimum: int | None = periods
    if raw.get("min_periods") is not None:
        minimum = _integer(raw["min_periods"])
        if minimum is None or not 1 <= minimum <= periods:
            report(f"{here}.min_periods", f"min_periods is an integer in 1..{periods}",
                   raw["min_periods"])  # fmt: skip
            ok = False
    if not ok or times is None or minimum is None:
        return None
    return {"times": times, "periods": periods, "min_periods": minimum}


def parse_sample(
    raw: Any, path: str, id_types: tuple[str, ...], report: Report
) -> ir.Sample | None:
    """`{sample: {salt, from, to}}`'s body -> IR, or None after reporting."""
    here = f"{path}.sample"
    if not isinstance(raw, dict):
        report(here, "sample is {salt, from, to}", raw)
        return None
    if not _fields_ok(raw, here, SAMPLE_FIELDS, frozenset(), report):
        return None
    salt = _salt(raw["salt"])
    if salt is None:
        report(f"{here}.salt", "salt is a non-empty string (quote dates)", raw["salt"])
    low = _hundredths(raw["from"], f"{here}.from", report)
    high = _hundredths(raw["to"], f"{here}.to", report)
    if salt is None or low is None or high is None:
        return None
    if not 0 <= low < high <= 10000:
        report(here, "needs 0 <= from < to <= 100", f"from {raw['from']}, to {raw['to']}")
        return None
    return ir.Sample(salt, low, high, id_types)


def _salt(value: Any) -> str | None:
    if isinstance(value, bool | date | datetime):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value != "":
        return value
    return None


def _hundredths(value: Any, path: str, report: Report) -> int | None:
    """A YAML number with at most two decimals, in exact hundredths (33.33 -> 3333)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        report(path, "a percentage is a number (at most two decimals)", value)
        return None
    try:
        scaled = Decimal(repr(value)) * 100  # repr: the shortest text that reads back as value
    except InvalidOperation:
        scaled = Decimal("NaN")
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        report(path, "a percentage has at most two decimals", value)
        return None
    return int(scaled)


__all__ = ["NEW_NODE_KEYS", "parse_behaviour", "parse_sample", "sample_overlaps"]


def sample_overlaps(space: ir.Space, files: dict[str, str]) -> list[str]:
    """Warnings: two audiences whose samples of one salt have overlapping ranges (a split's arms
    should adjoin, not overlap). `files`: audience key -> its file, for the message."""
    from audience_pipeline.ir.walk import iter_conditions

    by_salt: dict[str, list[tuple[str, ir.Sample]]] = {}
    for audience in space.audiences:
        for node in iter_conditions(audience.condition):
            if isinstance(node, ir.Sample):
                by_salt.setdefault(node.salt, []).append((audience.key, node))
    warnings = []
    for salt, uses in sorted(by_salt.items()):
        for i, (key_a, a) in enumerate(uses):
            for key_b, b in uses[i + 1 :]:
                if key_a != key_b and a.low < b.high and b.low < a.high:
                    warnings.append(
                        f"{files.get(key_b, key_b)}: {key_b}: sample salt {salt!r} range "
                        f"[{b.low / 100:g}, {b.high / 100:g}) overlaps {key_a}'s "
                        f"[{a.low / 100:g}, {a.high / 100:g})"
                    )
    return warnings
