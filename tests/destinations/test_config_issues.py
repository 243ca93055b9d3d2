"""Destination files are validated by pydantic models; every problem still reads as an issue
naming the file, the destination, the field (nested ones spelled as in YAML) and the text."""

from __future__ import annotations

from audience_pipeline.destinations.config import parse_destination
from audience_pipeline.spec.issues import Issue, field_path


def _issues(raw: object) -> list[tuple[str | None, str | None, str, str | None]]:
    issues: list[Issue] = []
    assert parse_destination(raw, "d.yaml", issues) is None
    assert all(i.file == "d.yaml" for i in issues)
    return sorted(((i.key, i.field, i.message, i.text) for i in issues), key=str)


def test_nested_fields_are_named_as_in_yaml() -> None:
    raw = {
        "name": "hook",
        "type": "webhook",
        "settings": {"url": "http://x", "password": "p"},
        "audiences": ["a", {"key": "b", "send": ["fax"]}, 7, "a"],
        "identifiers": {"email": "most", 1: "some"},
        "colour": "blue",
    }
    assert _issues(raw) == sorted(
        [
            ("hook", "audiences", "connected twice", "a"),
            ("hook", "audiences[1].send", "a list of identify, track", "['fax']"),
            ("hook", "audiences[2]", "an audience key or {key, send}", "7"),
            ("hook", "colour", "unknown field", None),
            ("hook", "identifiers.1", "first, last or all", "some"),
            ("hook", "identifiers.email", "first, last or all", "most"),
            (
                "hook",
                "settings.password",
                "secrets are named by environment variable: use password_env",
                None,
            ),
        ],
        key=str,
    )


def test_a_missing_value_is_shown_as_none_and_the_type_falls_back_to_webhook() -> None:
    assert _issues({"batch_size": 0, "timeout": None}) == sorted(
        [
            (None, "batch_size", "a positive number", "0"),
            (None, "name", "[a-z][a-z0-9_-]*", "None"),
            (None, "settings.url", "required for type webhook", None),
            (None, "timeout", "a positive number", "None"),
            (None, "type", "one of webhook, segment, postgres, files", "None"),
        ],
        key=str,
    )


def test_defaults_hang_on_the_type_and_on_the_destination_calls() -> None:
    issues: list[Issue] = []
    raw = {
        "name": "files",
        "type": "files",
        "settings": {"path": "out"},
        "send": "track",
        "audiences": ["a", {"key": "b", "send": ["identify"]}],
        "min_interval": "1h",
    }
    destination = parse_destination(raw, "d.yaml", issues)
    assert issues == [] and destination is not None
    assert destination.batch_size == 100_000 and destination.min_interval_seconds == 3600
    assert [(link.key, link.send) for link in destination.audiences or ()] == [
        ("a", ("track",)),
        ("b", ("identify",)),
    ]


def test_field_path() -> None:
    assert field_path(("audiences", 0, "account_send")) == "audiences[0].account_send"
    assert field_path(("identifiers", "email")) == "identifiers.email"
    assert field_path(()) is None
