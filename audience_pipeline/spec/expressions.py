"""Parse definition SQL (`where`, `traits`, `having`) with sqlglot into IR expressions.

Only the node types SPEC section 5 lists are accepted; anything else raises ExprError naming the
offending text. The result is IR, so no definition text ever reaches generated SQL as a string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from audience_pipeline.ir import nodes as ir
from audience_pipeline.spec import limits
from audience_pipeline.spec.sql_messages import (
    describe_node,
    function_name,
    parse_error_message,
)

ExprRole = Literal["event_where", "trait_where", "traits", "having"]
# Functions in sqlglot's tree that a user does not write as a function call.
_NODE_WORDS_FIRST = (exp.Cast, exp.TryCast, exp.Case, exp.If, exp.Array, exp.Struct)


class ExprError(ValueError):
    """A definition expression that cannot be accepted; `text` is the offending fragment."""

    def __init__(self, message: str, text: str) -> None:
        super().__init__(message)
        self.message = message
        self.text = text


@dataclass(frozen=True)
class ExprContext:
    """What names mean where the expression stands."""

    role: ExprRole
    allow_parent: bool = False


_CMP: dict[type[exp.Expression], ir.CmpOp] = {
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_ARITH: dict[type[exp.Expression], ir.ArithOp] = {
    exp.Add: "+",
    exp.Sub: "-",
    exp.Mul: "*",
    exp.Div: "/",
    exp.Mod: "%",
}
_FUNCS: dict[type[exp.Expression], ir.FuncName] = {
    exp.Lower: "lower",
    exp.Upper: "upper",
    exp.Length: "length",
    exp.Abs: "abs",
}
_AGGS: dict[type[exp.Expression], ir.AggName] = {
    exp.Sum: "sum",
    exp.Avg: "avg",
    exp.Min: "min",
    exp.Max: "max",
}


def parse_expression(text: str, context: ExprContext) -> ir.Expr:
    """Parse one definition expression into IR, or raise ExprError."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError("expected a non-empty SQL expression", str(text))
    try:
        limits.check_text(text)
        with limits.deep_parse():
            statements = sqlglot.parse(text, dialect="duckdb")
        if len(statements) != 1 or statements[0] is None:
            raise ExprError("expected exactly one expression", text)
        tree = statements[0]
        assert isinstance(tree, exp.Expression)
        limits.check_tree(tree)  # depth and numbers: what every backend can evaluate
    except (ParseError, TokenError) as error:
        raise ExprError(parse_error_message(error), text) from None
    except limits.LimitError as error:
        raise ExprError(str(error), text) from None
    return _Converter(context).convert(tree)


