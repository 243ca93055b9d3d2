"""benchmarks/freshness.py end to end on a small demo: every stage is reached, in order (no
timing asserts: the figure lives in docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _freshness():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("freshness", ROOT / "benchmarks" / "freshness.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_every_stage_is_reached_in_order(tmp_path: Path) -> None:
    freshness = _freshness()
    stages = freshness.run(tmp_path, events=3000, days=4, timeout=600)
    order = [stages[name] for name in freshness.STAGES]
    assert all(not math.isnan(value) and value > 0 for value in order), stages
    assert stages["run_requested"] <= stages["run_started"] <= stages["run_finished"]
    assert stages["run_started"] <= stages["memberships_rewritten"] <= stages["run_finished"]
    assert stages["run_finished"] <= stages["sync_started"] <= stages["webhook_received"]
    assert stages["freshness_s"] == stages["webhook_received"]
    assert stages["messages_received"] >= 2  # at least the new user's identify and track
