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
from typing import Any, Literal, cast

import yaml

from audience_pipeline.spec.fields import parse_duration
from audience_pipeline.spec.issues import DefinitionsError, Issue

DestinationType = Literal["webhook", "segment", "postgres", "files"]
Strategy = Literal["first", "last", "all"]

TYPES: tuple[str, ...] = ("webhook", "segment", "postgres", "files")
STRATEGIES: tuple[str, ...] = ("first", "last", "all")
USER_CALLS: tuple[str, ...] = ("identify", "track")
ACCOUNT_CALLS: tuple[str, ...] = ("group", "identify", "track")
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_\-]*")
FIELDS = {
    "name", "type", "description", "settings", "audiences", "send", "account_send",
    "identifiers", "batch_size", "rate_limit", "min_interval", "max_attempts", "timeout",
    "max_change",
}  # fmt: skip
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


def _calls(value: Any, allowed: tuple[str, ...], issues: list[Issue], file: str, key: str | None,
           where: str) -> tuple[str, ...] | None:  # fmt: skip
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or any(v not in allowed for v in items):
        issues.append(Issue(file, key, where, f"a list of {', '.join(allowed)}", str(value)))
        return None
    return tuple(dict.fromkeys(items))


def _positive(raw: dict[str, Any], name: str, default: float, issues: list[Issue], file: str,
              key: str | None, *, integer: bool) -> float:  # fmt: skip
    value = raw.get(name, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    if ok and integer and not isinstance(value, int):
        ok = False
    if not ok:
        issues.append(Issue(file, key, name, "a positive number", str(value)))
        return default
    return value


MAX_CHANGE_HELP = (
    "a share of the previous size (a number with a point, like 0.25) or a whole count of "
    "changes (like 500)"
)


def _max_change(raw: dict[str, Any], issues: list[Issue], file: str,
                key: str | None) -> float | int | None:  # fmt: skip
    """``max_change``: YAML ``0.25`` / ``1.0`` is a share, ``500`` / ``0`` a count."""
    value = raw.get("max_change")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, float) and math.isfinite(value) and value > 0:
        return value
    issues.append(Issue(file, key, "max_change", MAX_CHANGE_HELP, str(value)))
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
    before = len(issues)
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        issues.append(Issue(file, key, "name", "[a-z][a-z0-9_-]*", str(name)))
    for unknown in sorted(set(raw) - FIELDS):
        issues.append(Issue(file, key, unknown, "unknown field"))
    kind = raw.get("type")
    if kind not in TYPES:
        issues.append(Issue(file, key, "type", f"one of {', '.join(TYPES)}", str(kind)))
        kind = "webhook"
    settings = raw.get("settings") or {}
    if not isinstance(settings, dict):
        issues.append(Issue(file, key, "settings", "a mapping", str(settings)))
        settings = {}
    for needed in _required_settings(kind):
        if not settings.get(needed):
            issues.append(Issue(file, key, f"settings.{needed}", f"required for type {kind}"))
    for secret_like in ("secret", "write_key", "dsn", "password"):
        if secret_like in settings:
            issues.append(Issue(file, key, f"settings.{secret_like}",
                                f"secrets are named by environment variable: use {secret_like}_env"))  # fmt: skip
    send = _calls(raw.get("send", ["identify", "track"]), USER_CALLS, issues, file, key, "send")
    account_send = _calls(raw.get("account_send", ["group"]), ACCOUNT_CALLS, issues, file, key,
                          "account_send")  # fmt: skip
    audiences = _links(
        raw.get("audiences", "all"), send or (), account_send or (), issues, file, key
    )
    identifiers = _identifiers(raw.get("identifiers"), issues, file, key)
    batch = _positive(raw, "batch_size", DEFAULT_BATCH[kind], issues, file, key, integer=True)
    rate = raw.get("rate_limit")
    if rate is not None:
        rate = _positive(raw, "rate_limit", 1.0, issues, file, key, integer=False)
    attempts = _positive(raw, "max_attempts", 8, issues, file, key, integer=True)
    timeout = _positive(raw, "timeout", 30.0, issues, file, key, integer=False)
    interval = 0
    if raw.get("min_interval") is not None:
        try:
            interval = parse_duration(raw["min_interval"])
        except ValueError as error:
            issues.append(Issue(file, key, "min_interval", str(error), str(raw["min_interval"])))
    max_change = _max_change(raw, issues, file, key)
    if len(issues) > before or send is None or account_send is None or name is None:
        return None
    return Destination(
        name=str(name), type=cast(DestinationType, kind), settings=dict(settings), audiences=audiences,
        send=send, account_send=account_send, identifiers=identifiers, batch_size=int(batch),
        rate_limit=None if rate is None else float(rate), min_interval_seconds=interval,
        max_attempts=int(attempts), timeout_seconds=float(timeout), file=file, raw=raw,
        max_change=max_change,
    )  # fmt: skip


def _links(value: Any, send: tuple[str, ...], account_send: tuple[str, ...], issues: list[Issue],
           file: str, key: str | None) -> tuple[AudienceLink, ...] | None:  # fmt: skip
    if value == "all":
        return None
    if not isinstance(value, list):
        issues.append(Issue(file, key, "audiences", "`all` or a list of audience keys", str(value)))
        return ()
    links: list[AudienceLink] = []
    for index, item in enumerate(value):
        where = f"audiences[{index}]"
        if isinstance(item, str):
            links.append(AudienceLink(item, send, account_send))
        elif isinstance(item, dict) and isinstance(item.get("key"), str):
            own = _calls(
                item.get("send", list(send)), USER_CALLS, issues, file, key, f"{where}.send"
            )
            own_acc = _calls(item.get("account_send", list(account_send)), ACCOUNT_CALLS, issues,
                             file, key, f"{where}.account_send")  # fmt: skip
            links.append(AudienceLink(item["key"], own or send, own_acc or account_send))
        else:
            issues.append(Issue(file, key, where, "an audience key or {key, send}", str(item)))
    keys = [link.key for link in links]
    for dup in sorted({k for k in keys if keys.count(k) > 1}):
        issues.append(Issue(file, key, "audiences", "connected twice", dup))
    return tuple(links)


def _identifiers(value: Any, issues: list[Issue], file: str,
                 key: str | None) -> dict[str, Strategy] | None:  # fmt: skip
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        issues.append(Issue(file, key, "identifiers", "a mapping id_type: first|last|all"))
        return None
    out: dict[str, Strategy] = {}
    for id_type, strategy in value.items():
        if strategy not in STRATEGIES:
            issues.append(Issue(file, key, f"identifiers.{id_type}", "first, last or all",
                                str(strategy)))  # fmt: skip
            continue
        out[str(id_type)] = strategy
    return out


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
