"""Options and fixtures of the SQL backend's tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-snapshots",
        action="store_true",
        default=False,
        help="rewrite the golden SQL under tests/snapshots instead of comparing with it",
    )


@pytest.fixture
def update_snapshots(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-snapshots"))


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local[2] Spark session per test module (test_spark.py keeps its own)."""
    from audience_pipeline.spark.compute import spark_session

    session = spark_session("local[2]", str(tmp_path_factory.mktemp("spark") / "warehouse"))
    session.conf.set("spark.sql.shuffle.partitions", "2")
    yield session
    session.stop()
