"""definitions/destinations/*.yaml: where audiences go, how, and how fast.

Secrets never live in YAML: settings name the environment variable that holds them
(`secret_env`, `write_key_env`, `dsn_env`), read only when a sync starts.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from audience_pipeline.spec.fields import parse_duration
from audience_pipeline.spec.issues import DefinitionsError, Issue, issues_of, problem

DestinationType = Literal["webhook", "segment", "postgres", "files"]
Strategy = Literal["first", "last", "all"]

TYPES: tuple[str, ...] = ("webhook", "segment", "postgres", "files")
STRATEGIES: tuple[str, ...] = ("first", "last", "all")
USER_CALLS: tuple[str, ...] = ("identify", "track")
ACCOUNT_CALLS: tuple[str, ...] = ("group", "identify", "track")
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_\-]*")
DEFAULT_BATCH = {"webhook": 500, "segment": 100, "postgres": 10_000, "files": 100_000}


@dataclass(frozen=True)
class AudienceLink:
    """One audience connected to a destination, and the calls it is sent as."""

    key: str
    send: tuple[str, ...]  # user audiences: identify / track
    account_send: tuple[str, ...]  # account audiences: group per account, identify/track per member


@dataclass(frozen=True)
class Destination:
    """A validated destination definition."""

    name: str
    type: DestinationType
    settings: dict[str, Any]
    audiences: tuple[AudienceLink, ...] | None  # None: every audience of the space
    send: tuple[str, ...]
    account_send: tuple[str, ...]
    identifiers: dict[str, Strategy] | None  # None: the default per space identifier type
    batch_size: int
    rate_limit: float | None  # requests per second
    min_interval_seconds: int
    max_attempts: int
    timeout_seconds: float
    file: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # Churn guard (guard.py): a float is a share of the previous size, an int a count; None: off.
    max_change: float | int | None = None

    def missing_secrets(self) -> list[str]:
        """Names of the environment variables this destination's `*_env` settings name but that
        are not set (a sync would fail at once)."""
        names = [str(v) for k, v in self.settings.items() if k.endswith("_env") and v is not None]
        return [name for name in names if name not in os.environ]

    def secret(self, setting: str) -> str | None:
        """The value of the environment variable named by ``settings[setting]``.

        Raises:
            ValueError: the setting names a variable that is not set.
        """
        env_name = self.settings.get(setting)
        if env_name is None:
            return None
        value = os.environ.get(str(env_name))
        if value is None:
            msg = f"{self.file}: {self.name}: settings.{setting}: environment variable {env_name} is not set"
            raise ValueError(msg)
        return value


def _calls(allowed: tuple[str, ...]) -> AfterValidator:
    """A call name or a list of them, each one of `allowed` (kept once, in order)."""

    def check(value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or any(v not in allowed for v in items):
            raise problem(f"a list of {', '.join(allowed)}", value)
        return tuple(dict.fromkeys(items))

    return AfterValidator(check)


def _positive(*, integer: bool, optional: bool = False) -> AfterValidator:
    """A number above 0 (a whole one with `integer`; None allowed with `optional`)."""

    def check(value: Any) -> Any:
        if value is None and optional:
            return None
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        if not ok or (integer and not isinstance(value, int)):
            raise problem("a positive number", value)
        return value

    return AfterValidator(check)


MAX_CHANGE_HELP = (
    "a share of the previous size (a number with a point, like 0.25) or a whole count of "
    "changes (like 500)"
)


def _max_change(value: Any) -> float | int | None:
    """``max_change``: YAML ``0.25`` / ``1.0`` is a share, ``500`` / ``0`` a count."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, float) and math.isfinite(value) and value > 0:
        return value
    raise problem(MAX_CHANGE_HELP, value)


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise problem("[a-z][a-z0-9_-]*", value)
    return value


def _type(value: Any) -> str:
    if value not in TYPES:
        raise problem(f"one of {', '.join(TYPES)}", value)
    return str(value)


