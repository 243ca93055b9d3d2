"""`compute --engine spark` over Segment-spec message files, on a real local Spark (local[2]).

The executors read and normalize the files; dedupe, quarantine, identity, traits and audiences
run in Spark. Against the Polars engine on the same files: every output table, the quarantine
rows and the dedupe count, for random definitions (many audiences and traits batched into one
space per example: a Spark run costs seconds, not milliseconds) over messy lines, and a rerun at the same as-of (changes and history diff against the run before it).
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from audience_pipeline import service
from audience_pipeline.demo.generate import DEFAULT_AS_OF, generate
from audience_pipeline.engine.compute import ComputeResult, compute
from audience_pipeline.ingest import IngestResult, ingest
from audience_pipeline.spec.compile import load_space_ir
from tests.agreement import Scenario, write_scenario
from tests.reference.strategies import AS_OF, audience_defs, event_files, spaces, trait_defs
from tests.unit.test_messy_lines import lines

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark missing"),
]

ROOT = Path(__file__).resolve().parents[2]
SQL_SPACE = Path(__file__).parent / "space"


def _both(spark: Any, events: Path, defs: Path,
          as_of: Any) -> tuple[Any, IngestResult, ComputeResult]:  # fmt: skip
    """The Spark run's result and the Polars engine's on the same files (no SQL traits)."""
    from audience_pipeline.identity.result import limits_by_rank
    from audience_pipeline.spark.from_messages import compute_messages

    definitions, space_ir = load_space_ir(str(defs), as_of)
    limits = limits_by_rank(definitions.space)
    run = compute_messages(spark, str(events), definitions, space_ir, as_of, limits)
    ingested = ingest(events, definitions.space, workers=1)
    expected = compute(ingested.events, ingested.trait_updates, definitions.space, space_ir,
                       as_of)  # fmt: skip
    return run, ingested, expected


def _assert_same(run: Any, ingested: IngestResult, expected: ComputeResult) -> None:
    for name, want in expected.tables().items():
        got = run.result.tables()[name]
        assert_frame_equal(got, want, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)
    assert run.result.json_columns == expected.json_columns
    rows = ("source", "line", "raw", "reason")
    assert sorted(run.quarantine.select(rows).iter_rows()) == sorted(
        ingested.quarantine.select(rows).iter_rows()
    )
    assert run.stats["duplicates"] == ingested.stats["duplicates"]
    assert run.stats["messages"] == ingested.events.height


@st.composite
def batched_scenario(
    draw: st.DrawFn,
) -> tuple[dict[str, str], dict[str, Any], list[Any], list[Any]]:
    """One space holding many random traits and audiences (the strategies the Polars, DuckDB
    and PostgreSQL agreement tests use), over one or two files of messages and a file of messy
    lines (`tests.unit.test_messy_lines`: lone surrogates, numbers beyond a double, timestamps
    out of range, nesting too deep, not JSON, not an object, blank lines)."""
    files = draw(event_files(max_messages=150))
    messy = draw(st.lists(lines(), min_size=10, max_size=40))
    files["messy.jsonl"] = "".join(text + "\n" for text, _ in messy)
    space = draw(spaces())
    traits = draw(trait_defs(max_traits=14))
    user_keys = [t["key"] for t in traits if t.get("level", "user") == "user"]
    account_keys = [t["key"] for t in traits if t.get("level") == "account"]
    audiences = draw(audience_defs(user_keys, account_keys, max_audiences=16))
    return files, space, traits, audiences


# No shrinking: each Spark run costs seconds, and shrinking a failure took more than 5 minutes
# (the failing example is printed as drawn).
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.reuse, Phase.generate])  # fmt: skip
@given(case=batched_scenario())
def test_random_definitions_and_messy_lines_agree_with_polars(spark: Any,
                                                              case: tuple[Any, ...]) -> None:  # fmt: skip
    files, space, traits, audiences = case
    with tempfile.TemporaryDirectory() as tmp:
        events, defs = write_scenario(Scenario(files, space, traits, audiences, AS_OF), Path(tmp))
        run, ingested, expected = _both(spark, events, defs, AS_OF)
    _assert_same(run, ingested, expected)


def _parquet_messages(path: Path) -> None:
    """A Parquet file of messages (nested fields as JSON text, as Segment's exports write)."""
    rows = [
        {"type": "track", "userId": "pq1", "event": "Order Completed", "messageId": "pq-1",
         "timestamp": "2026-02-20T10:00:00Z", "properties": json.dumps({"revenue": 12.5})},
        {"type": "identify", "userId": "pq1", "messageId": "pq-2",
         "timestamp": "2026-02-21T10:00:00Z", "properties": None},
        {"type": "track", "userId": None, "event": "Order Completed", "messageId": "pq-3",
         "timestamp": "2026-02-22T10:00:00Z", "properties": None},  # no identifier
    ]  # fmt: skip
    pl.DataFrame(rows).write_parquet(path)


def test_demo_files_and_a_rerun_agree_with_polars(spark: Any, tmp_path: Path) -> None:
    """gzip files and a Parquet file of messages, committed run by run: a second as-of, then
    the same as-of again (its changes and history diff against the first run, not against the
    run it replaces), as the Polars engine's runs do."""
    from audience_pipeline.spark.compute import compute_spark

    events = tmp_path / "events"
    generate(events, events=1500, seed=11, gzip=True, workers=1, files=2)
    _parquet_messages(events / "more.parquet")
    first, second = DEFAULT_AS_OF - timedelta(days=20), DEFAULT_AS_OF
    for as_of in (first, second, second):
        service.run_compute(events, SQL_SPACE, as_of, tmp_path / "polars")
        compute_spark(events, SQL_SPACE, as_of, tmp_path / "spark", session=spark)
        for name in ("memberships", "membership_changes", "membership_history", "identities",
                     "user_traits", "account_traits", "quarantine"):  # fmt: skip
            want = pl.read_parquet(tmp_path / "polars" / f"{name}.parquet")
            got = pl.read_parquet(tmp_path / "spark" / f"{name}.parquet")
            keys = [c for c in want.columns if c not in ("valid_to", "raw")][:4]
            assert_frame_equal(got.sort(keys), want.sort(keys), check_exact=False)
    changes = pl.read_parquet(tmp_path / "spark" / "membership_changes.parquet")
    assert changes.filter(pl.col("change") == "exited").height > 0  # the diff is not trivial
    quarantine = pl.read_parquet(tmp_path / "spark" / "quarantine.parquet")
    assert "more.parquet" in " ".join(quarantine["source"].to_list())


def test_sql_traits_agree_with_polars(spark: Any, tmp_path: Path) -> None:
    """The demo space's `kind: sql` traits (a CRM CSV source, and a query over the events) are
    computed by `compute --engine spark` from message files: the same trait columns and the
    same memberships (an audience reads `crm.plan`) as the Polars engine's run."""
    from audience_pipeline.spark.compute import compute_spark

    events = tmp_path / "events"
    generate(events, events=3000, seed=5, gzip=False, workers=1, files=2)
    definitions = ROOT / "definitions"
    service.run_compute(events, definitions, DEFAULT_AS_OF, tmp_path / "polars")
    compute_spark(events, definitions, DEFAULT_AS_OF, tmp_path / "spark", session=spark)
    tables = {}
    for name in ("user_traits", "account_traits", "memberships", "account_user_memberships"):
        want = pl.read_parquet(tmp_path / "polars" / f"{name}.parquet")
        got = pl.read_parquet(tmp_path / "spark" / f"{name}.parquet")
        assert_frame_equal(got, want, check_exact=False)
        tables[name] = got
    traits = tables["user_traits"]
    for column in ("crm.plan", "order_history.orders", "order_history.revenue"):
        assert traits[column].drop_nulls().len() > 0  # the SQL traits reached some profiles
    crm = tables["memberships"].filter(pl.col("audience_key") == "crm_pro_without_recent_orders")
    assert crm.height > 0


def test_sql_traits_from_segment_tables_in_the_catalog(spark: Any, tmp_path: Path) -> None:
    """Segment's tables as Spark tables of a database (`--events-schema`), with `kind: sql`
    traits: the same tables as from the same tables in a Parquet folder, quarantine rows
    naming the Segment table they came from."""
    from audience_pipeline.spark.compute import compute_spark, register_folder
    from tests.support.segment_tables import segment_frames

    generate(tmp_path / "events", events=800, seed=3, gzip=False, workers=1)
    folder = tmp_path / "segment"
    folder.mkdir()
    for name, frame in segment_frames(tmp_path / "events").items():
        frame.write_parquet(folder / f"{name}.parquet")
    register_folder(spark, folder, database="seg_catalog")
    definitions = ROOT / "definitions"
    compute_spark(folder, definitions, DEFAULT_AS_OF, tmp_path / "from_folder", session=spark)
    compute_spark(folder, definitions, DEFAULT_AS_OF, tmp_path / "from_catalog", session=spark,
                  schema="seg_catalog")  # fmt: skip
    for name in ("user_traits", "memberships", "identities"):
        want = pl.read_parquet(tmp_path / "from_folder" / f"{name}.parquet")
        got = pl.read_parquet(tmp_path / "from_catalog" / f"{name}.parquet")
        assert_frame_equal(got, want, check_exact=False)
    assert (
        pl.read_parquet(tmp_path / "from_catalog" / "user_traits.parquet")["crm.plan"]
        .drop_nulls()
        .len()
        > 0
    )
    sources = pl.read_parquet(tmp_path / "from_catalog" / "quarantine.parquet")["source"]
    assert all(s.startswith("warehouse:seg_catalog.") for s in sources.to_list())
