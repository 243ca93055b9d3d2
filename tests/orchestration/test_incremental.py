"""Incremental recompute equals a full recompute on the same data, for random definitions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from audience_pipeline.demo.generate import generate
from audience_pipeline.engine.source import scan_events
from audience_pipeline.incremental import (
    TABLES,
    full_compute,
    load_state,
    refresh,
    save_state,
)
from audience_pipeline.ingest import ingest, write_normalized
from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.spec.models import Definitions
from tests.agreement import Scenario, write_scenario
from tests.reference.strategies import scenario


def _assert_same(got: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame]) -> None:
    for name in TABLES:
        assert_frame_equal(got[name], want[name], check_row_order=True), name


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(scenario(), st.integers(0, 72), st.randoms(use_true_random=False))
def test_incremental_equals_full(drawn: tuple, hours_back: int, rnd: object) -> None:
    files, space, traits, audiences, as_of = drawn
    case = Scenario(files, space, traits, audiences, as_of)
    with tempfile.TemporaryDirectory() as tmp:
        events_dir, defs = write_scenario(case, Path(tmp))
        definitions, issues = load_definitions(defs)
        assert not issues
        data = ingest(events_dir, definitions.space)
        # The previous run saw fewer messages (some had not arrived), at an earlier as-of.
        seqs = data.events["seq"].to_list()
        late = {s for s in seqs if rnd.random() < 0.3}  # type: ignore[attr-defined]
        old_events = data.events.filter(~pl.col("seq").is_in(list(late)))
        old_updates = data.trait_updates.filter(~pl.col("seq").is_in(list(late)))
        t0 = as_of - timedelta(hours=hours_back)
        before = full_compute(old_events, old_updates, definitions, t0)
        save_state(before.state, Path(tmp) / "state")
        previous = load_state(Path(tmp) / "state")
        got = refresh(data.events, data.trait_updates, definitions, as_of, previous)
        want = full_compute(data.events, data.trait_updates, definitions, as_of)
        _assert_same(got.tables, want.tables)
        again = refresh(data.events, data.trait_updates, definitions, as_of, got.state)
        _assert_same(again.tables, want.tables)
        # From a scan of the normalized events (as the CLI hands them): the same tables.
        write_normalized(data, Path(tmp) / "normalized")
        scan = scan_events(Path(tmp) / "normalized")
        scanned = refresh(scan, data.trait_updates, definitions, as_of, previous)
        _assert_same(scanned.tables, want.tables)


# --- the demo definitions, day by day --------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
END = datetime(2026, 3, 1, tzinfo=UTC)


def _without_scores(definitions: Definitions) -> Definitions:
    """The demo minus its score and SQL traits and the audiences that read them (a space with
    them always refreshes in full: see the test below)."""
    whole = {t.key for t in definitions.traits if t.kind in ("score", "sql")}
    names = re.compile(r"\b(" + "|".join(sorted(whole)) + r")\b")
    keep = tuple(a for a in definitions.audiences if not names.search(str(a.condition)))
    traits = tuple(t for t in definitions.traits if t.key not in whole)
    return replace(definitions, traits=traits, audiences=keep)


def test_score_traits_refresh_in_full_and_equal_a_full_run(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    generate(raw, events=1500, profiles=100, accounts=10, as_of=END, days=100, files=2,
             gzip=False)  # fmt: skip
    definitions, issues = load_definitions(str(ROOT / "definitions"))
    assert not issues and any(t.kind == "score" for t in definitions.traits)
    data = ingest(sorted(raw.glob("events-*")), definitions.space)
    before = full_compute(data.events, data.trait_updates, definitions, END - timedelta(days=1))
    got = refresh(data.events, data.trait_updates, definitions, END, before.state)
    want = full_compute(data.events, data.trait_updates, definitions, END)
    assert (got.mode, got.reason) == ("full", "score traits rank every entity of their level")
    _assert_same(got.tables, want.tables)


def test_demo_space_day_by_day_equals_full(tmp_path: Path) -> None:
    """The repository's definitions (windows of 7 to 90 days, funnels, users: nodes, a
    backfill: false audience, account traits) over 100 days of demo data: each daily run, from
    the state the previous one saved, equals a full run, and recomputes only part of it."""
    raw = tmp_path / "raw"
    generate(raw, events=6000, profiles=400, accounts=30, as_of=END, days=100, files=10,
             gzip=False)  # fmt: skip
    definitions, issues = load_definitions(str(ROOT / "definitions"))
    assert not issues
    definitions = _without_scores(definitions)
    files = sorted(raw.glob("events-*"))
    # The first runs have not seen the last file yet (it lands late, with older events too).
    early = ingest(files[:-1], definitions.space)
    data = ingest(files, definitions.space)
    state = full_compute(early.events, early.trait_updates, definitions, END - timedelta(days=4))
    save_state(state.state, tmp_path / "state")
    for days_back, part in ((3, early), (2, early), (1, data), (0, data)):
        as_of = END - timedelta(days=days_back)
        previous = load_state(tmp_path / "state")
        got = refresh(part.events, part.trait_updates, definitions, as_of, previous)
        want = full_compute(part.events, part.trait_updates, definitions, as_of)
        assert (got.mode, got.reason) == ("incremental", "")
        _assert_same(got.tables, want.tables)
        assert 0 < got.profiles_recomputed < want.tables["user_traits"].height
        assert got.messages_recomputed < want.messages_recomputed
        save_state(got.state, tmp_path / "state")


# --- custom trait names and types that collide with helper columns --------------------------

SPACE = {
    "space": "corners",
    "identifiers": [
        {"type": "user_id", "from": "userId", "limit": 1},
        {"type": "anonymous_id", "from": "anonymousId", "limit": 100},
    ],
}
# Names a merge or engine helper might use for its own columns, with values whose JSON types
# mix across profiles and runs (a column is native or JSON text depending on all its values).
TRICKY = ["size", "len", "value", "key", "known", "literal", "id_type", "profile_id_", "seq"]


def _identify(user: str, traits: dict[str, object], ts: str, line: int) -> str:
    return orjson.dumps(
        {
            "type": "identify",
            "userId": user,
            "messageId": f"m{line}",
            "timestamp": ts,
            "traits": traits,
        }  # fmt: skip
    ).decode()


@pytest.mark.parametrize(
    "later",
    [
        {"size": 3, "len": 2.5, "value": True},  # same kinds as before
        {"size": "large", "len": None, "value": "x"},  # kinds now mixed: JSON text
        {"key": [1, 2], "known": {"a": 1}},  # containers
        {"literal": None, "seq": 7},  # a column that empties, one that appears
    ],
)
def test_custom_trait_corners_equal_full(tmp_path: Path, later: dict[str, object]) -> None:
    events = tmp_path / "events"
    events.mkdir()
    first = {name: index for index, name in enumerate(TRICKY)} | {"literal": "t"}
    lines = [
        _identify("u1", first, "2026-02-01T00:00:00Z", 0),
        _identify("u2", {"size": 1.5, "len": 4, "value": False}, "2026-02-01T00:00:00Z", 1),
        _identify("u3", {"id_type": "email"}, "2026-02-02T00:00:00Z", 2),
    ]
    (events / "a.jsonl").write_text("\n".join(lines) + "\n")
    defs = tmp_path / "definitions"
    (defs / "audiences").mkdir(parents=True)
    (defs / "space.yaml").write_text(yaml.safe_dump(SPACE))
    (defs / "audiences" / "sized.yaml").write_text(
        yaml.safe_dump({"key": "sized", "name": "Sized", "condition": {"traits": "size > 1"}})
    )
    definitions, issues = load_definitions(str(defs))
    assert not issues
    t0 = datetime(2026, 2, 10, tzinfo=UTC)
    before = ingest(events, definitions.space)
    state = full_compute(before.events, before.trait_updates, definitions, t0).state
    (events / "b.jsonl").write_text(_identify("u2", later, "2026-02-11T00:00:00Z", 3) + "\n")
    data = ingest(events, definitions.space)
    t1 = datetime(2026, 2, 12, tzinfo=UTC)
    got = refresh(data.events, data.trait_updates, definitions, t1, state)
    want = full_compute(data.events, data.trait_updates, definitions, t1)
    _assert_same(got.tables, want.tables)
    assert got.mode == "incremental" or got.reason.startswith("trait column")


def test_repeated_message_key_falls_back_to_full(tmp_path: Path) -> None:
    """Two messages with one (source, line) cannot be told apart from the state: full run."""
    events = tmp_path / "events"
    events.mkdir()
    (events / "a.jsonl").write_text(_identify("u1", {"size": 1}, "2026-02-01T00:00:00Z", 0) + "\n")
    defs = tmp_path / "definitions"
    defs.mkdir()
    (defs / "space.yaml").write_text(yaml.safe_dump(SPACE))
    definitions, issues = load_definitions(str(defs))
    assert not issues
    data = ingest(events, definitions.space)
    t0 = datetime(2026, 2, 10, tzinfo=UTC)
    state = full_compute(data.events, data.trait_updates, definitions, t0).state
    twice = pl.concat([data.events, data.events.with_columns(pl.col("seq") + 1)])
    got = refresh(twice, data.trait_updates, definitions, t0 + timedelta(days=1), state)
    assert (got.mode, got.reason) == ("full", "messages without a unique (source, line)")


# --- the state's fingerprint is the same in every process ------------------------------------


def test_fingerprint_is_the_same_in_every_process() -> None:
    """A new process (a CLI run, a sensor's run) must recognise the state an earlier one saved:
    the fingerprint may not depend on string hashing (set order), which differs per process."""
    code = (
        "from audience_pipeline.spec.loader import load_definitions\n"
        "from audience_pipeline.incremental import definitions_fingerprint\n"
        f"d, _ = load_definitions({str(ROOT / 'definitions')!r})\n"
        "print(definitions_fingerprint(d))\n"
    )
    prints = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in (1, 2, 3, 4)
    }
    assert len(prints) == 1, prints
