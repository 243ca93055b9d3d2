"""`import-segment FILE --out DIR`: Segment audiences and computed traits into our YAML.

FILE holds what Segment's Public API lists return: ``{"data": {"audiences": [...]}}``,
``{"data": {"computedTraits": [...]}}`` (both may sit in one ``data``), a single
``{"data": {"audience": {...}}}``, or a bare list. Each item has ``name``, ``key`` and
``definition: {query, type}`` (``USERS`` or ``ACCOUNTS``); in a bare list, an item whose query
ends in a comparison is an audience and one that ends in a reducer a computed trait.

Every item is either written whole (``DIR/audiences/<key>.yaml``, ``DIR/traits/<key>.yaml``)
or listed in the report with the reason; written files are then validated as a space, and any
that does not validate is taken back out and listed with the validation message.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from audience_pipeline.segment_import.audiences import Scope, condition
from audience_pipeline.segment_import.nodes import Chain, Node
from audience_pipeline.segment_import.parser import QuerySyntaxError, parse_query
from audience_pipeline.segment_import.stream import Unconvertible
from audience_pipeline.segment_import.traits import trait_definition

REPORT_FILE = "segment_import_report.json"
KEY = re.compile(r"[a-z][a-z0-9_]*")
DEFAULT_SPACE = {
    "space": "imported",
    "timezone": "UTC",
    "identifiers": [
        {"type": "user_id", "from": "userId", "limit": 1},
        {"type": "email", "from": ["traits.email", "context.traits.email"], "limit": 5},
        {"type": "anonymous_id", "from": "anonymousId", "limit": 100},
    ],
}


@dataclass
class Item:
    """One Segment audience or computed trait, as read from the file."""

    kind: str  # audience | trait | unknown (bare list: decided by the query)
    key: str
    name: str
    query: str
    level: str
    raw: dict[str, Any]


@dataclass
class Outcome:
    """What became of one item: a file, or a reason it has none."""

    kind: str
    key: str
    name: str
    query: str
    file: str | None = None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    converted: list[Outcome]
    not_converted: list[Outcome]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "converted": [asdict(o) for o in self.converted],
            "not_converted": [asdict(o) for o in self.not_converted],
            "notes": self.notes,
        }


def read_items(path: Path) -> list[Item]:
    """The items of a Public API response file; raises ValueError naming the file."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        msg = f"{path}: not a readable JSON file ({error})"
        raise ValueError(msg) from error
    groups: list[tuple[str, Any]] = []
    if isinstance(data, list):
        groups.append(("unknown", data))
    elif isinstance(data, dict) and isinstance(data.get("data"), dict):
        body = data["data"]
        groups += [("audience", body.get("audiences")), ("trait", body.get("computedTraits"))]
        groups += [("audience", [body["audience"]] if "audience" in body else None),
                   ("trait", [body["computedTrait"]] if "computedTrait" in body else None)]  # fmt: skip
    groups = [(kind, items) for kind, items in groups if items is not None]
    if not groups or any(not isinstance(items, list) for _, items in groups):
        msg = (f"{path}: expected {{\"data\": {{\"audiences\": [...]}}}}, "
               f"{{\"data\": {{\"computedTraits\": [...]}}}} or a list")  # fmt: skip
        raise ValueError(msg)
    found = []
    for kind, items in groups:
        for index, raw in enumerate(items):
            found.append(_item(kind, raw, f"{path}: item {index}"))
    return found


def _item(kind: str, raw: Any, where: str) -> Item:
    if not isinstance(raw, dict) or not isinstance(raw.get("definition"), dict):
        msg = f"{where}: an item is an object with a definition: {{query, type}}"
        raise ValueError(msg)
    definition = raw["definition"]
    query = definition.get("query")
    if not isinstance(query, str):
        msg = f"{where}: definition.query is not text"
        raise ValueError(msg)
    kind_of = str(definition.get("type") or "USERS").upper()
    level = "account" if kind_of == "ACCOUNTS" else "user"
    key = str(raw.get("key") or raw.get("name") or raw.get("id") or "")
    return Item(kind, key, str(raw.get("name") or key), query, level, raw)


def our_key(key: str) -> str:
    """A Segment key as ours (``[a-z][a-z0-9_]*``): lower-cased, other characters as ``_``."""
    text = re.sub(r"[^a-z0-9_]+", "_", key.strip().lower()).strip("_")
    return text if KEY.fullmatch(text) else f"s_{text}" if text else "s_unnamed"


