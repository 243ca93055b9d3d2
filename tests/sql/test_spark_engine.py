"""`compute --engine spark` on a real local Spark (local[2]): the Polars engine's tables from
Segment's tables in Parquet, every step in Spark."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audience_pipeline.demo.generate import DEFAULT_AS_OF, generate
from audience_pipeline.ingest.segment_warehouse import read_segment_warehouse
from audience_pipeline.spec.compile import load_space_ir
from tests.support.segment_tables import segment_frames

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark missing"),
]

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("identities", "user_traits", "account_traits", "memberships",
          "account_user_memberships")  # fmt: skip


def test_demo_space_on_spark_equals_polars(tmp_path: Path) -> None:
    """The demo space has `kind: sql` traits, so Spark reads Segment's tables as messages (as
    `compute --events-schema` does) and computes them: every table equals the Polars engine's
    run over the same tables (SQL traits included)."""
    from audience_pipeline.cli import main

    generate(tmp_path / "events", events=600, seed=7, gzip=False, workers=1)
    segment = tmp_path / "segment"
    segment.mkdir()
    database = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(database))
    con.execute("CREATE SCHEMA segment")
    for name, frame in segment_frames(tmp_path / "events").items():
        frame.write_parquet(segment / f"{name}.parquet")
        con.execute(f"CREATE TABLE segment.{name} AS SELECT * FROM frame")  # noqa: S608
    definitions, _ = load_space_ir(str(ROOT / "definitions"), DEFAULT_AS_OF)
    ingested = read_segment_warehouse(con, "segment", space=definitions.space)
    con.close()
    polars_out = tmp_path / "polars"
    assert main(["compute", "--events", str(database), "--events-schema", "segment",
                 "--definitions", str(ROOT / "definitions"), "--out", str(polars_out),
                 "--as-of", DEFAULT_AS_OF.isoformat()]) == 0  # fmt: skip
    expected = _Tables(polars_out)
    out = tmp_path / "out"
    code = main(["compute", "--engine", "spark", "--spark-master", "local[2]", "--events",
                 str(segment), "--definitions", str(ROOT / "definitions"), "--out", str(out),
                 "--as-of", DEFAULT_AS_OF.isoformat(), "--spark-tables", "audiences"])  # fmt: skip
    assert code == 0
    for name in TABLES:
        want = getattr(expected, name)
        got = pl.read_parquet(out / f"{name}.parquet").select(want.columns)
        assert want.height > 0
        keys = want.columns[:3]
        assert_frame_equal(got.sort(keys), want.sort(keys), check_dtypes=False,
                           check_exact=False)  # fmt: skip
    quarantine = pl.read_parquet(out / "quarantine.parquet")
    assert sorted(quarantine.select("source", "line", "reason").iter_rows()) == sorted(
        ingested.quarantine.select("source", "line", "reason").iter_rows()
    )
    assert expected.memberships.height > 0
    assert "crm.plan" in expected.user_traits.columns  # a SQL trait, computed by both
    kept = pl.read_parquet(out / "spark_tables" / "memberships" / "*.parquet")
    assert kept.height == expected.memberships.height  # also kept as a Spark table's files
    history = pl.read_parquet(out / "membership_history.parquet")
    assert history.height == expected.memberships.height  # a first run opens every stay
    # A rerun at the same as-of replaces the run and diffs against the run before it (none):
    # every member enters again, as on a first run (not "no change" against the run replaced).
    first = pl.read_parquet(out / "membership_changes.parquet")
    assert main(["compute", "--engine", "spark", "--spark-master", "local[2]", "--events",
                 str(segment), "--definitions", str(ROOT / "definitions"), "--out", str(out),
                 "--as-of", DEFAULT_AS_OF.isoformat()]) == 0  # fmt: skip
    again = pl.read_parquet(out / "membership_changes.parquet")
    assert_frame_equal(again.sort(again.columns), first.sort(first.columns))
    assert again.height == expected.memberships.height


class _Tables:
    """A run folder's tables by name (``tables.memberships``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __getattr__(self, name: str) -> pl.DataFrame:
        return pl.read_parquet(self.folder / f"{name}.parquet")
