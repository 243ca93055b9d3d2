"""The bucketed engine (levels evaluated a bucket of profiles / accounts at a time, events read
from a lazy scan and a spill) gives exactly the tables of the one-bucket engine.

Random scenarios from the reference strategies: accounts whose members fall in different
buckets, `users:` conditions, funnels, samples, scores (ranked across every bucket), custom
traits; and a demo-generator space with `kind: sql` traits over more profiles.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from polars.testing import assert_frame_equal

from audience_pipeline.demo.generate import generate
from audience_pipeline.engine.buckets import choose_buckets
from audience_pipeline.engine.compute import ComputeResult, compute
from audience_pipeline.ingest import ingest
from audience_pipeline.spec.compile import load_space_ir
from audience_pipeline.sqltraits.run import run_sql_traits
from tests.agreement import Scenario, write_scenario
from tests.reference.strategies import scenario


def assert_same(expected: ComputeResult, got: ComputeResult, label: str) -> None:
    for name, frame in expected.tables().items():
        try:
            assert_frame_equal(frame, got.tables()[name], check_column_order=False)
        except AssertionError as error:
            raise AssertionError(f"{label}: {name}: {error}") from error
    assert expected.json_columns == got.json_columns, label
    assert expected.stats == got.stats, label


def _check_buckets(events: pl.DataFrame, updates: pl.DataFrame, definitions, space, as_of,
                   root: Path, **kwargs: object) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    args = (updates, definitions.space, space, as_of)
    whole = compute(events, *args, **kwargs)  # type: ignore[arg-type]
    for count in (2, 7):
        assert_same(whole, compute(events, *args, buckets=count, **kwargs), f"{count} in memory")  # type: ignore[arg-type]
    path = root / "events.parquet"
    events.write_parquet(path)
    for count in (1, 2, 7):
        got = compute(pl.scan_parquet(path), *args, buckets=count, spill_dir=root, **kwargs)  # type: ignore[arg-type]
        assert_same(whole, got, f"{count} from a scan")
    assert [p.name for p in root.iterdir()] == ["events.parquet"]  # the spill is gone


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenario())
def test_buckets_equal_one_bucket(drawn: tuple) -> None:
    _drawn_buckets(drawn, spread=None)


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenario())
def test_sparse_seqs_from_a_scan_equal_one_bucket(drawn: tuple) -> None:
    # Seqs far apart: the scan's events are joined to their profiles on seq instead of looking
    # them up in an array indexed by seq (the dense path the test above takes).
    _drawn_buckets(drawn, spread=pl.col("seq") * 1_000_003 + 7)


def _drawn_buckets(drawn: tuple, spread: pl.Expr | None) -> None:
    """Ingest a drawn scenario (seqs rewritten by `spread`) and check every bucket count."""
    files, space_def, traits, audiences, as_of = drawn
    case = Scenario(files, space_def, traits, audiences, as_of)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        events_dir, defs = write_scenario(case, root / "in")
        definitions, space = load_space_ir(str(defs), as_of)
        data = ingest(events_dir, definitions.space, workers=1)
        events, updates = data.events, data.trait_updates
        if spread is not None:
            events, updates = events.with_columns(spread), updates.with_columns(spread)
        work = root / "work"
        work.mkdir()
        _check_buckets(events, updates, definitions, space, as_of, work)


AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
SQL_TRAITS = [
    {"key": "facts", "kind": "sql", "query":
     "SELECT user_id, count(*) AS n, max(timestamp) AS last_at FROM events "
     "WHERE user_id IS NOT NULL GROUP BY user_id"},
    {"key": "acct", "kind": "sql", "level": "account", "query":
     "SELECT group_id, count(*) AS members FROM groups GROUP BY group_id"},
]  # fmt: skip


@pytest.mark.parametrize("definitions_dir", ["benchmarks/definitions", "definitions"])
def test_buckets_on_generated_data_with_sql_traits(tmp_path: Path, definitions_dir: str) -> None:
    defs = tmp_path / "definitions"
    root = Path(__file__).resolve().parents[2]
    import shutil

    shutil.copytree(root / definitions_dir, defs)
    (defs / "traits").mkdir(exist_ok=True)
    for trait in SQL_TRAITS:
        (defs / "traits" / f"{trait['key']}.yaml").write_text(yaml.safe_dump(trait))
    generate(tmp_path / "events", events=6000, profiles=600, accounts=40, as_of=AS_OF,
             days=60, files=1, gzip=False)  # fmt: skip
    definitions, space = load_space_ir(str(defs), AS_OF)
    data = ingest(tmp_path / "events", definitions.space, workers=1)
    rows = run_sql_traits(definitions, data.events, data.trait_updates, AS_OF)
    work = tmp_path / "work"
    work.mkdir()
    _check_buckets(data.events, data.trait_updates, definitions, space, AS_OF, work,
                   sql_traits=rows)  # fmt: skip


def test_choose_buckets_follows_the_limit() -> None:
    assert choose_buckets(10_000_000, 10_000_000, None) == 1
    assert choose_buckets(0, 0, 1 << 30) == 1
    small, large = (choose_buckets(n, n, 6 << 30) for n in (1_000_000, 30_000_000))
    assert small == 1 and large > 1
    assert choose_buckets(30_000_000, 30_000_000, 3 << 30) > large