def _kind_of(item: Item, tree: Node) -> str:
    if item.kind != "unknown":
        return item.kind
    return "trait" if isinstance(tree, Chain) else "audience"


def _convert(item: Item, kind: str, tree: Node, audience_keys: frozenset[str]) -> dict[str, Any]:
    key = our_key(item.key)
    if kind == "trait":
        return {"key": key, "name": item.name, "level": item.level, **trait_definition(tree)}
    out: dict[str, Any] = {"key": key, "name": item.name, "level": item.level}
    if item.raw.get("description"):
        out["description"] = str(item.raw["description"])
    options = item.raw.get("options") or {}
    if item.level == "user" and isinstance(options.get("includeAnonymousUsers"), bool):
        out["include_anonymous"] = options["includeAnonymousUsers"]
    if options.get("includeHistoricalData") is False:
        out["backfill"] = False
        if item.raw.get("createdAt"):
            out["created_at"] = str(item.raw["createdAt"])
    out["condition"] = condition(tree, Scope(item.level, audience_keys))
    return out


def _header(item: Item) -> str:
    lines = [f"# Imported from Segment: {item.name} ({item.key})"]
    lines += [f"#   {line}" for line in item.query.strip().splitlines()]
    return "\n".join(lines) + "\n"


def import_segment(source: str | Path, out: str | Path) -> ImportReport:
    """Convert every item of ``source`` into ``out``; see the module docstring.

    Raises:
        ValueError: the file is not JSON of one of the accepted shapes.
    """
    items = read_items(Path(source))
    root = Path(out)
    report = ImportReport([], [])
    parsed: list[tuple[Item, str, Node]] = []
    for item in items:
        outcome = Outcome(item.kind, item.key, item.name, item.query)
        try:
            tree = parse_query(item.query)
        except QuerySyntaxError as error:
            outcome.reason = f"does not parse: {error}"
            report.not_converted.append(outcome)
            continue
        parsed.append((item, _kind_of(item, tree), tree))
    audience_keys = frozenset(i.key for i, kind, _ in parsed if kind == "audience")
    audience_keys |= frozenset(our_key(k) for k in audience_keys)
    written: dict[Path, Outcome] = {}
    for item, kind, tree in parsed:
        outcome = Outcome(kind, item.key, item.name, item.query)
        key = our_key(item.key)
        folder = root / ("audiences" if kind == "audience" else "traits")
        path = folder / f"{key}.yaml"
        if key != item.key:
            outcome.notes.append(f"key {item.key!r} written as {key!r}")
        try:
            if path in written:
                raise Unconvertible(f"key {key!r} is already used by {written[path].name!r}")
            body = _convert(item, kind, tree, audience_keys)
        except Unconvertible as error:
            outcome.reason = error.reason
            report.not_converted.append(outcome)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(_header(item) + yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
        outcome.file = str(path)
        written[path] = outcome
    if written and not (root / "space.yaml").exists():
        (root / "space.yaml").write_text(yaml.safe_dump(DEFAULT_SPACE, sort_keys=False))
        report.notes.append(f"wrote a default {root / 'space.yaml'} (user_id, email, anonymous_id)")
    _validate(root, written, report)
    report.converted = [o for o in written.values()]
    (root / REPORT_FILE).parent.mkdir(parents=True, exist_ok=True)
    (root / REPORT_FILE).write_bytes(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2))
    return report


def _validate(root: Path, written: dict[Path, Outcome], report: ImportReport) -> None:
    """Take out written files that do not validate (repeatedly: one taken out can break an
    audience that names it)."""
    from audience_pipeline.spec.compile import validate_definitions

    while written:
        issues = validate_definitions(str(root), datetime.now(UTC))
        by_file: dict[Path, list[str]] = {}
        for issue in issues:
            if issue.file is None:
                continue
            for path in written:
                if Path(issue.file).name == path.name and path.parent.name in issue.file:
                    by_file.setdefault(path, []).append(str(issue))
        if not by_file:
            others = [str(i) for i in issues]
            if others:
                report.notes.append(f"{len(others)} problem(s) in definitions not imported now: "
                                    + "; ".join(others[:3]))  # fmt: skip
            return
        for path, problems in by_file.items():
            outcome = written.pop(path)
            path.unlink()
            outcome.file = None
            outcome.reason = "converted but does not validate: " + "; ".join(problems)
            report.not_converted.append(outcome)


__all__ = ["REPORT_FILE", "ImportReport", "Outcome", "import_segment", "our_key", "read_items"]
