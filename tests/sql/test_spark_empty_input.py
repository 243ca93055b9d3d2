"""The empty-input guard (SPEC 7) on `compute --engine spark`, as on the Polars engine: a run
that reads no event does not replace a run that had events (exit 1, one line naming
`--allow-empty`); `--allow-empty` writes it; a first run of nothing is written.

No input file is refused before Spark starts; a folder whose only file cannot be read is refused
after the executors read it (its quarantine row says so, and lines that could not be read are
not lines read)."""

from __future__ import annotations

import gzip
import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from audience_pipeline import service
from audience_pipeline.cli import main
from audience_pipeline.warehouse import EmptyInput, open_run

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pyspark") is None,
                                reason="pyspark missing")  # fmt: skip

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "smoke"
DEFINITIONS = str(FIXTURE / "definitions")
EVENTS = FIXTURE / "events.jsonl"
AS_OF = "2026-01-10T00:00:00Z"
AS_OF_TIME = datetime(2026, 1, 10, tzinfo=UTC)


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """A warehouse whose last run read events (the Polars engine's)."""
    out = tmp_path / "warehouse"
    code = main(["-q", "compute", "--definitions", DEFINITIONS, "--events", str(EVENTS),
                 "--as-of", AS_OF, "--out", str(out)])  # fmt: skip
    assert code == 0
    return out


def _cli(
    capsys: pytest.CaptureFixture[str], events: Path, out: Path, *extra: str
) -> tuple[int, str]:
    code = main(["-q", "compute", "--engine", "spark", "--definitions", DEFINITIONS,
                 "--events", str(events), "--as-of", AS_OF, "--out", str(out), *extra])  # fmt: skip
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _polars_refuses(events: Path, out: Path) -> bool:
    try:
        service.run_compute(events, DEFINITIONS, AS_OF_TIME, out)
    except EmptyInput:
        return True
    return False


@pytest.mark.parametrize("kind", ["empty folder", "missing path", "unknown extensions"])
def test_no_input_file_is_refused_before_spark_starts(
    kind: str, warehouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import audience_pipeline.spark.compute as spark_compute

    events = tmp_path / "landing"
    if kind != "missing path":
        events.mkdir()
    if kind == "unknown extensions":
        (events / "notes.txt").write_text("not an event file\n")
    before = open_run(warehouse)
    assert before is not None and before.messages

    def no_spark(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("Spark started for an empty input")

    monkeypatch.setattr(spark_compute, "spark_session", no_spark)
    code, err = _cli(capsys, events, warehouse)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and "--allow-empty" in lines[0]
    assert str(events) in lines[0]
    after = open_run(warehouse)
    assert after is not None and after.run_id == before.run_id  # nothing replaced
    assert _polars_refuses(events, warehouse)  # the Polars engine refuses the same input


@pytest.mark.slow
def test_unreadable_files_are_refused_and_allow_empty_writes(spark: Any, warehouse: Path,
                                                             tmp_path: Path) -> None:  # fmt: skip
    """Only a damaged gzip file: no line read, refused as the Polars engine refuses it;
    with allow_empty the run is written (every member exits); a first run of nothing is
    written without it."""
    from audience_pipeline.spark.compute import compute_spark

    events = tmp_path / "landing"
    events.mkdir()
    (events / "broken.jsonl.gz").write_bytes(gzip.compress(EVENTS.read_bytes())[:40])
    as_of = AS_OF_TIME
    before = open_run(warehouse)
    assert before is not None
    with pytest.raises(EmptyInput, match="--allow-empty"):
        compute_spark(events, DEFINITIONS, as_of, warehouse, session=spark)
    assert open_run(warehouse).run_id == before.run_id  # type: ignore[union-attr]
    assert _polars_refuses(events, warehouse)

    later = as_of + timedelta(days=1)  # (a rerun at the same as-of diffs against its base)
    run = compute_spark(events, DEFINITIONS, later, warehouse, session=spark, allow_empty=True)
    assert run.tables["memberships"] == 0
    exited = pl.read_parquet(warehouse / "membership_changes.parquet")
    assert exited.height > 0 and set(exited["change"]) == {"exited"}

    nothing = tmp_path / "nothing-here"
    nothing.mkdir()
    first = compute_spark(nothing, DEFINITIONS, as_of, tmp_path / "fresh", session=spark)
    assert first.tables["identities"] == 0 and open_run(tmp_path / "fresh") is not None
