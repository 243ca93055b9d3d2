"""Limits that keep every accepted definition evaluable: expression depth, numbers, durations.

`validate` must reject what `compute` cannot evaluate. Deeply nested expressions overflow the
recursive passes over them (sqlglot's parser, our IR converter, both engines, SQL generation);
``1e400`` is no double; a window of 10^20 days is no timestamp arithmetic. The limits below are
far beyond hand-written definitions and well inside what every backend evaluates (a test runs
an expression at the limit through both engines and every SQL dialect).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sqlglot import exp

# Levels of nodes (AND, OR, NOT, comparisons, arithmetic, functions, names, literals) from the
# top of one expression to its deepest leaf; parentheses do not count. `price > 1` is two
# levels, `NOT price > 1` three, `a = 1 AND b = 2 AND c = 3` four: a long chain of ANDs is deep.
MAX_EXPRESSION_DEPTH = 64
# Parentheses nested in the text, checked before parsing (sqlglot's parser recurses ~25 Python
# frames per parenthesis); a raised recursion limit covers the parse below it.
MAX_PARENTHESES = 200
_PARSE_RECURSION_LIMIT = 20_000
# 10,000 years: windows stay inside timestamp arithmetic in microseconds (int64 spans
# +-292,000 years) from any as-of in years 1 to 9999.
MAX_DURATION_SECONDS = 10_000 * 365 * 86_400


class LimitError(ValueError):
    """A definition beyond a limit; the message says which and what to do."""


def check_text(text: str) -> None:
    """Before parsing: parentheses nested deeper than any parse can follow.

    Raises:
        LimitError: more than MAX_PARENTHESES levels of parentheses.
    """
    depth = deepest = 0
    quote: str | None = None
    for char in text:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    if deepest > MAX_PARENTHESES:
        msg = f"parentheses nested {deepest} deep; at most {MAX_PARENTHESES}"
        raise LimitError(msg)


@contextmanager
def deep_parse() -> Iterator[None]:
    """Room for sqlglot's recursive parser on text that passed :func:`check_text`.

    Python 3.11+ runs Python-to-Python calls without growing the C stack, so a higher limit
    for the parse only is safe; it is restored right after.
    """
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, _PARSE_RECURSION_LIMIT))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def check_tree(tree: exp.Expression) -> None:
    """After parsing: operator depth and numeric literals.

    Raises:
        LimitError: deeper than MAX_EXPRESSION_DEPTH, or a number no double can hold.
    """
    stack: list[tuple[exp.Expression, int]] = [(tree, 1)]
    deepest = 0
    while stack:
        node, depth = stack.pop()
        if isinstance(node, exp.Literal) and not node.is_string:
            _check_number(node.this)
        if not isinstance(node, exp.Paren | exp.Identifier):
            deepest = max(deepest, depth)
            depth += 1
        stack.extend((child, depth) for child in node.iter_expressions())
    if deepest > MAX_EXPRESSION_DEPTH:
        msg = (
            f"expression nested {deepest} levels deep; at most {MAX_EXPRESSION_DEPTH} "
            "(use IN (...) for long lists of values, or split it into several conditions "
            "under all:/any:)"
        )
        raise LimitError(msg)


def _check_number(text: str) -> None:
    try:
        value = float(text)
    except ValueError:
        return  # not a number literal the converter accepts; it says so itself
    if not math.isfinite(value):
        msg = "number out of range (beyond a double, about 1.8e308)"
        raise LimitError(msg)


def check_duration(seconds: int) -> None:
    """Raises:
    LimitError: a duration longer than MAX_DURATION_SECONDS (10,000 years)."""
    if seconds > MAX_DURATION_SECONDS:
        msg = f"a duration is at most {MAX_DURATION_SECONDS // 86_400}d (10,000 years)"
        raise LimitError(msg)
