"""Read definitions/ (space.yaml, traits/*.yaml, audiences/*.yaml) into typed models.

Every problem found is collected as an Issue rather than raised, so that `validate` can report
them all at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from audience_pipeline.ir.nodes import Window
from audience_pipeline.spec.fields import check_key, event_names, parse_duration
from audience_pipeline.spec.issues import Issue
from audience_pipeline.spec.models import (
    DEFAULT_BLOCKED_VALUES,
    TRAIT_KINDS,
    AudienceDef,
    Definitions,
    IdentifierSpec,
    SpaceConfig,
    TraitDef,
)
from audience_pipeline.spec.yaml_errors import describe_yaml_error

TRAIT_FIELDS = {
    "key", "name", "description", "level", "kind", "event", "property", "where", "within",
    "between", "min_frequency",
}  # fmt: skip
AUDIENCE_FIELDS = {
    "key", "name", "description", "level", "backfill", "created_at", "include_anonymous",
    "condition",
}  # fmt: skip


def parse_window(raw: dict[str, Any], issues: list[Issue], file: str, key: str | None,
                 prefix: str = "") -> Window | None:  # fmt: skip
    """`within` / `between` of a trait, event condition or funnel."""
    within, between = raw.get("within"), raw.get("between")
    if within is not None and between is not None:
        issues.append(Issue(file, key, f"{prefix}within", "use within or between, not both"))
        return None
    if within is not None:
        try:
            return Window(lower=parse_duration(within))
        except ValueError as error:
            issues.append(Issue(file, key, f"{prefix}within", str(error), str(within)))
            return None
    if between is not None:
        if not isinstance(between, list) or len(between) != 2:
            issues.append(
                Issue(file, key, f"{prefix}between", "between is [A, B] (A < B)", str(between))
            )
            return None
        try:
            lo, hi = parse_duration(between[0]), parse_duration(between[1])
        except ValueError as error:
            issues.append(Issue(file, key, f"{prefix}between", str(error), str(between)))
            return None
        if not lo < hi:
            issues.append(Issue(file, key, f"{prefix}between", "needs A < B", str(between)))
            return None
        return Window(lower=hi, upper=lo)
    return None


def parse_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value)
    else:
        from datetime import date

        if isinstance(value, date):
            parsed = datetime(value.year, value.month, value.day)
        else:
            msg = "not a timestamp"
            raise ValueError(msg)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _read_yaml(path: Path, root: Path, issues: list[Issue]) -> Any:
    rel = str(path.relative_to(root.parent)) if path.is_relative_to(root.parent) else str(path)
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        issues.append(Issue(rel, None, None, f"invalid YAML: {describe_yaml_error(error)}"))
        return None
    except (OSError, UnicodeDecodeError) as error:
        issues.append(Issue(rel, None, None, f"cannot read YAML: {error}".splitlines()[0]))
        return None


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.parent))
    except ValueError:
        return str(path)


def load_space(root: Path, issues: list[Issue]) -> SpaceConfig:
    path = root / "space.yaml"
    file = _rel(path, root)
    if not path.exists():
        return SpaceConfig(file=file)
    raw = _read_yaml(path, root, issues)
    if raw is None:
        return SpaceConfig(file=file)
    if not isinstance(raw, dict):
        issues.append(Issue(file, None, None, "space.yaml must be a mapping"))
        return SpaceConfig(file=file)
    defaults = SpaceConfig()
    identifiers = defaults.identifiers
    if "identifiers" in raw:
        identifiers = _identifiers(raw["identifiers"], file, issues) or defaults.identifiers
    blocked = raw.get("blocked_values", list(DEFAULT_BLOCKED_VALUES))
    if not isinstance(blocked, list):
        issues.append(Issue(file, None, "blocked_values", "must be a list", str(blocked)))
        blocked = list(DEFAULT_BLOCKED_VALUES)
    schedule = raw.get("schedule", defaults.schedule)
    timezone = str(raw.get("timezone", "UTC"))
    if isinstance(schedule, dict):
        timezone = str(schedule.get("timezone", timezone))
        schedule = schedule.get("cron", defaults.schedule)
    custom = raw.get("custom_traits")
    if custom is not None and not (
        isinstance(custom, list) and all(isinstance(c, str) for c in custom)
    ):
        issues.append(
            Issue(file, None, "custom_traits", "must be a list of trait keys", str(custom))
        )
        custom = None
    from audience_pipeline.spec.section7_traits import load_sources

    return SpaceConfig(
        sources=load_sources(raw.get("sources"), file, issues),
        space=str(raw.get("space", "default")),
        timezone=timezone,
        identifiers=identifiers,
        blocked_values=frozenset(str(v).strip().lower() for v in blocked),
        schedule=str(schedule),
        size_change_warning=float(raw.get("size_change_warning", defaults.size_change_warning)),
        custom_traits=tuple(custom) if custom is not None else None,
        file=file,
    )


def _identifiers(raw: Any, file: str, issues: list[Issue]) -> tuple[IdentifierSpec, ...]:
    if not isinstance(raw, list) or not raw:
        issues.append(Issue(file, None, "identifiers", "must be a non-empty list", str(raw)))
        return ()
    result: list[IdentifierSpec] = []
    for index, item in enumerate(raw):
        field = f"identifiers[{index}]"
        if not isinstance(item, dict) or "type" not in item or "from" not in item:
            issues.append(Issue(file, None, field, "needs type and from", str(item)))
            continue
        paths = item["from"] if isinstance(item["from"], list) else [item["from"]]
        limit = item.get("limit", 1_000_000)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            issues.append(
                Issue(file, None, f"{field}.limit", "must be an integer >= 1", str(limit))
            )
            continue
        if any(spec.type == item["type"] for spec in result):
            issues.append(
                Issue(file, None, f"{field}.type", "duplicate identifier type", item["type"])
            )
            continue
        result.append(IdentifierSpec(str(item["type"]), tuple(str(p) for p in paths), limit, index))
    return tuple(result)


def load_trait(raw: Any, file: str, issues: list[Issue]) -> TraitDef | None:
    if not isinstance(raw, dict):
        issues.append(Issue(file, None, None, "a trait file holds one mapping"))
        return None
    if raw.get("kind") in ("score", "sql"):  # section 7's kinds have their own fields
        from audience_pipeline.spec.section7_traits import load_section7_trait

        return load_section7_trait(raw, file, issues)
    key = check_key(raw, file, issues)
    before = len(issues)
    for extra in sorted(set(raw) - TRAIT_FIELDS):
        issues.append(Issue(file, key, extra, "unknown field", extra))
    level = raw.get("level", "user")
    if level not in ("user", "account"):
        issues.append(Issue(file, key, "level", "level is user or account", str(level)))
    kind = raw.get("kind")
    if kind not in TRAIT_KINDS:
        issues.append(
            Issue(file, key, "kind", f"kind is one of {', '.join(TRAIT_KINDS)}", str(kind))
        )
    events = event_names(raw.get("event"))
    if events is None:
        issues.append(
            Issue(file, key, "event", "event is a name or a list of names", str(raw.get("event")))
        )
    prop = raw.get("property")
    if kind != "count" and kind in TRAIT_KINDS and not (isinstance(prop, str) and prop.strip()):
        issues.append(Issue(file, key, "property", f"a {kind} trait needs a property", str(prop)))
    where = raw.get("where")
    if where is not None and not isinstance(where, str):
        issues.append(Issue(file, key, "where", "where is a SQL string", str(where)))
    window = parse_window(raw, issues, file, key)
    min_frequency = _min_frequency(raw, kind, issues, file, key)
    if key is None or len(issues) > before:
        return None
    return TraitDef(
        key=key,
        level=level,
        kind=str(kind),
        events=events or (),
        property=prop.strip() if isinstance(prop, str) else None,
        where=where,
        window=window,
        min_frequency=int(min_frequency),
        file=file,
        description=raw.get("description") or raw.get("name"),
        raw=raw,
    )


def _min_frequency(
    raw: dict[str, Any], kind: object, issues: list[Issue], file: str, key: str | None
) -> Any:
    """`min_frequency` (default 2): an integer >= 1, of most_frequent traits only."""
    min_frequency = raw.get("min_frequency", 2)
    if "min_frequency" in raw and kind != "most_frequent":
        issues.append(Issue(file, key, "min_frequency",
                            "min_frequency belongs to most_frequent only", str(min_frequency)))  # fmt: skip
    if not isinstance(min_frequency, int) or isinstance(min_frequency, bool) or min_frequency < 1:
        issues.append(
            Issue(file, key, "min_frequency", "must be an integer >= 1", str(min_frequency))
        )
    return min_frequency


def load_audience(raw: Any, file: str, issues: list[Issue]) -> AudienceDef | None:
    if not isinstance(raw, dict):
        issues.append(Issue(file, None, None, "an audience file holds one mapping"))
        return None
    key = check_key(raw, file, issues)
    before = len(issues)
    for extra in sorted(set(raw) - AUDIENCE_FIELDS):
        issues.append(Issue(file, key, extra, "unknown field", extra))
    level = raw.get("level", "user")
    if level not in ("user", "account"):
        issues.append(Issue(file, key, "level", "level is user or account", str(level)))
    for flag in ("backfill", "include_anonymous"):
        if flag in raw and not isinstance(raw[flag], bool):
            issues.append(Issue(file, key, flag, "must be true or false", str(raw[flag])))
    created_at = None
    if raw.get("created_at") is not None:
        try:
            created_at = parse_timestamp(raw["created_at"])
        except ValueError:
            issues.append(
                Issue(file, key, "created_at", "not an ISO-8601 timestamp", str(raw["created_at"]))
            )
    if "condition" not in raw or not isinstance(raw["condition"], dict):
        issues.append(
            Issue(
                file,
                key,
                "condition",
                "an audience needs a condition mapping",
                str(raw.get("condition")),
            )
        )
    if key is None or len(issues) > before:
        return None
    return AudienceDef(
        key=key,
        name=str(raw.get("name", key)),
        level=level,
        backfill=bool(raw.get("backfill", True)),
        created_at=created_at,
        include_anonymous=bool(raw.get("include_anonymous", True)),
        condition=raw["condition"],
        file=file,
        description=raw.get("description"),
        raw=raw,
    )


def _yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_definitions(root: str | Path) -> tuple[Definitions, list[Issue]]:
    """Load a definitions folder; returns the models that loaded and every issue found."""
    root = Path(root)
    issues: list[Issue] = []
    if not root.is_dir():
        issues.append(Issue(str(root), None, None, "definitions folder not found"))
        return Definitions(SpaceConfig(), (), (), str(root)), issues
    space = load_space(root, issues)
    traits: list[TraitDef] = []
    audiences: list[AudienceDef] = []
    seen: dict[tuple[str, str], str] = {}
    for kind, folder in (("trait", "traits"), ("audience", "audiences")):
        for path in _yaml_files(root / folder):
            file = _rel(path, root)
            raw = _read_yaml(path, root, issues)
            if raw is None:
                continue
            loaded = (
                load_trait(raw, file, issues)
                if kind == "trait"
                else load_audience(raw, file, issues)
            )
            if loaded is None:
                continue
            if (kind, loaded.key) in seen:
                issues.append(
                    Issue(
                        file,
                        loaded.key,
                        "key",
                        f"duplicate {kind} key (also in {seen[(kind, loaded.key)]})",
                        loaded.key,
                    )
                )
                continue
            seen[(kind, loaded.key)] = file
            if isinstance(loaded, TraitDef):
                traits.append(loaded)
            else:
                audiences.append(loaded)
    return Definitions(space, tuple(traits), tuple(audiences), str(root)), issues
