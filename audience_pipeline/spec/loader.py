"""Read definitions/ (space.yaml, traits/*.yaml, audiences/*.yaml) into typed models.

Every problem found is collected as an Issue rather than raised, so that `validate` can report
them all at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from audience_pipeline.ir.nodes import Window
from audience_pipeline.spec.files import (
    AudienceFile,
    DefinitionFile,
    SpaceFile,
    TraitFile,
    WindowProblem,
    parse_timestamp,
    read_window,
    valid_key,
)
from audience_pipeline.spec.issues import Issue, issues_of
from audience_pipeline.spec.models import AudienceDef, Definitions, SpaceConfig, TraitDef
from audience_pipeline.spec.yaml_errors import describe_yaml_error

File = TypeVar("File", bound=DefinitionFile)


def parse_window(raw: dict[str, Any], issues: list[Issue], file: str, key: str | None,
                 prefix: str = "") -> Window | None:  # fmt: skip
    """`within` / `between` of an event condition or funnel (`prefix`: where it stands)."""
    try:
        return read_window(raw.get("within"), raw.get("between"), prefix)
    except WindowProblem as error:
        issues.append(Issue(file, key, error.field, error.message, error.text))
        return None


def validate_file(model: type[File], raw: dict[str, Any], file: str, key: str | None,
                  issues: list[Issue]) -> File | None:  # fmt: skip
    """`raw` as `model`, or None with its issues added (`issues_of`: the one place pydantic's
    errors become issues)."""
    try:
        return model.model_validate(raw, context={"raw": raw})
    except ValidationError as error:
        issues.extend(issues_of(error, file, key))
        return None


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
    checked = _space_file(raw, file, issues)
    identifiers = checked.identifiers or defaults.identifiers
    blocked = checked.blocked_values
    schedule = raw.get("schedule", defaults.schedule)
    timezone = str(raw.get("timezone", "UTC"))
    if isinstance(schedule, dict):
        timezone = str(schedule.get("timezone", timezone))
        schedule = schedule.get("cron", defaults.schedule)
    from audience_pipeline.spec.section7_traits import load_sources

    return SpaceConfig(
        sources=load_sources(raw.get("sources"), file, issues),
        space=str(raw.get("space", "default")),
        timezone=timezone,
        identifiers=identifiers,
        blocked_values=frozenset(str(v).strip().lower() for v in blocked),
        schedule=str(schedule),
        size_change_warning=float(raw.get("size_change_warning", defaults.size_change_warning)),
        custom_traits=checked.custom_traits,
        file=file,
    )


def _space_file(raw: dict[str, Any], file: str, issues: list[Issue]) -> SpaceFile:
    """space.yaml's checked fields; where one has problems, they are reported and the space
    reads as if it were left out (an identifier entry with problems: that entry)."""
    try:
        return SpaceFile.model_validate(raw, context={"raw": raw})
    except ValidationError as error:
        issues.extend(issues_of(error, file, None))
        failed = {detail["loc"][0] for detail in error.errors()} - {"identifiers"}
    kept = {k: v for k, v in raw.items() if k not in failed}
    return SpaceFile.model_validate(kept, context={"raw": kept, "lenient": True})


def load_trait(raw: Any, file: str, issues: list[Issue]) -> TraitDef | None:
    if not isinstance(raw, dict):
        issues.append(Issue(file, None, None, "a trait file holds one mapping"))
        return None
    if raw.get("kind") in ("score", "sql"):  # section 7's kinds have their own fields
        from audience_pipeline.spec.section7_traits import load_section7_trait

        return load_section7_trait(raw, file, issues)
    key = valid_key(raw)
    checked = validate_file(TraitFile, raw, file, key, issues)
    if key is None or checked is None:
        return None
    return TraitDef(
        key=key,
        level=checked.level,
        kind=checked.kind,
        events=checked.event,
        property=checked.property,
        where=checked.where,
        window=checked.within,
        min_frequency=checked.min_frequency,
        file=file,
        description=raw.get("description") or raw.get("name"),
        raw=raw,
    )


def load_audience(raw: Any, file: str, issues: list[Issue]) -> AudienceDef | None:
    if not isinstance(raw, dict):
        issues.append(Issue(file, None, None, "an audience file holds one mapping"))
        return None
    key = valid_key(raw)
    checked = validate_file(AudienceFile, raw, file, key, issues)
    if key is None or checked is None:
        return None
    return AudienceDef(
        key=key,
        name=str(raw.get("name", key)),
        level=checked.level,
        backfill=checked.backfill,
        created_at=checked.created_at,
        include_anonymous=checked.include_anonymous,
        condition=checked.condition,
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


__all__ = [
    "load_audience",
    "load_definitions",
    "load_space",
    "load_trait",
    "parse_timestamp",
    "parse_window",
    "validate_file",
]
