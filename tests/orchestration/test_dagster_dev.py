"""`dagster dev` starts on 127.0.0.1, serves the asset graph over GraphQL, and stops as a group."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.orchestration.conftest import ROOT

QUERY = '{"query": "{ assetNodes { assetKey { path } } }"}'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_dagster_dev_serves_asset_keys(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "AUDIENCE_PIPELINE_WAREHOUSE": str(tmp_path / "warehouse"),
        "AUDIENCE_PIPELINE_LANDING": str(tmp_path / "landing"),
    }
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text(
        (ROOT / "dagster_home/dagster.yaml").read_text()
    )
    command = ["setsid", "env", "--default-signal=INT,TERM", "dagster", "dev", "-w",
               "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        keys: list[str] = []
        deadline = time.time() + 90
        while time.time() < deadline and not keys:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql", data=QUERY.encode(),
                    headers={"Content-Type": "application/json"},
                )  # fmt: skip
                with urllib.request.urlopen(request, timeout=5) as response:
                    body = json.loads(response.read())
                nodes = (body.get("data") or {}).get("assetNodes") or []
                keys = ["/".join(n["assetKey"]["path"]) for n in nodes]
            except OSError:
                time.sleep(1)
        assert "memberships" in keys and "raw_events" in keys
        assert any(k.startswith("audiences/") for k in keys)
    finally:
        os.killpg(process.pid, signal.SIGINT)  # setsid: the process group is the child's pid
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # The children (webserver, daemon, code server) stop a few seconds after the parent; wait
    # for the whole group, and only if it outlives that, kill what is left, so no process of
    # the test survives it either way.
    if not _group_gone(process.pid, timeout=60):
        os.killpg(process.pid, signal.SIGKILL)
        assert _group_gone(process.pid, timeout=10), "dagster dev's children survived SIGKILL"
        pytest.fail("dagster dev's children outlived SIGINT to the group by 60 s")


def _group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False