def _settings(value: Any) -> dict[str, Any]:
    settings = value or {}
    if not isinstance(settings, dict):
        raise problem("a mapping", settings)
    return dict(settings)


def _min_interval(value: Any) -> int:
    if value is None:
        return 0
    try:
        return parse_duration(value)
    except ValueError as error:
        raise problem(str(error), value) from None


def _all_or_list(value: Any) -> Any:
    if value == "all":
        return None
    if not isinstance(value, list):
        raise problem("`all` or a list of audience keys", value)
    return value


def _id_types(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise problem("a mapping id_type: first|last|all")
    return {str(id_type): strategy for id_type, strategy in value.items()}


def _strategy(value: Any) -> Strategy:
    if value not in STRATEGIES:
        raise problem("first, last or all", value)
    return cast(Strategy, value)


UserCalls = Annotated[Any, _calls(USER_CALLS)]
AccountCalls = Annotated[Any, _calls(ACCOUNT_CALLS)]


class _Link(BaseModel):
    """One entry of `audiences:`: a key, or {key, send, account_send} (None: the destination's
    own calls)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    key: str
    send: UserCalls = None
    account_send: AccountCalls = None

    @model_validator(mode="before")
    @classmethod
    def _key_or_mapping(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"key": value}
        if isinstance(value, dict) and isinstance(value.get("key"), str):
            return value
        raise problem("an audience key or {key, send}", value)


class DestinationFields(BaseModel):
    """One destination file's fields, each checked on its own (`_rules` checks what needs two
    of them). Defaults that hang on the type (batch_size) are filled in by `parse_destination`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[Any, AfterValidator(_name), Field(validate_default=True)] = None
    type: Annotated[Any, AfterValidator(_type), Field(validate_default=True)] = None
    description: Any = None
    settings: Annotated[Any, AfterValidator(_settings)] = None
    send: UserCalls = ("identify", "track")
    account_send: AccountCalls = ("group",)
    audiences: Annotated[list[_Link] | None, BeforeValidator(_all_or_list)] = None
    identifiers: Annotated[
        dict[str, Annotated[Any, AfterValidator(_strategy)]] | None, BeforeValidator(_id_types)
    ] = None
    batch_size: Annotated[Any, _positive(integer=True)] = None  # None: DEFAULT_BATCH[type]
    rate_limit: Annotated[Any, _positive(integer=False, optional=True)] = None
    max_attempts: Annotated[Any, _positive(integer=True)] = 8
    timeout: Annotated[Any, _positive(integer=False)] = 30.0
    min_interval: Annotated[Any, AfterValidator(_min_interval)] = 0
    max_change: Annotated[Any, AfterValidator(_max_change)] = None


def _rules(raw: dict[str, Any], file: str, key: str | None) -> list[Issue]:
    """Checks of more than one field, on the raw mapping (so that they are reported together
    with every field's own problems): the settings each type needs, secrets given in clear,
    an audience connected twice."""
    issues: list[Issue] = []
    kind = raw.get("type") if raw.get("type") in TYPES else "webhook"
    settings = raw.get("settings") or {}
    settings = settings if isinstance(settings, dict) else {}
    for needed in _required_settings(str(kind)):
        if not settings.get(needed):
            issues.append(Issue(file, key, f"settings.{needed}", f"required for type {kind}"))
    for secret_like in ("secret", "write_key", "dsn", "password"):
        if secret_like in settings:
            issues.append(Issue(file, key, f"settings.{secret_like}",
                                f"secrets are named by environment variable: use {secret_like}_env"))  # fmt: skip
    links = raw.get("audiences")
    keys = [_link_key(item) for item in links] if isinstance(links, list) else []
    for dup in sorted({k for k in keys if k is not None and keys.count(k) > 1}):
        issues.append(Issue(file, key, "audiences", "connected twice", dup))
    return issues


