"""Pydantic models of the definition files: space.yaml, a trait file, an audience file.

Every field is read as it was written (`Any`) and checked by a validator that raises `problem`
with the message users read; `issues.issues_of` is the one place those errors become issues.
The order of a file's issues is the order users have always seen: the key first, then unknown
fields (sorted), then the fields in the order they are declared here (`DefinitionFile`).
A validator that must see a sibling as written (within / between) reads the raw mapping from
the validation context (`validate_file`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from audience_pipeline.ir.nodes import Window
from audience_pipeline.spec.fields import KEY_PATTERN, event_names, parse_duration
from audience_pipeline.spec.issues import PROBLEM, problem
from audience_pipeline.spec.models import DEFAULT_BLOCKED_VALUES, TRAIT_KINDS, IdentifierSpec

# A field left out of the file (told apart from one written as null).
UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()


def parse_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value)
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        msg = "not a timestamp"
        raise ValueError(msg)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class WindowProblem(ValueError):
    def __init__(self, field: str, message: str, text: str | None = None) -> None:
        super().__init__(message)
        self.field, self.message, self.text = field, message, text


def read_window(within: Any, between: Any, prefix: str = "") -> Window | None:
    """`within` / `between` of a trait, event condition or funnel (None: neither given).

    Raises:
        WindowProblem: naming the field (`prefix` + within / between), message and text.
    """
    if within is not None and between is not None:
        raise WindowProblem(f"{prefix}within", "use within or between, not both")
    if within is not None:
        try:
            return Window(lower=parse_duration(within))
        except ValueError as error:
            raise WindowProblem(f"{prefix}within", str(error), str(within)) from None
    if between is None:
        return None
    if not isinstance(between, list) or len(between) != 2:
        raise WindowProblem(f"{prefix}between", "between is [A, B] (A < B)", str(between))
    try:
        lo, hi = parse_duration(between[0]), parse_duration(between[1])
    except ValueError as error:
        raise WindowProblem(f"{prefix}between", str(error), str(between)) from None
    if not lo < hi:
        raise WindowProblem(f"{prefix}between", "needs A < B", str(between))
    return Window(lower=hi, upper=lo)


def valid_key(raw: dict[str, Any]) -> str | None:
    """The definition's key when it is `[a-z][a-z0-9_]*` (the key its issues name)."""
    key = raw.get("key")
    return key if isinstance(key, str) and KEY_PATTERN.fullmatch(key) else None


def _problems(title: str, errors: Iterable[InitErrorDetails]) -> ValidationError:
    return ValidationError.from_exception_data(title, list(errors))


def _again(detail: Any) -> InitErrorDetails:
    """One error of a validation, to raise again in another order."""
    context = detail.get("ctx") or {}
    if detail["type"] == PROBLEM:
        kind = PydanticCustomError(PROBLEM, "{message}", context)
    else:
        kind = PydanticCustomError(detail["type"], detail["msg"].replace("{", "{{"), context)
    return InitErrorDetails(type=kind, loc=detail["loc"], input=detail["input"])


def _unknown(name: Any) -> InitErrorDetails:
    kind = problem("unknown field", name, field=str(name))
    return InitErrorDetails(type=kind, loc=(str(name),), input=name)


class DefinitionFile(BaseModel):
    """A definition file's mapping: key, then unknown fields, then the declared fields."""

    model_config = ConfigDict(extra="ignore", validate_default=True, frozen=True)
    forbid_unknown: ClassVar[bool] = True

    @model_validator(mode="wrap")
    @classmethod
    def _in_reading_order(cls, data: Any, handler: Any) -> Any:
        unknown = sorted(set(data) - set(cls.model_fields)) if cls.forbid_unknown else []
        try:
            model = handler(data)
        except ValidationError as error:
            details = error.errors(include_url=False)
            first = [_again(d) for d in details if d["loc"][:1] == ("key",)]
            rest = [_again(d) for d in details if d["loc"][:1] != ("key",)]
            raise _problems(cls.__name__, [*first, *map(_unknown, unknown), *rest]) from None
        if unknown:
            raise _problems(cls.__name__, map(_unknown, unknown))
        return model


def _key(value: Any) -> str:
    if not isinstance(value, str) or not KEY_PATTERN.fullmatch(value):
        raise problem("key must match [a-z][a-z0-9_]*", value)
    return value


def _level(value: Any) -> str:
    if value not in ("user", "account"):
        raise problem("level is user or account", value)
    return str(value)


Key = Annotated[Any, AfterValidator(_key)]
LevelField = Annotated[Any, AfterValidator(_level)]


