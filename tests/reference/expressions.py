"""A slow, literal evaluator of the SPEC section 5 expression language.

sqlglot only parses; every node is evaluated here by hand. Values are plain JSON values
(``None``, ``bool``, ``int``/``float``, ``str``, ``dict``, ``list``). Typing follows the lead's
settled interpretation 3: a comparison side with a definite static type makes the other side read
its names as that type; two untyped sides compare by their JSON kinds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlglot
from sqlglot import exp

from tests.reference.jsonvals import NUMERIC_STRING, number_text

NUMBER = "number"
STRING = "string"
BOOLEAN = "boolean"

Path = tuple[str, ...]
Resolver = Callable[[Path], Any]
Aggregator = Callable[[exp.Expression], Any]

_COMPARISONS: dict[type[exp.Expression], Callable[[Any, Any], bool]] = {
    exp.EQ: lambda a, b: a == b,
    exp.NEQ: lambda a, b: a != b,
    exp.GT: lambda a, b: a > b,
    exp.GTE: lambda a, b: a >= b,
    exp.LT: lambda a, b: a < b,
    exp.LTE: lambda a, b: a <= b,
}
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)
_AGGREGATES = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max)
_BOOLEAN_NODES = (
    *_COMPARISONS,
    exp.And,
    exp.Or,
    exp.Not,
    exp.Is,
    exp.In,
    exp.Between,
    exp.Like,
    exp.ILike,
    exp.Boolean,
)


class ExpressionError(ValueError):
    """An expression outside the supported grammar."""


@dataclass(frozen=True)
class Env:
    """What names and aggregates mean while evaluating one expression."""

    resolve: Resolver
    aggregate: Aggregator | None = None


@lru_cache(maxsize=4096)
def parse(text: str, *, aggregates: bool = False) -> exp.Expression:
    """Parse ``text`` (DuckDB syntax) and reject anything outside the grammar.

    Args:
        text: the SQL boolean expression as written in a definition.
        aggregates: allow ``count/sum/avg/min/max`` (``having`` only); names are then only
            allowed inside aggregates.

    Returns:
        The sqlglot AST.

    Raises:
        ExpressionError: unparseable text or an unsupported construct.
    """
    try:
        tree = sqlglot.parse_one(text, dialect="duckdb")
    except sqlglot.errors.ParseError as err:
        msg = f"cannot parse expression {text!r}: {err}"
        raise ExpressionError(msg) from err
    if not isinstance(tree, exp.Expression):
        msg = f"not an expression: {text!r}"
        raise ExpressionError(msg)
    _check(tree, text, aggregates=aggregates, inside_aggregate=False)
    return tree


def _check(node: exp.Expression, text: str, *, aggregates: bool, inside_aggregate: bool) -> None:
    def bad(what: str) -> ExpressionError:
        return ExpressionError(f"unsupported {what} in expression {text!r}: {node.sql()}")

    if is_name(node):
        if aggregates and not inside_aggregate:
            raise bad("bare name in having")
        return
    if isinstance(node, _AGGREGATES):
        if not aggregates or inside_aggregate:
            raise bad("aggregate")
        arg = node.this
        if isinstance(node, exp.Count) and isinstance(arg, exp.Star):
            return
        if isinstance(node, exp.Count) and isinstance(arg, exp.Distinct):
            if len(arg.expressions) != 1 or not is_name(arg.expressions[0]):
                raise bad("count(distinct ...)")
            return
        if not is_name(arg) or node.expressions:
            raise bad("aggregate argument")
        return
    if isinstance(node, exp.Is) and not isinstance(node.expression, exp.Null):
        raise bad("IS")
    if isinstance(node, exp.In) and (node.args.get("query") or node.args.get("unnest")):
        raise bad("IN subquery")
    if isinstance(node, exp.Like | exp.ILike) and node.args.get("escape"):
        raise bad("ESCAPE")
    allowed = (
        *_BOOLEAN_NODES,
        *_ARITHMETIC,
        exp.Literal,
        exp.Null,
        exp.Paren,
        exp.Neg,
        exp.Lower,
        exp.Upper,
        exp.Length,
        exp.Abs,
        exp.Coalesce,
    )
    if not isinstance(node, allowed):
        raise bad(type(node).__name__)
    for child in _children(node):
        _check(child, text, aggregates=aggregates, inside_aggregate=inside_aggregate)


def _children(node: exp.Expression) -> list[exp.Expression]:
    out: list[exp.Expression] = []
    for value in node.args.values():
        if isinstance(value, exp.Expression):
            out.append(value)
        elif isinstance(value, list):
            out.extend(v for v in value if isinstance(v, exp.Expression))
    return out


def is_name(node: exp.Expression) -> bool:
    """Whether ``node`` is a (possibly dotted) name."""
    return isinstance(node, exp.Column) or (isinstance(node, exp.Dot) and is_name(node.this))


def name_path(node: exp.Expression) -> Path:
    """The dotted name as its parts: ``context.device.type`` -> (context, device, type)."""
    if isinstance(node, exp.Column):
        return tuple(part.name for part in node.parts)
    if isinstance(node, exp.Dot):
        return (*name_path(node.this), node.expression.name)
    msg = f"not a name: {node.sql()}"
    raise ExpressionError(msg)


def lookup(value: Any, path: Path) -> Any:
    """Walk nested objects; a missing key or a non-object on the way gives None."""
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def static_type(node: exp.Expression) -> str | None:
    """The definite type of an expression, or None for names, NULL and name-only coalesces."""
    if isinstance(node, exp.Paren):
        return static_type(node.this)
    if is_name(node) or isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Literal):
        return STRING if node.is_string else NUMBER
    if isinstance(node, _BOOLEAN_NODES):
        return BOOLEAN
    if isinstance(node, (*_ARITHMETIC, exp.Neg, exp.Length, exp.Abs, *_AGGREGATES)):
        return NUMBER
    if isinstance(node, exp.Lower | exp.Upper):
        return STRING
    if isinstance(node, exp.Coalesce):
        # The first argument with a definite type types the whole coalesce.
        for arg in _coalesce_args(node):
            found = static_type(arg)
            if found is not None:
                return found
        return None
    msg = f"unsupported node {type(node).__name__}"
    raise ExpressionError(msg)


def _coalesce_args(node: exp.Expression) -> list[exp.Expression]:
    return [node.this, *node.expressions]


def to_float(value: int | float) -> float:
    """A JSON number as float64 (huge integers saturate to infinity)."""
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def read(value: Any, want: str) -> Any:
    """Read a JSON value as ``want`` (number, string or boolean); None when it cannot be."""
    if value is None:
        return None
    if want == NUMBER:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return to_float(value)
        if isinstance(value, str) and NUMERIC_STRING.fullmatch(value):
            return float(value)
        return None
    if want == STRING:
        if isinstance(value, bool):
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, int | float):
            return number_text(value)
        return None
    if want == BOOLEAN:
        return value if isinstance(value, bool) else None
    msg = f"unknown type {want}"
    raise ExpressionError(msg)


def kind_of(value: Any) -> str | None:
    """The JSON kind of a value for name-vs-name comparisons."""
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int | float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    return None


def holds(node: exp.Expression, env: Env) -> bool:
    """Whether a boolean expression is TRUE (null and false both fail)."""
    return value(node, BOOLEAN, env) is True


def value(node: exp.Expression, want: str | None, env: Env) -> Any:
    """Evaluate ``node``; with ``want`` set, the result is read as that type.

    With ``want`` None, names give their raw JSON value and typed nodes their own type.
    """
    if isinstance(node, exp.Paren):
        return value(node.this, want, env)
    if isinstance(node, exp.Null):
        return None
    if is_name(node):
        raw = env.resolve(name_path(node))
        return raw if want is None else read(raw, want)
    if isinstance(node, exp.Coalesce):
        wanted = want if want is not None else static_type(node)
        for arg in _coalesce_args(node):
            got = value(arg, wanted, env)
            if got is not None:
                return got
        return None
    own = static_type(node)
    result = _typed(node, env)
    if want is None or want == own:
        return result
    return read(result, want)


def _typed(node: exp.Expression, env: Env) -> Any:
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else float(node.this)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, tuple(_COMPARISONS)):
        return compare(type(node), node.this, node.expression, env)
    if isinstance(node, exp.And | exp.Or):
        return _logic(node, env)
    if isinstance(node, exp.Not):
        inner = value(node.this, BOOLEAN, env)
        return None if inner is None else not inner
    if isinstance(node, exp.Is):
        return value(node.this, None, env) is None
    if isinstance(node, exp.In):
        return kleene_or(compare(exp.EQ, node.this, item, env) for item in node.expressions)
    if isinstance(node, exp.Between):
        low = compare(exp.GTE, node.this, node.args["low"], env)
        high = compare(exp.LTE, node.this, node.args["high"], env)
        return kleene_and([low, high])
    if isinstance(node, exp.Like | exp.ILike):
        result = _like(node, env)
        if node.args.get("negate"):
            return None if result is None else not result
        return result
    if isinstance(node, _ARITHMETIC):
        return _arithmetic(node, env)
    if isinstance(node, exp.Neg):
        operand = value(node.this, NUMBER, env)
        return None if operand is None else -operand
    if isinstance(node, exp.Abs):
        operand = value(node.this, NUMBER, env)
        return None if operand is None else abs(operand)
    if isinstance(node, exp.Length):
        text = value(node.this, STRING, env)
        return None if text is None else float(len(text))
    if isinstance(node, exp.Lower):
        text = value(node.this, STRING, env)
        return None if text is None else text.lower()
    if isinstance(node, exp.Upper):
        text = value(node.this, STRING, env)
        return None if text is None else text.upper()
    if isinstance(node, _AGGREGATES):
        if env.aggregate is None:
            msg = f"aggregate outside having: {node.sql()}"
            raise ExpressionError(msg)
        return env.aggregate(node)
    msg = f"unsupported node {type(node).__name__}: {node.sql()}"
    raise ExpressionError(msg)


def compare(
    op: type[exp.Expression], left: exp.Expression, right: exp.Expression, env: Env
) -> bool | None:
    """``left op right`` with SPEC typing; None when not comparable or either side is null."""
    left_type, right_type = static_type(left), static_type(right)
    if left_type is not None and right_type is not None and left_type != right_type:
        return None  # DECISIONS: two sides of different definite types never compare
    common = left_type or right_type
    if common is None:
        a, b = value(left, None, env), value(right, None, env)
        kind_a, kind_b = kind_of(a), kind_of(b)
        if kind_a is None or kind_a != kind_b:
            return None
        a, b = read(a, kind_a), read(b, kind_a)
    else:
        a, b = value(left, common, env), value(right, common, env)
    if a is None or b is None:
        return None
    return _COMPARISONS[op](a, b)


def kleene_and(values: Any) -> bool | None:
    """SQL AND over already evaluated operands."""
    result: bool | None = True
    for item in values:
        if item is False:
            return False
        if item is None:
            result = None
    return result


def kleene_or(values: Any) -> bool | None:
    """SQL OR over already evaluated operands."""
    result: bool | None = False
    for item in values:
        if item is True:
            return True
        if item is None:
            result = None
    return result


def _logic(node: exp.Expression, env: Env) -> bool | None:
    # Both sides are always evaluated; evaluation has no side effects, so this is only clarity.
    left = value(node.this, BOOLEAN, env)
    right = value(node.expression, BOOLEAN, env)
    if isinstance(node, exp.And):
        return kleene_and([left, right])
    return kleene_or([left, right])


def like_regex(pattern: str) -> re.Pattern[str]:
    """LIKE pattern -> regex: ``%`` any run, ``_`` one character, no escape character."""
    parts = []
    for char in pattern:
        if char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def _like(node: exp.Expression, env: Env) -> bool | None:
    text = value(node.this, STRING, env)
    pattern = value(node.expression, STRING, env)
    if text is None or pattern is None:
        return None
    if isinstance(node, exp.ILike):
        text, pattern = text.lower(), pattern.lower()
    return like_regex(pattern).fullmatch(text) is not None


def _arithmetic(node: exp.Expression, env: Env) -> float | None:
    a = value(node.this, NUMBER, env)
    b = value(node.expression, NUMBER, env)
    if a is None or b is None:
        return None
    try:
        if isinstance(node, exp.Add):
            return a + b
        if isinstance(node, exp.Sub):
            return a - b
        if isinstance(node, exp.Mul):
            return a * b
        if b == 0:
            return None
        if isinstance(node, exp.Div):
            return a / b
        return math.fmod(a, b)
    except OverflowError:
        return math.inf if (a >= 0) == (b >= 0) else -math.inf