def _link_key(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and isinstance(item.get("key"), str):
        return item["key"]
    return None


def _required_settings(kind: str) -> tuple[str, ...]:
    return {
        "webhook": ("url",),
        "segment": ("write_key_env",),
        "postgres": ("dsn_env",),
        "files": ("path",),
    }[kind]


def parse_destination(raw: Any, file: str, issues: list[Issue]) -> Destination | None:
    """Validate one YAML mapping; problems are appended to ``issues``."""
    if not isinstance(raw, dict):
        issues.append(Issue(file, None, None, "a destination is a mapping"))
        return None
    name = raw.get("name")
    key = name if isinstance(name, str) else None
    try:
        fields: DestinationFields | None = DestinationFields.model_validate(raw)
    except ValidationError as error:
        fields = None
        issues += issues_of(error, file, key)
    rules = _rules(raw, file, key)
    issues += rules
    if fields is None or rules:
        return None
    return _destination(fields, file, raw)


def _destination(fields: DestinationFields, file: str, raw: dict[str, Any]) -> Destination:
    """The validated fields with the defaults that hang on other fields filled in."""
    send, account_send = fields.send, fields.account_send
    links = None
    if fields.audiences is not None:
        links = tuple(
            AudienceLink(link.key, link.send or send, link.account_send or account_send)
            for link in fields.audiences
        )
    batch = fields.batch_size if fields.batch_size is not None else DEFAULT_BATCH[fields.type]
    rate = fields.rate_limit
    return Destination(
        name=fields.name, type=cast(DestinationType, fields.type), settings=fields.settings or {},
        audiences=links, send=tuple(send), account_send=tuple(account_send),
        identifiers=fields.identifiers, batch_size=int(batch),
        rate_limit=None if rate is None else float(rate), min_interval_seconds=fields.min_interval,
        max_attempts=int(fields.max_attempts), timeout_seconds=float(fields.timeout), file=file,
        raw=raw, max_change=fields.max_change,
    )  # fmt: skip


def load_destinations(definitions_dir: str | Path) -> tuple[list[Destination], list[Issue]]:
    """Every ``definitions/destinations/*.yaml`` (sorted by path), with all problems found.

    Connected audiences and identifier types are checked against the space's definitions.
    """
    from audience_pipeline.spec.loader import load_definitions

    root = Path(definitions_dir)
    issues: list[Issue] = []
    found: list[Destination] = []
    folder = root / "destinations"
    paths = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
    definitions, _ = load_definitions(str(root))
    audience_keys = {a.key for a in definitions.audiences}
    id_types = {spec.type for spec in definitions.space.identifiers}
    for path in paths:
        file = str(path.relative_to(root.parent)) if path.is_relative_to(root.parent) else str(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as error:
            issues.append(Issue(file, None, None, f"cannot read YAML: {error}".splitlines()[0]))
            continue
        destination = parse_destination(raw, file, issues)
        if destination is None:
            continue
        for link in destination.audiences or ():
            if link.key not in audience_keys:
                issues.append(
                    Issue(file, destination.name, "audiences", "unknown audience", link.key)
                )
        for id_type in destination.identifiers or {}:
            if id_type not in id_types:
                issues.append(Issue(file, destination.name, f"identifiers.{id_type}",
                                    "not an identifier type of the space", id_type))  # fmt: skip
        found.append(destination)
    names = [d.name for d in found]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        issues.append(Issue(str(folder), dup, "name", "two destinations share this name"))
    return found, issues


def get_destination(name: str, definitions_dir: str | Path) -> Destination:
    """The destination called ``name``; raises DefinitionsError if it or any definition is bad."""
    destinations, issues = load_destinations(definitions_dir)
    if issues:
        raise DefinitionsError(issues)
    for destination in destinations:
        if destination.name == name:
            return destination
    known = ", ".join(d.name for d in destinations) or "none"
    raise DefinitionsError([Issue(str(Path(definitions_dir) / "destinations"), name, None,
                                  f"unknown destination (known: {known})")])  # fmt: skip
