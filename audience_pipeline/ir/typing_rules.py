"""SPEC section 5's typing rules as decisions, shared by every backend (a neutral IR pass).

A compiled expression is either statically typed (`StaticType`) or untyped (a bare name, or
coalesce of names: its type is each row's JSON type). These functions decide how a value is read
where an operator needs a type, how a comparison reads its two sides, and what a function takes
and returns. The Polars engine (`engine.expressions`) and the SQL backend (`sql.expressions`)
each render the decision in their own terms; neither decides again.
"""

from __future__ import annotations

from typing import Literal

StaticType = Literal["num", "str", "bool", "null"]

# How a statically typed value is read as another type (`reading`).
Reading = Literal["as_is", "null", "parse_number", "number_text"]

# How a comparison reads its sides: both as one static type, by each row's JSON types (two
# untyped names), or not at all (the comparison is NULL).
Comparison = Literal["num", "str", "bool", "by_kinds", "null"]

# Two untyped names compare only where both hold the same JSON type: (kind tag, read as).
# The kind tags are those of `values.flat_tag` (n: number, s: string, b: boolean).
SAME_KIND_READINGS: tuple[tuple[str, StaticType], ...] = (("n", "num"), ("s", "str"), ("b", "bool"))

# Scalar functions: the type each argument is read as, and the result's type. `coalesce` is
# decided by `coalesce_type`.
FUNCTIONS: dict[str, tuple[StaticType, StaticType]] = {
    "lower": ("str", "str"),
    "upper": ("str", "str"),
    "length": ("str", "num"),
    "abs": ("num", "num"),
}


def reading(have: StaticType, want: StaticType) -> Reading:
    """A `have` value read as `want` (SPEC: the operator or comparison imposes the type): itself,
    a number parsed from numeric text (else null), a number's text, or null."""
    if have == want:
        return "as_is"
    if have == "null":
        return "null"
    if want == "num" and have == "str":
        return "parse_number"
    if want == "str" and have == "num":
        return "number_text"
    return "null"


def comparison(left: StaticType | None, right: StaticType | None) -> Comparison:
    """How `left <op> right` reads its sides (None: an untyped side)."""
    if left == "null" or right == "null":
        return "null"
    if left is None and right is None:
        return "by_kinds"
    if left is None or right is None:
        # An untyped name takes the other side's type.
        want = left or right
        assert want is not None
        return want
    if left == right:
        return left
    if {left, right} == {"num", "str"}:
        return "num"
    return "null"  # a boolean against a string or number


def coalesce_type(types: list[StaticType | None]) -> StaticType | None:
    """coalesce(...): the first argument's static type that is not null, read for every argument;
    None (untyped, over the names) when no argument has one."""
    static = [t for t in types if t not in (None, "null")]
    return static[0] if static else None
