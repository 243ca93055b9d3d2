"""Reloads and restarts: unchanged definitions start no run; a change recomputes its dependents."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import orjson
import pytest

from audience_pipeline.incremental import definition_hash
from audience_pipeline.membership.registry import Registry
from audience_pipeline.orchestration.definitions import build_definitions
from audience_pipeline.orchestration.resources import PipelineSettings
from audience_pipeline.spec.loader import load_definitions
from tests.orchestration.conftest import ROOT

STATE = (
    "import sys, orjson\n"
    "from audience_pipeline.orchestration.sensors import definitions_state\n"
    "sys.stdout.write(orjson.dumps(definitions_state(sys.argv[1]), "
    "option=orjson.OPT_SORT_KEYS).decode())\n"
)


def _state_in_process(definitions_dir: str, seed: int) -> str:
    env = {**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", STATE, definitions_dir], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    return done.stdout


def _evaluate(defs: dg.Definitions, cursor: str | None) -> dg.SensorResult:
    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def("definitions_changed")
    context = dg.build_sensor_context(
        cursor=cursor, repository_def=repo, instance=dg.DagsterInstance.ephemeral()
    )
    return sensor.evaluate_tick(context)  # type: ignore[return-value]


def _recorded(space: PipelineSettings) -> None:
    """The warehouse's registry knows every definition (as after the demo's first run)."""
    definitions, _ = load_definitions(space.definitions_dir)
    registry = Registry.of_warehouse(Path(space.warehouse_dir))
    registry.record(definitions, datetime(2026, 3, 1, tzinfo=UTC))
    registry.save()


def test_definitions_fingerprint_is_the_same_in_every_process() -> None:
    states = {_state_in_process(str(ROOT / "definitions"), seed) for seed in (1, 2, 3)}
    assert len(states) == 1
    assert orjson.loads(states.pop())["space"]


def test_a_restart_with_unchanged_definitions_starts_no_run(space: PipelineSettings) -> None:
    _recorded(space)
    # The cursor a sensor saved in another process (another string hash seed): a restart or a
    # "Reload definitions" evaluates the sensor in a new process with this cursor.
    cursor = _state_in_process(space.definitions_dir, seed=7)
    result = _evaluate(build_definitions(space), cursor)
    assert not result.run_requests
    assert "unchanged" in (result.skip_message or "")


def test_an_edited_audience_recomputes_only_what_depends_on_it(space: PipelineSettings) -> None:
    _recorded(space)
    defs = build_definitions(space)
    baseline = _evaluate(defs, None)
    assert not baseline.run_requests
    path = Path(space.definitions_dir) / "audiences" / "big_spenders.yaml"
    path.write_text(path.read_text().replace("total_revenue_90d > 500", "total_revenue_90d > 600"))
    result = _evaluate(defs, baseline.cursor)
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    selected = {key.to_user_string() for key in request.asset_selection or []}
    assert request.tags["audience_pipeline/changed"] == "audience/big_spenders"
    assert {"memberships", "membership_history", "membership_snapshots"} <= selected
    assert "audiences/big_spenders" in selected
    graph = defs.get_repository_def().asset_graph
    dependents = {
        k.to_user_string()
        for k in dg.AssetSelection.assets(["audiences", "big_spenders"]).downstream().resolve(graph)
    }
    others = {
        k.to_user_string() for k in graph.get_all_asset_keys()
        if k.path[0] in ("audiences", "traits")
    } - dependents  # fmt: skip
    assert others and not (selected & others)
    # ...and the same edit seen again (a reload after the run) starts nothing.
    again = _evaluate(defs, result.cursor)
    assert not again.run_requests


def test_an_edit_reloads_the_code_location_before_its_run(
    space: PipelineSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a webserver known, the sensor has the code location reloaded first, so the run's
    code versions are the ones the UI shows (no "Unsynced - has a new code version" after it)."""
    from audience_pipeline.orchestration import reload

    received: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(orjson.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(reload.URL_ENV, f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setattr(reload, "_requested_at", None)
    try:
        _recorded(space)
        defs = build_definitions(space)
        baseline = _evaluate(defs, None)
        path = Path(space.definitions_dir) / "audiences" / "big_spenders.yaml"
        path.write_text(path.read_text().replace("> 500", "> 700"))
        waiting = _evaluate(defs, baseline.cursor)
        assert not waiting.run_requests and "reloading" in (waiting.skip_message or "")
        deadline = time.time() + 10
        while not received and time.time() < deadline:
            time.sleep(0.1)
        assert received and received[0]["variables"] == {"name": "audience_pipeline"}
        assert "reloadRepositoryLocation" in str(received[0]["query"])
        reloaded = build_definitions(space)  # what the reload loads
        ran = _evaluate(reloaded, baseline.cursor)
        assert len(ran.run_requests) == 1
        node = reloaded.get_repository_def().asset_graph.get(
            dg.AssetKey(["audiences", "big_spenders"])
        )
        definitions, _ = load_definitions(space.definitions_dir)
        edited = next(a for a in definitions.audiences if a.key == "big_spenders")
        assert node.code_version == definition_hash(edited.raw)
    finally:
        server.shutdown()
