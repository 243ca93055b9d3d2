"""A demo warehouse computed once per session, and a real `serve` process over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.support import Expected, Server, compute, make_events, start_server


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api_demo")
    compute(make_events(root / "events"), root / "warehouse")
    return root


@pytest.fixture(scope="session")
def warehouse(demo: Path) -> Path:
    return demo / "warehouse"


@pytest.fixture(scope="session")
def expected(warehouse: Path) -> Expected:
    return Expected(warehouse)


@pytest.fixture(scope="session")
def server(demo: Path, warehouse: Path) -> Iterator[Server]:
    running = start_server(warehouse, demo / "server.log")
    yield running
    running.stop()
