"""benchmarks/segment_warehouse.py (DuckDB) writes the tables the plain-Python helper
`tests/support/segment_tables.py` writes: same tables, same columns, dtypes and rows in the same
order, on demo messages (bad lines included) and on hand-written edge cases."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import polars as pl
from polars.testing import assert_frame_equal

from audience_pipeline.demo.generate import generate
from tests.support.segment_tables import segment_frames

ROOT = Path(__file__).resolve().parents[2]


def _builder() -> ModuleType:
    path = ROOT / "benchmarks" / "segment_warehouse.py"
    spec = importlib.util.spec_from_file_location("segment_warehouse", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _assert_same_tables(events: Path, out: Path) -> dict[str, pl.DataFrame]:
    counts = _builder().build(events, out)
    want = segment_frames(events)
    assert set(counts) == set(want)
    for name, expected in want.items():
        got = pl.read_parquet(out / f"{name}.parquet")
        assert set(got.columns) == set(expected.columns), name
        assert_frame_equal(got.select(expected.columns), expected)
    return want


def test_demo_messages(tmp_path: Path) -> None:
    events = tmp_path / "events"
    generate(events, events=4000, seed=7, gzip=False, workers=1, files=2)
    tables = _assert_same_tables(events, tmp_path / "tables")
    assert tables["tracks"].height > 1000 and "order_completed" in tables


def test_edge_cases(tmp_path: Path) -> None:
    lines = [
        {"type": "track", "userId": 42, "event": "Order Completed!", "messageId": "m1",
         "timestamp": "2026-01-02T03:04:05+02:00",
         "properties": {"total": 10, "items": [{"sku": "a"}, 2], "mixed": 1, "flag": True,
                        "Nested": {"Deep": {"x": 1.5}}, "user_id": "ignored", "gone": None},
         "context": {"device": {"type": "ios"}, "tags": ["a", "b"]}},
        {"type": "track", "anonymousId": "a1", "event": "Order Completed!", "messageId": "m2",
         "timestamp": "2026-01-02T03:04:05Z", "receivedAt": "not a time",
         "properties": {"total": 2.5, "mixed": "text", "flag": False}, "context": "not an object"},
        {"type": "track", "anonymousId": "a1", "event": "!!!", "timestamp": "2026-01-03T00:00:00Z"},
        {"type": "page", "userId": "u1", "name": "Home", "timestamp": "2026-01-02T00:00:00Z",
         "properties": {"name": "dropped", "path": "/"}},
        {"type": "identify", "userId": "u1", "traits": {"email": "A@x.io", "plan": {"tier": 1}},
         "context": {"traits": {"email": "a@x.io"}}},
        {"type": "group", "userId": "u1", "groupId": 7, "traits": {"name": "Acme"},
         "timestamp": "2026-01-02T00:00:00"},
        {"type": "alias", "userId": "u2", "previousId": "a1", "timestamp": "2026-01-02T00:00:00Z"},
        {"type": "pageview", "userId": "u1"},
        {"type": "track", "userId": "u1", "event": "X", "timestamp": "yesterday"},
    ]  # fmt: skip
    events = tmp_path / "events"
    events.mkdir()
    text = "\n".join(json.dumps(line) for line in lines) + '\n{"cut short\n[1, 2]\n'
    (events / "a.jsonl").write_text(text)
    tables = _assert_same_tables(events, tmp_path / "tables")
    assert tables["order_completed"].height == 2 and "nested_deep_x" in tables["order_completed"]
