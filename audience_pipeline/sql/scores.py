"""Behavioural scores (SPEC 7, `kind: score`) in SQL: a raw aggregate per entity in the level's
GROUP BY, then RANK() over every entity of the level in the traits relation.

score = round_half_up(100 * (rank - 1) / (n - 1)), computed as
FLOOR((200 * (rank - 1) + (n - 1)) / (2 * (n - 1))) over integers held exactly in doubles.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from audience_pipeline.ir import nodes as ir
from audience_pipeline.sql.dialects import SqlDialect
from audience_pipeline.sql.relations import as_of_param, col, count_if, seconds
from audience_pipeline.sql.typed import case


def weeks(window: int) -> int:
    return max(1, window // (7 * 86400))


def _num(n: float) -> exp.Expr:
    return exp.Literal.number(n)


def raw_aggregate(d: SqlDialect, trait: ir.Trait, mask: Callable[[], exp.Expr]) -> exp.Expr:
    """The raw value of one score (NULL for an entity without a matching event)."""
    assert trait.window is not None and trait.window.lower is not None
    window = trait.window.lower
    ts = col("timestamp")
    matched = count_if(mask())
    match trait.score:
        case "quantity":
            raw: exp.Expr = d.to_double(matched.copy())
        case "frequency":
            day = d.utc_date(ts.copy())
            raw = d.to_double(exp.Count(this=exp.Distinct(expressions=[case((mask(), day))])))
        case "recency":
            latest = exp.Max(this=case((mask(), ts.copy())))
            raw = exp.TimestampTrunc(this=latest, unit=exp.var("MILLISECOND"))
        case "momentum":
            cut = exp.Sub(this=as_of_param(), expression=seconds(window // 3))
            recent = count_if(exp.and_(mask(), exp.GT(this=ts.copy(), expression=cut)))
            earlier = count_if(exp.and_(mask(), exp.LTE(this=ts.copy(), expression=cut.copy())))
            raw = exp.Sub(
                this=exp.Mul(this=_num(3), expression=d.to_double(recent)),
                expression=exp.Mul(this=_num(1.5), expression=d.to_double(earlier)),
            )
        case "consistency":
            held: list[exp.Expr] = []
            for i in range(weeks(window)):
                low = exp.Sub(this=as_of_param(), expression=seconds((i + 1) * 7 * 86400))
                inside = [mask(), exp.GT(this=ts.copy(), expression=low)]
                if i:
                    high = exp.Sub(this=as_of_param(), expression=seconds(i * 7 * 86400))
                    inside.append(exp.LTE(this=ts.copy(), expression=high))
                held.append(exp.Max(this=case((exp.and_(*inside), _num(1)), default=_num(0))))
            total = held[0]
            for flag in held[1:]:
                total = exp.Add(this=total, expression=flag)
            raw = d.to_double(total)
        case _:
            msg = f"unknown score {trait.score!r}"
            raise ValueError(msg)
    has = exp.GT(this=matched.copy(), expression=_num(0))
    return case((has, raw))


def score_from_raw(d: SqlDialect, raw: exp.Expr) -> exp.Expr:
    """0..100 from the raw value, ranked over every row of the relation (no matching event:
    NULL, and NULLs rank last so they never shift a rank)."""
    order = exp.Order(expressions=[exp.Ordered(this=raw.copy(), nulls_first=False)])
    rank = exp.Window(this=exp.Anonymous(this="RANK"), order=order)
    n = exp.Window(this=exp.Count(this=raw.copy()))
    numerator = exp.Add(
        this=exp.Mul(this=_num(200), expression=exp.paren(exp.Sub(this=rank, expression=_num(1)))),
        expression=exp.paren(exp.Sub(this=n.copy(), expression=_num(1))),
    )
    denominator = exp.Mul(
        this=_num(2), expression=exp.paren(exp.Sub(this=n.copy(), expression=_num(1)))
    )
    scaled = exp.Floor(
        this=exp.Div(this=d.to_double(numerator), expression=d.to_double(denominator))
    )
    value = case(
        (exp.Is(this=raw.copy(), expression=exp.null()), exp.null()),
        (exp.EQ(this=n.copy(), expression=_num(1)), _num(100)),
        default=scaled,
    )
    return d.cast(value, "BIGINT")


__all__ = ["raw_aggregate", "score_from_raw", "weeks"]