class TraitFile(DefinitionFile):
    """traits/*.yaml of the aggregate kinds (section 7's `score` and `sql` have their own)."""

    key: Key = None
    name: Any = None
    description: Any = None
    level: LevelField = "user"
    kind: Any = None
    event: Any = None
    property: Any = None
    where: Any = None
    within: Any = None
    between: Any = None
    min_frequency: Any = Field(default=UNSET)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: Any) -> str:
        if value not in TRAIT_KINDS:
            raise problem(f"kind is one of {', '.join(TRAIT_KINDS)}", value)
        return str(value)

    @field_validator("event")
    @classmethod
    def _event(cls, value: Any) -> tuple[str, ...]:
        events = event_names(value)
        if events is None:
            raise problem("event is a name or a list of names", value)
        return events

    @field_validator("property")
    @classmethod
    def _property(cls, value: Any, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")  # absent when the kind is not one of TRAIT_KINDS
        if (
            kind != "count"
            and kind in TRAIT_KINDS
            and not (isinstance(value, str) and value.strip())
        ):
            raise problem(f"a {kind} trait needs a property", value)
        return value.strip() if isinstance(value, str) else None

    @field_validator("where")
    @classmethod
    def _where(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise problem("where is a SQL string", value)
        return value

    @field_validator("within")
    @classmethod
    def _window(cls, value: Any, info: ValidationInfo) -> Window | None:
        """The window of `within` or `between` (both read here: at most one may be given)."""
        raw = info.context["raw"] if info.context else {}
        try:
            return read_window(value, raw.get("between"))
        except WindowProblem as error:
            raise problem(error.message, *([error.text] if error.text is not None else []),
                          field=error.field) from None  # fmt: skip

    @field_validator("min_frequency")
    @classmethod
    def _min_frequency(cls, value: Any, info: ValidationInfo) -> int:
        """Default 2: an integer >= 1, of most_frequent traits only."""
        found = []
        if value is not UNSET and info.data.get("kind") != "most_frequent":
            found.append(problem("min_frequency belongs to most_frequent only", value))
        value = 2 if value is UNSET else value
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            found.append(problem("must be an integer >= 1", value))
        if found:
            raise _problems("min_frequency",
                            [InitErrorDetails(type=f, loc=(), input=value) for f in found])  # fmt: skip
        return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise problem("must be true or false", value)
    return value


def _created_at(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        raise problem("not an ISO-8601 timestamp", value) from None


def _condition(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise problem("an audience needs a condition mapping", value)
    return value


class AudienceFile(DefinitionFile):
    """audiences/*.yaml."""

    key: Key = None
    name: Any = UNSET
    description: Any = None
    level: LevelField = "user"
    backfill: Annotated[Any, AfterValidator(_flag)] = True
    include_anonymous: Annotated[Any, AfterValidator(_flag)] = True
    created_at: Annotated[Any, AfterValidator(_created_at)] = None
    condition: Annotated[Any, AfterValidator(_condition)] = None


def _identifier(index: int, item: Any, seen: set[Any]) -> tuple[IdentifierSpec | None, list[Any]]:
    """One `identifiers` entry, or the problems that skip it."""
    field = f"identifiers[{index}]"
    if not isinstance(item, dict) or "type" not in item or "from" not in item:
        return None, [problem("needs type and from", item, field=field)]
    limit = item.get("limit", 1_000_000)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        return None, [problem("must be an integer >= 1", limit, field=f"{field}.limit")]
    if item["type"] in seen:
        return None, [problem("duplicate identifier type", item["type"], field=f"{field}.type")]
    paths = item["from"] if isinstance(item["from"], list) else [item["from"]]
    return IdentifierSpec(str(item["type"]), tuple(str(p) for p in paths), limit, index), []


class SpaceFile(DefinitionFile):
    """space.yaml (other fields are not checked: the space's settings read what they know)."""

    forbid_unknown: ClassVar[bool] = False

    identifiers: Any = UNSET
    blocked_values: Any = Field(default_factory=lambda: list(DEFAULT_BLOCKED_VALUES))
    custom_traits: Any = None

    @field_validator("identifiers")
    @classmethod
    def _identifiers(cls, value: Any, info: ValidationInfo) -> tuple[IdentifierSpec, ...] | None:
        """The identifier types in priority order (None: the default ones). With the context's
        `lenient`, entries with problems are left out instead of reported."""
        lenient = bool((info.context or {}).get("lenient"))
        if value is UNSET or (lenient and not (isinstance(value, list) and value)):
            return None
        if not isinstance(value, list) or not value:
            raise problem("must be a non-empty list", value)
        specs: list[IdentifierSpec] = []
        found: list[Any] = []
        for index, item in enumerate(value):
            spec, problems = _identifier(index, item, {s.type for s in specs})
            found += problems
            specs += [spec] if spec is not None else []
        if found and not lenient:
            raise _problems("identifiers",
                            [InitErrorDetails(type=f, loc=(), input=value) for f in found])  # fmt: skip
        return tuple(specs) or None

    @field_validator("blocked_values")
    @classmethod
    def _blocked(cls, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise problem("must be a list", value)
        return value

    @field_validator("custom_traits")
    @classmethod
    def _custom(cls, value: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not (isinstance(value, list) and all(isinstance(c, str) for c in value)):
            raise problem("must be a list of trait keys", value)
        return tuple(value)


__all__ = [
    "UNSET",
    "AudienceFile",
    "DefinitionFile",
    "SpaceFile",
    "TraitFile",
    "WindowProblem",
    "parse_timestamp",
    "read_window",
    "valid_key",
]
