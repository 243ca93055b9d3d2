"""IR expressions -> sqlglot expressions, with SPEC section 5's typing rules.

The decisions come from `ir.typing_rules`, as the Polars engine's do; here they are rendered as
SQL. Each IR node compiles to a `Compiled`, either statically typed (number, string, boolean,
null) or an untyped `Typed` value (a bare name, or coalesce of names) whose reading the
surrounding comparison decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

from sqlglot import exp

from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.typing_rules import (
    FUNCTIONS,
    SAME_KIND_READINGS,
    StaticType,
    coalesce_type,
    comparison,
    reading,
)
from audience_pipeline.sql.dialects import SqlDialect
from audience_pipeline.sql.typed import (
    CoalesceValue,
    NullValue,
    Typed,
    case,
    is_numeric_text,
    lit,
    null_bool,
    null_of,
    number_text,
)

Resolver = Callable[[ir.Expr], Typed]  # names and aggregates -> their values in this relation


@dataclass(frozen=True)
class Compiled:
    dialect: SqlDialect
    expr: exp.Expr | None  # set when static
    type: StaticType | None  # None: untyped (`value` set)
    value: Typed | None = None

    def read(self, want: StaticType) -> exp.Expr:
        """This value read as `want` (SPEC: the comparison imposes the type)."""
        d = self.dialect
        if self.type is None:
            assert self.value is not None
            return _read_typed(self.value, want)
        assert self.expr is not None
        match reading(self.type, want):
            case "as_is":
                return self.expr.copy()
            case "parse_number":
                return case((is_numeric_text(d, self.expr.copy()), d.to_double(self.expr.copy())))
            case "number_text":
                return number_text(d, self.expr.copy())
        return _null(d, want)


def _null(d: SqlDialect, want: StaticType) -> exp.Expr:
    types = {"num": d.double_type, "str": d.text_type, "bool": "BOOLEAN"}
    return null_of(d, types[want]) if want in types else exp.null()


def _read_typed(value: Typed, want: StaticType) -> exp.Expr:
    if want == "num":
        return value.num()
    if want == "str":
        return value.text()
    if want == "bool":
        return value.boolean()
    return exp.null()


def compile_predicate(dialect: SqlDialect, expr: ir.Expr, resolve: Resolver) -> exp.Expr:
    """A boolean expression that is TRUE only where the SQL condition holds (never null)."""
    inner = compile_expr(dialect, expr, resolve).read("bool")
    return exp.Coalesce(this=inner, expressions=[exp.false()])


def compile_expr(d: SqlDialect, node: ir.Expr, resolve: Resolver) -> Compiled:  # noqa: PLR0911
    match node:
        case ir.Lit(value=None):
            return Compiled(d, exp.null(), "null")
        case ir.Lit(value=bool() as value):
            return Compiled(d, exp.true() if value else exp.false(), "bool")
        case ir.Lit(value=float() as value):
            return Compiled(d, _number(d, value), "num")
        case ir.Lit(value=str() as value):
            return Compiled(d, lit(value), "str")
        case ir.Lit(value=value):  # an int or other value the parser never makes
            msg = f"literal of unknown type {value!r}"
            raise TypeError(msg)
        case ir.Ref() | ir.Agg():
            return Compiled(d, None, None, resolve(node))
        case ir.Cmp(op=op, left=left, right=right):
            return Compiled(
                d, _compare(d, op, compile_expr(d, left, resolve), compile_expr(d, right, resolve)),
                "bool",
            )  # fmt: skip
        case ir.And(args=args):
            parts = [compile_expr(d, a, resolve).read("bool") for a in args]
            return Compiled(d, exp.and_(*parts, wrap=True), "bool")
        case ir.Or(args=args):
            parts = [compile_expr(d, a, resolve).read("bool") for a in args]
            return Compiled(d, exp.paren(exp.or_(*parts, wrap=True), copy=False), "bool")
        case ir.Not(arg=arg):
            return Compiled(d, exp.not_(compile_expr(d, arg, resolve).read("bool")), "bool")
        case ir.IsNull(arg=arg):
            inner = compile_expr(d, arg, resolve)
            if inner.type is None:
                assert inner.value is not None
                return Compiled(d, inner.value.is_null(), "bool")
            assert inner.expr is not None
            return Compiled(d, exp.Is(this=_operand(inner.expr), expression=exp.null()), "bool")
        case ir.Like(arg=arg, pattern=pattern, case_insensitive=ci):
            text = compile_expr(d, arg, resolve).read("str")
            return Compiled(d, _like(d, text, pattern, case_insensitive=ci), "bool")
        case ir.Arith(op=op, left=left, right=right):
            a = compile_expr(d, left, resolve).read("num")
            b = compile_expr(d, right, resolve).read("num")
            return Compiled(d, _arith(d, op, a, b), "num")
        case ir.Neg(arg=arg):
            return Compiled(d, exp.Neg(this=exp.paren(compile_expr(d, arg, resolve).read("num"))),
                            "num")  # fmt: skip
        case ir.Func(name=name, args=args):
            return _func(d, name, [compile_expr(d, a, resolve) for a in args])
    assert_never(node)


def _number(d: SqlDialect, value: float) -> exp.Expr:
    # Always a double: a bare 1.5 is a DECIMAL in DuckDB and Postgres, whose division differs.
    text = repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    literal = exp.Literal.number(text.lstrip("-"))
    number = d.to_double(literal)
    return exp.Neg(this=number) if text.startswith("-") else number


def _like(d: SqlDialect, text: exp.Expr, pattern: str, *,
          case_insensitive: bool) -> exp.Expr:  # fmt: skip
    # SPEC: no escape character. Doubling backslashes under ESCAPE '\' makes them literal in
    # every engine (BigQuery always escapes with a backslash, so it needs no clause).
    escaped = lit(pattern.replace("\\", "\\\\"))
    node: exp.Expr
    if case_insensitive:
        node = exp.ILike(this=text, expression=escaped)
    else:
        node = exp.Like(this=text, expression=escaped)
    if d.like_escape_clause:
        node = exp.Escape(this=node, expression=lit("\\"))
    return node


def _wrap(node: exp.Expr) -> exp.Expr:
    """Parenthesize an operand unless it is atomic (a column, literal, cast or function call)."""
    if isinstance(node, exp.Column | exp.Literal | exp.Cast | exp.Func | exp.Paren):
        return node
    return exp.paren(node)


def _arith(d: SqlDialect, op: ir.ArithOp, a: exp.Expr, b: exp.Expr) -> exp.Expr:
    pa, pb = _wrap(a), _wrap(b)
    if op == "+":
        return exp.Add(this=pa, expression=pb)
    if op == "-":
        return exp.Sub(this=pa, expression=pb)
    if op == "*":
        return exp.Mul(this=pa, expression=pb)
    zero = exp.EQ(this=pb.copy(), expression=d.to_double(exp.Literal.number(0)))
    if op == "/":
        return case((zero, null_of(d, d.double_type)),
                    default=exp.Div(this=pa, expression=pb, typed=False, safe=False))  # fmt: skip
    # C / DuckDB fmod: the result takes the dividend's sign; a - b * trunc(a / b), with trunc
    # spelled SIGN * FLOOR(ABS) so that every engine has it.
    quotient = exp.paren(exp.Div(this=pa.copy(), expression=pb.copy(), typed=False, safe=False))
    truncated = exp.Mul(
        this=exp.Sign(this=quotient.copy()), expression=exp.Floor(this=exp.Abs(this=quotient))
    )
    remainder = exp.Sub(this=pa.copy(), expression=exp.Mul(this=pb.copy(), expression=truncated))
    return case((zero, null_of(d, d.double_type)), default=remainder)


def _cmp(op: ir.CmpOp, a: exp.Expr, b: exp.Expr) -> exp.Expr:
    kinds: dict[str, type[exp.Binary]] = {
        "=": exp.EQ, "<>": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE,
    }  # fmt: skip
    return kinds[op](this=_operand(a), expression=_operand(b))


def _operand(node: exp.Expr) -> exp.Expr:
    """Parenthesize a boolean operand (`(a AND b) = FALSE`, `(n > 1) = TRUE`): SQL would
    otherwise bind the comparison to its last term, or reject a chained comparison."""
    if isinstance(node, exp.Predicate | exp.Connector | exp.Not | exp.Escape):
        return exp.paren(node, copy=False)
    return node


def _compare(d: SqlDialect, op: ir.CmpOp, left: Compiled, right: Compiled) -> exp.Expr:
    how = comparison(left.type, right.type)
    if how == "null":
        return null_bool(d)
    if how == "by_kinds":
        assert left.value is not None and right.value is not None
        return _compare_untyped(d, op, left.value, right.value)
    return _cmp(op, left.read(how), right.read(how))


def _compare_untyped(d: SqlDialect, op: ir.CmpOp, left: Typed, right: Typed) -> exp.Expr:
    """Two names: compared where both hold the same JSON type (`SAME_KIND_READINGS`)."""

    def both(kind: str) -> exp.Expr:
        return exp.and_(
            exp.EQ(this=left.kind(), expression=lit(kind)),
            exp.EQ(this=right.kind(), expression=lit(kind)),
        )

    cases = [
        (both(kind), _cmp(op, _read_typed(left, want), _read_typed(right, want)))
        for kind, want in SAME_KIND_READINGS
    ]
    return case(*cases, default=null_bool(d))


_FUNCTIONS: dict[str, Callable[[SqlDialect, exp.Expr], exp.Expr]] = {
    "lower": lambda d, e: exp.Lower(this=e),
    "upper": lambda d, e: exp.Upper(this=e),
    "length": lambda d, e: d.to_double(exp.Length(this=e)),
    "abs": lambda d, e: exp.Abs(this=e),
}


def _func(d: SqlDialect, name: ir.FuncName, args: list[Compiled]) -> Compiled:
    if name in FUNCTIONS:
        takes, returns = FUNCTIONS[name]
        return Compiled(d, _FUNCTIONS[name](d, args[0].read(takes)), returns)
    # coalesce: typed when any argument has a static type, else untyped over the names.
    want = coalesce_type([a.type for a in args])
    if want is None:
        values = [a.value if a.value is not None else NullValue(d) for a in args]
        return Compiled(d, None, None, CoalesceValue(d, values))
    parts = [a.read(want) for a in args]
    return Compiled(d, exp.Coalesce(this=parts[0], expressions=parts[1:]), want)
