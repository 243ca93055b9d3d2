"""IR expressions -> Polars expressions, with SPEC section 5's typing rules.

Each IR node compiles to a `Compiled`: either a statically typed Polars expression (number,
string, boolean or null) or an untyped `Typed` value (a bare name, or coalesce of names) whose
reading the surrounding comparison decides.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, assert_never

import polars as pl

from audience_pipeline.engine.typed import (
    CoalesceValue,
    NullValue,
    Typed,
    float_text,
    null_bool,
)
from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.typing_rules import (
    FUNCTIONS,
    SAME_KIND_READINGS,
    StaticType,
    coalesce_type,
    comparison,
    reading,
)

Resolver = Callable[[ir.Expr], Typed]  # names and aggregates -> their values in this frame


@dataclass(frozen=True)
class Compiled:
    expr: pl.Expr | None  # set when static
    type: StaticType | None  # None: untyped (`value` set)
    value: Typed | None = None

    def read(self, want: StaticType) -> pl.Expr:
        """This value read as `want` (SPEC: the comparison imposes the type)."""
        if self.type is None:
            assert self.value is not None
            return _read_typed(self.value, want)
        assert self.expr is not None
        match reading(self.type, want):
            case "as_is":
                return self.expr
            case "parse_number":
                numeric = self.expr.str.contains(r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$")
                return pl.when(numeric).then(self.expr.cast(pl.Float64, strict=False))
            case "number_text":
                return float_text(self.expr)
        return pl.lit(None, dtype=_DTYPES[want])


_DTYPES: dict[str, pl.DataType] = {
    "num": pl.Float64(),
    "str": pl.String(),
    "bool": pl.Boolean(),
    "null": pl.Null(),
}


def _read_typed(value: Typed, want: StaticType) -> pl.Expr:
    if want == "num":
        return value.num()
    if want == "str":
        return value.text()
    if want == "bool":
        return value.boolean()
    return pl.lit(None)


def compile_predicate(expr: ir.Expr, resolve: Resolver) -> pl.Expr:
    """A boolean expression that is TRUE only where the SQL condition holds (null -> False)."""
    return compile_expr(expr, resolve).read("bool").fill_null(False)


def compile_expr(node: ir.Expr, resolve: Resolver) -> Compiled:  # noqa: PLR0911
    match node:
        case ir.Lit(value=None):
            return Compiled(pl.lit(None), "null")
        case ir.Lit(value=bool() as value):
            return Compiled(pl.lit(value, dtype=pl.Boolean), "bool")
        case ir.Lit(value=float() as value):
            return Compiled(pl.lit(value, dtype=pl.Float64), "num")
        case ir.Lit(value=str() as value):
            return Compiled(pl.lit(value, dtype=pl.String), "str")
        case ir.Lit(value=value):  # an int or other value the parser never makes
            msg = f"literal of unknown type {value!r}"
            raise TypeError(msg)
        case ir.Ref() | ir.Agg():
            return Compiled(None, None, resolve(node))
        case ir.Cmp(op=op, left=left, right=right):
            return Compiled(
                _compare(op, compile_expr(left, resolve), compile_expr(right, resolve)), "bool"
            )
        case ir.And(args=args):
            parts = [compile_expr(a, resolve).read("bool") for a in args]
            return Compiled(_fold(parts, lambda a, b: a & b), "bool")
        case ir.Or(args=args):
            parts = [compile_expr(a, resolve).read("bool") for a in args]
            return Compiled(_fold(parts, lambda a, b: a | b), "bool")
        case ir.Not(arg=arg):
            return Compiled(~compile_expr(arg, resolve).read("bool"), "bool")
        case ir.IsNull(arg=arg):
            inner = compile_expr(arg, resolve)
            if inner.type is None:
                assert inner.value is not None
                return Compiled(inner.value.is_null(), "bool")
            assert inner.expr is not None
            return Compiled(inner.expr.is_null(), "bool")
        case ir.Like(arg=arg, pattern=pattern, case_insensitive=ci):
            text = compile_expr(arg, resolve).read("str")
            return Compiled(text.str.contains(like_regex(pattern, case_insensitive=ci)), "bool")
        case ir.Arith(op=op, left=left, right=right):
            a = compile_expr(left, resolve).read("num")
            b = compile_expr(right, resolve).read("num")
            return Compiled(_arith(op, a, b), "num")
        case ir.Neg(arg=arg):
            return Compiled(-compile_expr(arg, resolve).read("num"), "num")
        case ir.Func(name=name, args=args):
            return _func(name, [compile_expr(a, resolve) for a in args])
    assert_never(node)


def like_regex(pattern: str, *, case_insensitive: bool) -> str:
    """SQL LIKE pattern -> anchored regex (% any run, _ one character; no escape character)."""
    out = []
    for char in pattern:
        if char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    flags = "(?s" + ("i" if case_insensitive else "") + ")"
    return f"{flags}^{''.join(out)}$"


def _fold(parts: list[pl.Expr], op: Callable[[pl.Expr, pl.Expr], pl.Expr]) -> pl.Expr:
    result = parts[0]
    for part in parts[1:]:
        result = op(result, part)
    return result


def _arith(op: ir.ArithOp, a: pl.Expr, b: pl.Expr) -> pl.Expr:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return pl.when(b == 0).then(None).otherwise(a / b)
    # C / DuckDB fmod: the result takes the dividend's sign.
    return pl.when(b == 0).then(None).otherwise(a - b * (a / b).cast(pl.Float64).truncate())


def _cmp(op: ir.CmpOp, a: pl.Expr, b: pl.Expr) -> pl.Expr:
    if op == "=":
        return a == b
    if op == "<>":
        return a != b
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _compare(op: ir.CmpOp, left: Compiled, right: Compiled) -> pl.Expr:
    how = comparison(left.type, right.type)
    if how == "null":
        return null_bool()
    if how == "by_kinds":
        return _compare_untyped(op, left.value, right.value)  # type: ignore[arg-type]
    return _cmp(op, left.read(how), right.read(how))


def _compare_untyped(op: ir.CmpOp, left: Typed, right: Typed) -> pl.Expr:
    """Two names: compared where both hold the same JSON type (`SAME_KIND_READINGS`); else null."""
    lk, rk = left.kind(), right.kind()
    cases = [
        ((lk == kind) & (rk == kind), _cmp(op, _read_typed(left, want), _read_typed(right, want)))
        for kind, want in SAME_KIND_READINGS
    ]
    chain: Any = pl.when(cases[0][0]).then(cases[0][1])
    for holds, value in cases[1:]:
        chain = chain.when(holds).then(value)
    return chain.otherwise(null_bool())


_FUNCTIONS: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "lower": lambda e: e.str.to_lowercase(),
    "upper": lambda e: e.str.to_uppercase(),
    "length": lambda e: e.str.len_chars().cast(pl.Float64),
    "abs": lambda e: e.abs(),
}


def _func(name: ir.FuncName, args: list[Compiled]) -> Compiled:
    if name in FUNCTIONS:
        takes, returns = FUNCTIONS[name]
        return Compiled(_FUNCTIONS[name](args[0].read(takes)), returns)
    # coalesce: typed when any argument has a static type, else untyped over the names.
    want = coalesce_type([a.type for a in args])
    if want is None:
        values = [a.value if a.value is not None else NullValue() for a in args]
        return Compiled(None, None, CoalesceValue(values))
    return Compiled(pl.coalesce([a.read(want) for a in args]), want)
