"""A recursive-descent parser for Segment's audience query language.

    query      := or
    or         := and ("OR" and)*
    and        := unary ("AND" unary)*
    unary      := ("NOT" | "ANY" | "ALL") unary | comparison
    comparison := primary [OP primary]
    primary    := "(" or ")" | "{" or "}" | chain | literal | "[" list "]" | NUMBER UNIT
    chain      := EXTRACTOR "(" args ")" ("." NAME "(" args ")")*
    args       := [arg ("," arg)*]          arg := [NAME ":"] or ["as" NAME]

A chain ending in a comparator call (``.exists()``, ``.one_of(...)``) becomes a Compare, as
the comparison sugar does. Keywords are case-insensitive; an unquoted event name
(``event(Shoes Bought)``, as older pages show it) is read as its words joined by spaces.
"""

from __future__ import annotations

from audience_pipeline.segment_import.lexer import QuerySyntaxError, Token, tokenize
from audience_pipeline.segment_import.nodes import (
    EXTRACTORS,
    TIME_UNITS,
    Arg,
    Call,
    Chain,
    Compare,
    Duration,
    Junction,
    ListValue,
    Literal,
    Negation,
    Node,
    Quantified,
)

COMPARATORS = {
    "equals": "=", "eq": "=", "differs": "!=", "neq": "!=", "greater_than": ">", "gt": ">",
    "at_least": ">=", "gte": ">=", "less_than": "<", "lt": "<", "at_most": "<=", "lte": "<=",
    "absent": "absent", "is_null": "absent", "exists": "exists", "is_set": "exists",
    "contains": "contains", "contains_one": "contains", "omits": "omits",
    "starts_with": "starts_with", "ends_with": "ends_with", "one_of": "one_of",
    "before_date": "before_date", "after_date": "after_date", "within_last": "within_last",
    "within_next": "within_next", "before_last": "before_last", "after_next": "after_next",
}  # fmt: skip
SUGAR = {"==": "=", "=": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
LITERAL_WORDS = {"true": True, "false": False, "null": None}


class Parser:
    def __init__(self, query: str) -> None:
        self.tokens = tokenize(query)
        self.index = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.token
        self.index += 1
        return token

    def expect(self, text: str) -> Token:
        if self.token.text != text or self.token.kind not in ("punct", "op"):
            found = self.token.text or "the end"
            raise QuerySyntaxError(f"expected {text!r}, found {found!r}", self.token.position)
        return self.advance()

    def at(self, text: str) -> bool:
        return self.token.kind == "punct" and self.token.text == text

    # --- boolean structure ---------------------------------------------------------------

    def parse(self) -> Node:
        node = self.or_()
        if self.token.kind != "end":
            raise QuerySyntaxError(f"unexpected {self.token.text!r}", self.token.position)
        return node

    def or_(self) -> Node:
        items = [self.and_()]
        while self.token.is_word("or"):
            self.advance()
            items.append(self.and_())
        return items[0] if len(items) == 1 else Junction("or", tuple(items))

    def and_(self) -> Node:
        items = [self.unary()]
        while self.token.is_word("and"):
            self.advance()
            items.append(self.unary())
        return items[0] if len(items) == 1 else Junction("and", tuple(items))

    def unary(self) -> Node:
        if self.token.is_word("not"):
            self.advance()
            return Negation(self.unary())
        if self.token.is_word("any", "all"):
            kind = self.advance().text.lower()
            return Quantified(kind, self.unary())
        return self.comparison()

    def comparison(self) -> Node:
        left = self.primary()
        if self.token.kind == "op":
            op = SUGAR[self.advance().text]
            return Compare(left, op, (Arg(self.primary()),))
        return left

    # --- values ---------------------------------------------------------------------------

    def primary(self) -> Node:
        token = self.token
        if self.at("(") or self.at("{"):
            close = ")" if token.text == "(" else "}"
            self.advance()
            inner = self.or_()
            self.expect(close)
            if isinstance(inner, Chain) and self.at(".") and self.peek().kind == "name":
                return self.calls(inner.head, list(inner.calls))  # `(expression).absent()`
            return inner
        if self.at("["):
            self.advance()
            items = []
            while not self.at("]"):
                items.append(self.primary())
                if not self.at("]"):
                    self.expect(",")
            self.expect("]")
            return ListValue(tuple(items))
        if token.kind == "number":
            self.advance()
            amount: int | float = float(token.text) if "." in token.text else int(token.text)
            unit = self.token
            if unit.kind == "name" and unit.text.lower() in TIME_UNITS:
                self.advance()
                if not isinstance(amount, int):
                    raise QuerySyntaxError("a duration is a whole number", token.position)
                return Duration(amount, TIME_UNITS[unit.text.lower()])
            return Literal(amount)
        if token.kind == "string":
            self.advance()
            return Literal(token.text)
        if token.kind == "name" and token.text.lower() in LITERAL_WORDS:
            self.advance()
            return Literal(LITERAL_WORDS[token.text.lower()])
        if token.is_word("literal"):  # literal(100) is the value itself
            call = self.call(bare_words=False)
            if len(call.args) != 1:
                raise QuerySyntaxError("literal() takes one value", token.position)
            return call.args[0].value
        if token.kind == "name" and token.text.lower() in EXTRACTORS:
            return self.chain()
        found = token.text or "the end"
        raise QuerySyntaxError(f"expected a value or an extractor, found {found!r}",
                               token.position)  # fmt: skip

    def chain(self) -> Node:
        return self.calls(self.call(bare_words=True), [])

    def calls(self, head: Call, calls: list[Call]) -> Node:
        while self.at(".") and self.peek().kind == "name":
            self.advance()
            call = self.call(bare_words=False)
            if call.name in COMPARATORS:
                node: Node = Chain(head, tuple(calls))
                return Compare(node, COMPARATORS[call.name], call.args)
            calls.append(call)
        return Chain(head, tuple(calls))

    def call(self, *, bare_words: bool) -> Call:
        name = self.advance()
        self.expect("(")
        args: list[Arg] = []
        if bare_words and self._bare_name():
            words = []
            while self.token.kind in ("name", "number"):
                words.append(self.advance().text)
            args.append(Arg(Literal(" ".join(words))))
        while not self.at(")"):
            args.append(self.arg())
            if not self.at(")"):
                self.expect(",")
        self.expect(")")
        return Call(name.text.lower(), tuple(args), name.position)

    def _bare_name(self) -> bool:
        """``event(Shoes Bought)``: words up to ``)``, none of them a keyword or extractor."""
        offset = 0
        while self.peek(offset).kind in ("name", "number"):
            word = self.peek(offset)
            if word.kind == "name" and (word.text.lower() in EXTRACTORS or word.is_word("parent")):
                return False
            offset += 1
        return offset > 0 and self.peek(offset).text == ")"

    def arg(self) -> Arg:
        if self.at("{") and self.peek(2).text == ":" and self.peek().kind == "name":
            self.advance()  # `{exclude: ...}`: braces around a labelled argument
            inner = self.arg()
            self.expect("}")
            return inner
        label = None
        if self.token.kind == "name" and self.peek().kind == "punct" and self.peek().text == ":":
            label = self.advance().text.lower()
            self.advance()
        if label == "exclude" and self.token.kind == "string":  # sources(exclude: 'a', 'b')
            items = [Literal(self.advance().text)]
            while self.at(",") and self.peek().kind == "string":
                self.advance()
                items.append(Literal(self.advance().text))
            return Arg(ListValue(tuple(items)), label)
        value = self.or_()
        as_type = None
        if self.token.is_word("as"):
            self.advance()
            as_type = self.advance().text.lower()
        return Arg(value, label, as_type)


def parse_query(query: str) -> Node:
    """The syntax tree of one query; raises QuerySyntaxError naming the position."""
    return Parser(query).parse()


__all__ = ["COMPARATORS", "QuerySyntaxError", "parse_query"]
