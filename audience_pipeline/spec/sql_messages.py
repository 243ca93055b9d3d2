"""Messages about definition SQL in the user's words: no sqlglot class names.

sqlglot says "Required keyword: 'expression' missing for <class 'sqlglot...EQ'>" or names a node
class ("Bracket", "DPipe"); a user wrote `=`, `a[1]` or `||`.
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

# What a node is called in a message: the syntax the user typed, not the class.
_NODE_WORDS: dict[type[exp.Expression], str] = {
    exp.Bracket: "indexing with [...]",
    exp.DPipe: "|| (string concatenation)",
    exp.Interval: "INTERVAL",
    exp.Tuple: "a tuple (a, b)",
    exp.Placeholder: "a placeholder",
    exp.Parameter: "a parameter",
    exp.Cast: "a cast",
    exp.TryCast: "a cast",
    exp.Case: "CASE",
    exp.If: "IF",
    exp.Array: "an array",
    exp.Struct: "a struct",
    exp.Window: "a window function",
    exp.Distinct: "DISTINCT",
    exp.Lambda: "a lambda",
    exp.Anonymous: "this function",
}
_MISSING = re.compile(r"Required keyword: '\w+' missing for <class '[\w.]*\.(\w+)'>")


def describe_node(node: exp.Expression) -> str:
    """`indexing with [...]`, `|| (string concatenation)`, ... or the node's SQL keyword."""
    for kind, words in _NODE_WORDS.items():
        if isinstance(node, kind):
            return words
    key = getattr(node, "key", "") or "this expression"
    return key.replace("_", " ").upper() if len(key) <= 12 else "this expression"


def function_name(node: exp.Func) -> str:
    """The function's name as written (`foo` for an unknown `foo(x)`)."""
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return str(node.sql_name()).lower()


def parse_error_message(error: ParseError | TokenError) -> str:
    """`invalid SQL at column 8: '=' needs a value on its right` and the like."""
    if isinstance(error, TokenError):
        return "invalid SQL: unterminated string or unknown character"
    details = error.errors[0] if error.errors else {}
    column = details.get("col")
    where = f" at column {column}" if column else ""
    description = str(details.get("description") or str(error).splitlines()[0])
    token = details.get("highlight")
    if _MISSING.search(description):
        what = f"{token!r} needs a value on its right" if token else "an operand is missing"
        return f"invalid SQL{where}: {what}"
    if description.startswith("Expecting "):
        return f"invalid SQL{where}: expected {description.removeprefix('Expecting ')}"
    if "Unexpected token" in description:
        return f"invalid SQL{where}: unexpected {token!r}" if token else f"invalid SQL{where}"
    return f"invalid SQL{where}: {re.sub(r'<class [^>]*>', 'an expression', description)}"


__all__ = ["describe_node", "function_name", "parse_error_message"]
