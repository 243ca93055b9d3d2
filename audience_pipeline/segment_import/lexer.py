"""Tokens of Segment's audience query language.

Strings take straight or typographic quotes (Segment's own pages show `event(‘Shoes Bought’)`);
names are words; `=`, `==`, `!=`, `>`, `>=`, `<`, `<=` are the comparison sugar.
"""

from __future__ import annotations

from dataclasses import dataclass

QUOTES = {"'": "'", '"': '"', "\u2018": "\u2019", "\u201c": "\u201d", "\u2019": "\u2019"}
OPERATORS = ("==", "!=", ">=", "<=", "=", ">", "<")
PUNCTUATION = "().,:{}[]"


class QuerySyntaxError(ValueError):
    """The query does not parse; ``position`` is the character offset."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position})")
        self.position = position


@dataclass(frozen=True)
class Token:
    kind: str  # name | string | number | op | punct | end
    text: str
    position: int

    def is_word(self, *words: str) -> bool:
        return self.kind == "name" and self.text.lower() in words


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(query):
        char = query[i]
        if char.isspace():
            i += 1
        elif char in QUOTES:
            close = QUOTES[char]
            end = i + 1
            while end < len(query) and query[end] != close:
                end += 2 if query[end] == "\\" else 1
            if end >= len(query):
                raise QuerySyntaxError("unterminated string", i)
            tokens.append(Token("string", query[i + 1 : end].replace("\\" + close, close), i))
            i = end + 1
        elif char.isdigit() or (char == "-" and i + 1 < len(query) and query[i + 1].isdigit()):
            end = i + 1
            while end < len(query) and (query[end].isdigit() or query[end] == "."):
                end += 1
            tokens.append(Token("number", query[i:end], i))
            i = end
        elif char.isalpha() or char == "_" or char == "$":
            end = i + 1
            while end < len(query) and (query[end].isalnum() or query[end] in "_$"):
                end += 1
            tokens.append(Token("name", query[i:end], i))
            i = end
        else:
            op = next((o for o in OPERATORS if query.startswith(o, i)), None)
            if op is not None:
                tokens.append(Token("op", op, i))
                i += len(op)
            elif char in PUNCTUATION:
                tokens.append(Token("punct", char, i))
                i += 1
            else:
                raise QuerySyntaxError(f"unexpected character {char!r}", i)
    tokens.append(Token("end", "", len(query)))
    return tokens


__all__ = ["QuerySyntaxError", "Token", "tokenize"]
