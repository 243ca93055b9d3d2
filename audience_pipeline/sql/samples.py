"""`sample` nodes (SPEC 7) in SQL: each entity's anchor, then one bucket per salt.

bucket = int(sha256("<salt>:<id_type>:<value>")[:16 hex], 16) mod 10000. No engine here has an
unsigned 64-bit integer, so the 16 hex digits are folded modulo 10000 one by one:
sum(digit_i * (16^(15-i) mod 10000)) mod 10000, which only needs SHA-256 as hex, SUBSTRING and a
position lookup, and stays far below 2^63.
"""

from __future__ import annotations

from sqlglot import exp

from audience_pipeline.ir import nodes as ir
from audience_pipeline.sql.dialects import SqlDialect
from audience_pipeline.sql.relations import ENTITY, alias, col, eq, table

HEX = "0123456789abcdef"
BUCKETS = 10000


def anchor_select(d: SqlDialect, identities: str, id_types: tuple[str, ...]) -> exp.Select:
    """entity_id, id_type, id_value: each profile's highest-priority type, smallest value."""
    rank = exp.Case()
    for index, id_type in enumerate(id_types):
        rank = rank.when(eq(col("id_type"), exp.Literal.string(id_type)), exp.Literal.number(index))
    rank = rank.else_(exp.Literal.number(len(id_types)))
    order = exp.Order(expressions=[
        exp.Ordered(this=rank), exp.Ordered(this=d.code_point_order(col("id_value"))),
    ])  # fmt: skip
    numbered = exp.select(
        col("profile_id"), col("id_type"), col("id_value"),
        alias(exp.Window(this=exp.RowNumber(), partition_by=[col("profile_id")], order=order), "_rn"),
    ).from_(table(identities))  # fmt: skip
    return (
        exp.select(alias(col("profile_id", "i"), ENTITY), col("id_type", "i"), col("id_value", "i"))
        .from_(numbered.subquery("i"))
        .where(eq(col("_rn", "i"), exp.Literal.number(1)))
    )


def account_anchor_select(entities: str) -> exp.Select:
    return exp.select(
        col(ENTITY),
        alias(exp.Literal.string("group_id"), "id_type"),
        alias(col(ENTITY), "id_value"),
    ).from_(table(entities))


def _bucket(d: SqlDialect, salt: str) -> exp.Expr:
    text = exp.Concat(expressions=[
        exp.Literal.string(f"{salt}:"), col("id_type"), exp.Literal.string(":"), col("id_value"),
    ])  # fmt: skip
    digest = d.sha256_hex(text)
    terms: list[exp.Expr] = []
    for index in range(16):
        digit = exp.Sub(
            this=exp.StrPosition(
                this=exp.Literal.string(HEX),
                substr=exp.Substring(this=digest.copy(), start=exp.Literal.number(index + 1),
                                     length=exp.Literal.number(1)),
            ),
            expression=exp.Literal.number(1),
        )  # fmt: skip
        weight = pow(16, 15 - index, BUCKETS)
        terms.append(exp.Mul(this=exp.paren(digit), expression=exp.Literal.number(weight)))
    total = terms[0]
    for term in terms[1:]:
        total = exp.Add(this=total, expression=term)
    return exp.Mod(this=exp.paren(total), expression=exp.Literal.number(BUCKETS))


def buckets_select(d: SqlDialect, anchors: str, salts: dict[str, str]) -> exp.Select:
    """entity_id and one bucket column per salt (salt -> column name)."""
    select = exp.select(col(ENTITY)).from_(table(anchors))
    for salt, column in salts.items():
        select = select.select(alias(_bucket(d, salt), column))
    return select


def sample_holds(node: ir.Sample, bucket: exp.Expr) -> exp.Expr:
    """A never-null boolean: low <= bucket < high (no anchor: false)."""
    inside = exp.and_(
        exp.GTE(this=bucket.copy(), expression=exp.Literal.number(node.low)),
        exp.LT(this=bucket.copy(), expression=exp.Literal.number(node.high)),
    )
    return exp.Coalesce(this=exp.paren(inside), expressions=[exp.false()])


__all__ = ["account_anchor_select", "anchor_select", "buckets_select", "sample_holds"]
