"""The hand-derived SPEC cases of test_reference_selfcheck, run through the engine.

Every test there that goes through `run(...)` is collected here a second time with `run`
replaced by the engine (ingest + identity + compute), so the answers worked out by hand from
SPEC hold for both the reference and the engine.
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.agreement import Scenario, profiles_of, run_engine
from tests.reference.evaluator import RefResult
from tests.unit import test_reference_selfcheck as selfcheck


def engine_run(
    lines: list[Any],
    traits: list[dict] | None = None,
    audiences: list[dict] | None = None,
    space: dict | None = None,
) -> RefResult:
    text = "\n".join(
        line if isinstance(line, str) else orjson.dumps(line).decode() for line in lines
    )
    scenario = Scenario(
        {"events.jsonl": text},
        space or selfcheck.SPACE,
        traits or [],
        audiences or [],
        selfcheck.AS_OF,
    )
    with tempfile.TemporaryDirectory() as tmp:
        ingested, result = run_engine(scenario, Path(tmp))
    profiles = profiles_of(result)
    audience_keys = {a["key"] for a in audiences or []}
    trait_keys = {t["key"] for t in traits or []}

    def rows(frame: Any, id_column: str, table: str) -> dict[Any, dict[str, Any]]:
        json_columns = result.json_columns.get(table, set())
        out = {}
        for row in frame.iter_rows(named=True):
            entity = profiles[row[id_column]] if id_column == "profile_id" else row[id_column]
            values = {}
            for key, value in row.items():
                if key == id_column or (key in audience_keys and key not in trait_keys):
                    continue
                if value is None and key not in trait_keys:
                    continue  # a custom trait the entity does not have
                values[key] = (
                    orjson.loads(value) if key in json_columns and value is not None else value
                )
            out[entity] = values
        return out

    memberships: dict[str, set[Any]] = {a["key"]: set() for a in audiences or []}
    for row in result.memberships.iter_rows(named=True):
        entity = profiles[row["entity_id"]] if row["level"] == "user" else row["entity_id"]
        memberships.setdefault(row["audience_key"], set()).add(entity)
    return RefResult(
        profiles=list(profiles.values()),
        user_traits=rows(result.user_traits, "profile_id", "user_traits"),
        account_traits=rows(result.account_traits, "account_id", "account_traits"),
        memberships=memberships,
        quarantine=[
            (Path(r["source"]).name, r["line"], r["reason"])
            for r in ingested.quarantine.iter_rows(named=True)
        ],
    )


@pytest.fixture(autouse=True)
def _use_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selfcheck, "run", engine_run)


def _uses_run(function: Any) -> bool:
    try:
        return "run(" in inspect.getsource(function)
    except (OSError, TypeError):
        return False


for _name, _function in vars(selfcheck).items():
    if _name.startswith("test_") and callable(_function) and _uses_run(_function):
        globals()[_name] = _function