class _Converter:
    def __init__(self, context: ExprContext) -> None:
        self.context = context

    def convert(self, node: exp.Expression) -> ir.Expr:
        result = self._convert(node)
        return result

    def _reject(self, node: exp.Expression, what: str) -> ExprError:
        return ExprError(f"{what} is not allowed", node.sql(dialect="duckdb"))

    def _convert(self, node: exp.Expression) -> ir.Expr:
        """The IR of one SQL node: tried as a value, a condition, arithmetic, then refused."""
        for step in (self._value, self._condition, self._arithmetic):
            converted = step(node)
            if converted is not None:
                return converted
        raise self._refusal(node)

    def _value(self, node: exp.Expression) -> ir.Expr | None:  # noqa: PLR0911
        if isinstance(node, exp.Paren):
            return self._convert(node.this)
        if isinstance(node, exp.Boolean):
            return ir.Lit(bool(node.this))
        if isinstance(node, exp.Null):
            return ir.Lit(None)
        if isinstance(node, exp.Literal):
            if node.is_string:
                return ir.Lit(str(node.this))
            try:
                return ir.Lit(float(node.this))
            except ValueError:
                raise self._reject(node, "this literal") from None
        if isinstance(node, exp.Column | exp.Dot):
            return self._name(node)
        return None

    def _condition(self, node: exp.Expression) -> ir.Expr | None:  # noqa: PLR0911
        if type(node) in _CMP:
            return ir.Cmp(
                _CMP[type(node)], self._convert(node.this), self._convert(node.expression)
            )
        if isinstance(node, exp.And):
            return ir.And((self._convert(node.this), self._convert(node.expression)))
        if isinstance(node, exp.Or):
            return ir.Or((self._convert(node.this), self._convert(node.expression)))
        if isinstance(node, exp.Not):
            return ir.Not(self._convert(node.this))
        if isinstance(node, exp.Is):
            if not isinstance(node.expression, exp.Null):
                raise self._reject(node, "IS with anything but NULL")
            return ir.IsNull(self._convert(node.this))
        if isinstance(node, exp.Like | exp.ILike):
            return self._like(node)
        if isinstance(node, exp.In):
            return self._in(node)
        if isinstance(node, exp.Between):
            arg = self._convert(node.this)
            low = self._convert(node.args["low"])
            high = self._convert(node.args["high"])
            return ir.And((ir.Cmp(">=", arg, low), ir.Cmp("<=", arg, high)))
        return None

    def _arithmetic(self, node: exp.Expression) -> ir.Expr | None:
        if type(node) in _ARITH:
            return ir.Arith(
                _ARITH[type(node)], self._convert(node.this), self._convert(node.expression)
            )
        if isinstance(node, exp.Neg):
            inner = self._convert(node.this)
            if isinstance(inner, ir.Lit) and isinstance(inner.value, float):
                return ir.Lit(-inner.value)
            return ir.Neg(inner)
        if type(node) in _FUNCS:
            return ir.Func(_FUNCS[type(node)], (self._convert(node.this),))
        if isinstance(node, exp.Coalesce):
            args = [node.this, *node.expressions]
            return ir.Func("coalesce", tuple(self._convert(a) for a in args))
        if isinstance(node, exp.Count) or type(node) in _AGGS:
            return self._aggregate(node)
        return None

    def _refusal(self, node: exp.Expression) -> ExprError:
        """Why a node has no IR, worded by what was typed."""
        if isinstance(node, exp.Subquery | exp.Select | exp.Exists | exp.Query):
            return self._reject(node, "a subquery")
        if isinstance(node, exp.Func) and type(node) in _NODE_WORDS_FIRST:
            return self._reject(node, describe_node(node))
        if isinstance(node, exp.Func):
            msg = f"function {function_name(node)}() is not allowed"
            return ExprError(msg, node.sql(dialect="duckdb"))
        if isinstance(node, exp.Star):
            return self._reject(node, "*")
        return self._reject(node, describe_node(node))

    def _like(self, node: exp.Like | exp.ILike) -> ir.Expr:
        pattern = node.expression
        if node.args.get("escape") is not None:
            raise self._reject(node, "LIKE ... ESCAPE")
        if not (isinstance(pattern, exp.Literal) and pattern.is_string):
            raise ExprError("LIKE needs a string literal pattern", node.sql(dialect="duckdb"))
        result: ir.Expr = ir.Like(
            self._convert(node.this), str(pattern.this), isinstance(node, exp.ILike)
        )
        if node.args.get("negate"):
            result = ir.Not(result)
        return result

    def _in(self, node: exp.In) -> ir.Expr:
        if node.args.get("query") is not None or node.args.get("unnest") is not None:
            raise self._reject(node, "a subquery")
        if not node.expressions:
            raise self._reject(node, "IN without a list")
        arg = self._convert(node.this)
        items = [ir.Cmp("=", arg, self._convert(item)) for item in node.expressions]
        result: ir.Expr = items[0] if len(items) == 1 else ir.Or(tuple(items))
        return result

    def _aggregate(self, node: exp.Expression) -> ir.Expr:
        if self.context.role != "having":
            raise ExprError(
                "aggregate functions are only allowed in having", node.sql(dialect="duckdb")
            )
        if isinstance(node, exp.Count):
            inner = node.this
            if inner is None or isinstance(inner, exp.Star):
                return ir.Agg("count_star", None)
            if isinstance(inner, exp.Distinct):
                if len(inner.expressions) != 1:
                    raise self._reject(node, "count(distinct ...) over several values")
                return ir.Agg("count_distinct", self._property(inner.expressions[0], node))
            return ir.Agg("count", self._property(inner, node))
        return ir.Agg(_AGGS[type(node)], self._property(node.this, node))

    def _property(self, node: exp.Expression, whole: exp.Expression) -> ir.Ref:
        if not isinstance(node, exp.Column | exp.Dot):
            msg = "an aggregate takes a property name"
            raise ExprError(msg, whole.sql(dialect="duckdb"))
        ref = self._name(node, in_aggregate=True)
        assert isinstance(ref, ir.Ref)
        if ref.scope not in ("prop", "context"):
            raise ExprError("an aggregate reads event properties only", whole.sql(dialect="duckdb"))
        return ref

    def _name(self, node: exp.Expression, *, in_aggregate: bool = False) -> ir.Expr:
        parts = _name_parts(node)
        if parts is None:
            raise self._reject(node, "this name")
        ctx = self.context
        text = node.sql(dialect="duckdb")
        if ctx.role == "having" and not in_aggregate:
            raise ExprError("having may only use aggregates such as count(*) or sum(p)", text)
        if ctx.role == "traits":
            if parts[0] == "trait" and len(parts) > 1:
                parts = parts[1:]
            return ir.Ref("trait", tuple(parts))
        head = parts[0]
        if head == "trait" and len(parts) > 1:
            return ir.Ref("trait", tuple(parts[1:]))
        if head == "parent" and len(parts) > 1:
            if not ctx.allow_parent:
                raise ExprError("parent. is only allowed in funnel steps after the first", text)
            rest = parts[1:]
            if rest[0] == "context" and len(rest) > 1:
                return ir.Ref("parent_context", tuple(rest[1:]))
            return ir.Ref("parent_prop", tuple(rest))
        if head == "context" and len(parts) > 1:
            return ir.Ref("context", tuple(parts[1:]))
        return ir.Ref("prop", tuple(parts))


def _name_parts(node: exp.Expression) -> list[str] | None:
    if isinstance(node, exp.Column):
        return [p.name for p in node.parts]
    if isinstance(node, exp.Dot):
        left = _name_parts(node.this)
        right = node.expression
        if left is None or not isinstance(right, exp.Identifier):
            return None
        return [*left, right.name]
    if isinstance(node, exp.Identifier):
        return [node.name]
    return None
