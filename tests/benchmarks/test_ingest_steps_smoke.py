"""benchmarks/ingest_steps.py on the smoke fixture: every step prints a figure, and both readers
write the same number of events (no timing asserts: the figures live in docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEPS = (
    "orjson_loads",
    "per_line_normalizer",
    "fast_block_frame",
    "fast_reader_read",
    "fast_reader_build_of_which",
    "duckdb_json_structure",
    "duckdb_typed_read_json",
    "polars_regex_key_skeleton",
)


def _ingest_steps():  # type: ignore[no-untyped-def]
    path = ROOT / "benchmarks" / "ingest_steps.py"
    spec = importlib.util.spec_from_file_location("ingest_steps", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_every_step_prints_a_figure(capsys: pytest.CaptureFixture[str]) -> None:
    events = ROOT / "tests" / "fixtures" / "smoke" / "events.jsonl"
    code = _ingest_steps().main([str(events), "--lines", "200", "--repeat", "1", "--write-parts"])
    assert code == 0
    figures = dict(
        line.split(": ", 1) for line in capsys.readouterr().out.splitlines() if ": " in line
    )
    for step in STEPS:
        assert float(figures[f"{step}_cpu_s_per_100k"]) >= 0, step
    per_line = int(figures["write_parts_per_line_events"])
    assert per_line > 0
    assert int(figures["write_parts_fast_events"]) == per_line


@pytest.mark.slow
def test_the_native_reader_writes_the_same_events(capsys: pytest.CaptureFixture[str]) -> None:
    events = ROOT / "tests" / "fixtures" / "smoke" / "events.jsonl"
    argv = [str(events), "--skip-steps", "--write-parts", "--readers", "per_line", "native"]
    assert _ingest_steps().main(argv) == 0
    figures = dict(
        line.split(": ", 1) for line in capsys.readouterr().out.splitlines() if ": " in line
    )
    per_line = int(figures["write_parts_per_line_events"])
    assert per_line > 0
    assert int(figures["write_parts_native_events"]) == per_line
