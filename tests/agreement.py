"""Run the engine and the brute-force reference on the same scenario, in comparable shapes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import yaml

from audience_pipeline.engine.compute import ComputeResult, compute
from audience_pipeline.ingest import IngestResult, ingest
from audience_pipeline.spec.compile import load_space_ir
from tests.reference.evaluator import RefResult, evaluate

Profile = frozenset[tuple[str, str]]


@dataclass
class Scenario:
    files: dict[str, str]
    space: dict[str, Any]
    traits: list[dict[str, Any]]
    audiences: list[dict[str, Any]]
    as_of: datetime


def write_scenario(scenario: Scenario, root: Path) -> tuple[Path, Path]:
    events = root / "events"
    defs = root / "definitions"
    (defs / "traits").mkdir(parents=True, exist_ok=True)
    (defs / "audiences").mkdir(parents=True, exist_ok=True)
    events.mkdir(parents=True, exist_ok=True)
    for name, text in scenario.files.items():
        (events / name).write_text(text)
    (defs / "space.yaml").write_text(yaml.safe_dump(scenario.space))
    for trait in scenario.traits:
        (defs / "traits" / f"{trait['key']}.yaml").write_text(yaml.safe_dump(trait))
    for audience in scenario.audiences:
        (defs / "audiences" / f"{audience['key']}.yaml").write_text(yaml.safe_dump(audience))
    return events, defs


def run_engine(scenario: Scenario, root: Path) -> tuple[IngestResult, ComputeResult]:
    events, defs = write_scenario(scenario, root)
    definitions, space = load_space_ir(str(defs), scenario.as_of)
    ingested = ingest(events, definitions.space)
    result = compute(
        ingested.events, ingested.trait_updates, definitions.space, space, scenario.as_of
    )
    return ingested, result


def profiles_of(result: ComputeResult) -> dict[str, Profile]:
    grouped: dict[str, set[tuple[str, str]]] = {}
    for row in result.identities.iter_rows(named=True):
        grouped.setdefault(row["profile_id"], set()).add((row["id_type"], row["id_value"]))
    return {pid: frozenset(ids) for pid, ids in grouped.items()}


def engine_memberships(result: ComputeResult) -> dict[str, set[Any]]:
    profiles = profiles_of(result)
    out: dict[str, set[Any]] = {}
    for row in result.memberships.iter_rows(named=True):
        entity = profiles[row["entity_id"]] if row["level"] == "user" else row["entity_id"]
        out.setdefault(row["audience_key"], set()).add(entity)
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int | float):
        return "n"
    if isinstance(value, str):
        return "s"
    return "o"


def expected_column(values: dict[Any, Any], computed_kind: str | None) -> dict[Any, Any]:
    """Reference values as the engine stores them (SPEC 5a: native if one JSON type, else JSON)."""
    if computed_kind in ("count", "unique_count", "sum", "avg", "min", "max", "score"):
        return {k: None if v is None else float(v) for k, v in values.items()}
    if computed_kind in ("most_frequent", "unique_list"):
        return values
    kinds = {_kind(v) for v in values.values() if v is not None}
    if len(kinds) <= 1 and kinds != {"o"}:
        return {k: float(v) if kinds == {"n"} and v is not None else v for k, v in values.items()}
    return {k: None if v is None else JsonText(v) for k, v in values.items()}


class JsonText:
    """An expected JSON-text cell: equal to any JSON text of the same value (12 == 12.0)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, str):
            return False
        try:
            return bool(orjson.loads(other) == self.value)
        except orjson.JSONDecodeError:
            return False

    def __repr__(self) -> str:
        return f"JsonText({orjson.dumps(self.value).decode()})"


def same(a: Any, b: Any) -> bool:
    if isinstance(b, JsonText):
        return b == a
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def compare_traits(
    frame: pl.DataFrame,
    id_column: str,
    to_entity: dict[str, Any],
    reference: dict[Any, dict[str, Any]],
    computed_kinds: dict[str, str],
) -> list[str]:
    """Differences between engine trait columns and the reference's trait values."""
    problems = []
    keys = {k for traits in reference.values() for k in traits} | set(computed_kinds)
    rows = {to_entity[r[id_column]]: r for r in frame.iter_rows(named=True)}
    for key in sorted(keys):
        ref_values = {entity: traits.get(key) for entity, traits in reference.items()}
        expected = expected_column(ref_values, computed_kinds.get(key))
        for entity, want in expected.items():
            row = rows.get(entity)
            got = None if row is None else row.get(key)
            if (
                isinstance(got, float)
                and isinstance(want, int | float)
                and not isinstance(want, bool)
            ):
                want = float(want)
            if not same(got, want):
                problems.append(
                    f"trait {key} of {sorted(entity) if isinstance(entity, frozenset) else entity}: engine {got!r} != reference {want!r}"
                )
    return problems


def reference_result(scenario: Scenario) -> RefResult:
    return evaluate(
        scenario.files, scenario.space, scenario.traits, scenario.audiences, scenario.as_of
    )


def differences(scenario: Scenario, root: Path) -> list[str]:
    """Every disagreement between the engine and the reference on one scenario."""
    ingested, result = run_engine(scenario, root)
    ref = reference_result(scenario)
    problems: list[str] = []
    profiles = profiles_of(result)
    if set(profiles.values()) != set(ref.profiles):
        problems.append(
            f"profiles differ: engine-only {set(profiles.values()) - set(ref.profiles)}, "
            f"reference-only {set(ref.profiles) - set(profiles.values())}"
        )
        return problems
    quarantine = sorted(
        (Path(r["source"]).name, r["line"], r["reason"])
        for r in ingested.quarantine.iter_rows(named=True)
    )
    ref_quarantine = sorted((Path(s).name, line, reason) for s, line, reason in ref.quarantine)
    if quarantine != ref_quarantine:
        problems.append(f"quarantine differs: engine {quarantine} reference {ref_quarantine}")
    members = engine_memberships(result)
    for audience in scenario.audiences:
        key = audience["key"]
        got, want = members.get(key, set()), ref.memberships.get(key, set())
        if got != want:
            problems.append(
                f"audience {key}: engine-only {sorted(map(str, got - want))}, "
                f"reference-only {sorted(map(str, want - got))}"
            )
    user_kinds = {t["key"]: t["kind"] for t in scenario.traits if t.get("level", "user") == "user"}
    account_kinds = {t["key"]: t["kind"] for t in scenario.traits if t.get("level") == "account"}
    audience_keys = {a["key"] for a in scenario.audiences}
    user_frame = result.user_traits.drop(
        [c for c in result.user_traits.columns if c in audience_keys and c not in user_kinds]
    )
    problems += compare_traits(user_frame, "profile_id", profiles, ref.user_traits, user_kinds)
    account_frame = result.account_traits.drop(
        [c for c in result.account_traits.columns if c in audience_keys and c not in account_kinds]
    )
    problems += compare_traits(
        account_frame, "account_id", {a: a for a in account_frame["account_id"].to_list()},
        ref.account_traits, account_kinds,
    )  # fmt: skip
    return problems
