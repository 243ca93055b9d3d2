"""Which message shapes the vectorized reader takes, read from DuckDB's ``json_structure``.

``json_structure`` gives each line's keys (in order, at every depth) and the JSON type of each
value. Lines that share a structure share everything the fast path must decide per shape: which
fields it can read exactly, the dotted paths of properties and context in their order, and the
number of keys (compared with the line's raw ``":`` count, which exposes duplicate keys: the
structure merges them, Python keeps the last one). A shape the fast path cannot reproduce exactly
is not ``ok`` and its lines go to the per-line normalizer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from audience_pipeline.spec.models import SpaceConfig

Path = tuple[str, ...]

# Types json_structure reports for scalars; "JSON" outside arrays is an empty object.
_STRING = "VARCHAR"
_NULL = "NULL"
_EMPTY_OBJECT = "JSON"
FAST_TYPES = frozenset(("track", "page", "screen", "alias"))
# Top-level fields read as strings: a string, null or absent, anything else is an odd type.
STRING_FIELDS = ("type", "event", "messageId", "timestamp", "receivedAt", "previousId", "name")
PAGE_FILLS = ("url", "path")


@dataclass(frozen=True)
class Shape:
    """What the fast path needs to know about the lines of one structure."""

    ok: bool
    keys: int = 0  # object members at every depth (the raw ``":`` count of a line without dups)
    properties: tuple[Path, ...] = ()  # dotted paths in flatten order (flat_tag_dict's order)
    context: tuple[Path, ...] = ()
    has_page: bool = False  # context.page is an object (page/screen fills read it)
    kinds: dict[Path, str] | None = None  # (source, *path) -> s, n, b, z (null) or o (object)


NOT_OK = Shape(ok=False)


def _count_keys(node: Any) -> int | None:
    """Object members at every depth; None when an array holds an object (uncountable)."""
    if isinstance(node, dict):
        total = len(node)
        for child in node.values():
            inner = _count_keys(child)
            if inner is None:
                return None
            total += inner
        return total
    if isinstance(node, list):
        return None if any(_holds_object(item) for item in node) else 0
    return 0


def _holds_object(node: Any) -> bool:
    if isinstance(node, dict):
        return True
    if isinstance(node, list):
        return any(_holds_object(item) for item in node)
    return node == _EMPTY_OBJECT


def _flat_paths(node: Any, prefix: Path = ()) -> list[Path]:
    """Dotted paths of an object in flat_tag_dict's order: a key, then the keys below it."""
    paths: list[Path] = []
    if not isinstance(node, dict):
        return paths
    for key, child in node.items():
        path = (*prefix, key)
        paths.append(path)
        if isinstance(child, dict):
            paths.extend(_flat_paths(child, path))
    return paths


_KINDS = {_STRING: "s", "BOOLEAN": "b", _NULL: "z", _EMPTY_OBJECT: "o"}
_KINDS.update(dict.fromkeys(("UBIGINT", "BIGINT", "DOUBLE", "HUGEINT", "UHUGEINT"), "n"))


def _kind(node: Any) -> str:
    """The flat tag of a structure node: s, n, b, z (null) or o (object or array)."""
    if isinstance(node, dict | list):
        return "o"
    return _KINDS.get(node, "?")  # "?": unknown, the reader tests the value itself


def _kinds(node: Any, prefix: Path) -> dict[Path, str]:
    found: dict[Path, str] = {}
    if isinstance(node, dict):
        for key, child in node.items():
            path = (*prefix, key)
            found[path] = _kind(child)
            if isinstance(child, dict):
                found.update(_kinds(child, path))
    return found


def _at(structure: dict[str, Any], path: Iterable[str]) -> tuple[Any, bool]:
    """The structure at a path, and whether an array stands in the way (pointer ambiguity)."""
    node: Any = structure
    for part in path:
        if isinstance(node, list):
            return None, True
        if not isinstance(node, dict):
            return None, False
        node = node.get(part)
    return node, isinstance(node, list)


def _string_or_missing(node: Any) -> bool:
    return node is None or node in (_STRING, _NULL)


def analyse(text: str, space: SpaceConfig) -> Shape:
    """The shape of the lines whose ``json_structure`` is ``text``."""
    structure = orjson.loads(text)
    if not isinstance(structure, dict) or structure.get("type") != _STRING:
        return NOT_OK
    keys = _count_keys(structure)
    if keys is None:
        return NOT_OK
    for field in STRING_FIELDS:
        if not _string_or_missing(structure.get(field)):
            return NOT_OK
    for spec in space.identifiers:
        for dotted in spec.paths:
            node, blocked = _at(structure, dotted.split("."))
            if blocked or not _string_or_missing(node):
                return NOT_OK
    page, blocked = _at(structure, ("context", "page"))
    if blocked:
        return NOT_OK
    has_page = isinstance(page, dict)
    if has_page and not all(_string_or_missing(page.get(key)) for key in PAGE_FILLS):
        return NOT_OK
    flat: dict[str, tuple[Path, ...]] = {}
    kinds: dict[Path, str] = {}
    for source in ("properties", "context"):
        kinds.update(_kinds(structure.get(source), (source,)))
        paths = _flat_paths(structure.get(source))
        names = {".".join(path) for path in paths}
        if len(names) != len(paths):  # "a.b" and a -> b: one flat key, Python keeps one
            return NOT_OK
        flat[source] = tuple(paths)
    return Shape(True, keys, flat["properties"], flat["context"], has_page, kinds)


class PathOrder:
    """One order of the dotted paths of a source that every accepted shape follows.

    Texts are built by concatenating the present paths in this order, so a shape whose own
    order disagrees with the order so far is refused (its lines take the per-line path).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.paths: list[Path] = []

    def admit(self, paths: tuple[Path, ...]) -> bool:
        """Merge a shape's paths into the order; False (and no change) when they conflict."""
        order = list(self.paths)
        index = {path: i for i, path in enumerate(order)}
        last = -1
        for path in paths:
            position = index.get(path)
            if position is None:
                order.insert(last + 1, path)
                index = {p: i for i, p in enumerate(order)}
                position = last + 1
            elif position < last:
                return False
            last = position
        if len(order) > self.limit:
            return False
        self.paths = order
        return True
