"""`compute --memory-limit`, and the Polars engine reading normalized events as a scan."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audience_pipeline import limits
from audience_pipeline.cli import main
from audience_pipeline.engine import memory
from audience_pipeline.ingest import ingest_to_parquet
from audience_pipeline.spec.loader import load_definitions

FIXTURE = Path(__file__).parent / "fixtures" / "smoke"
AS_OF = "2026-01-10T00:00:00Z"
TABLES = ("identities", "user_traits", "account_traits", "memberships", "account_user_memberships")


def compute(out: Path, events: Path, *extra: str) -> int:
    return main(["compute", "--definitions", str(FIXTURE / "definitions"), "--events",
                 str(events), "--as-of", AS_OF, "--out", str(out), *extra])  # fmt: skip


def assert_same_tables(a: Path, b: Path) -> None:
    for table in TABLES:
        assert_frame_equal(pl.read_parquet(a / f"{table}.parquet"),
                           pl.read_parquet(b / f"{table}.parquet"))  # fmt: skip


def test_memory_limit_and_a_normalized_folder_give_the_same_tables(tmp_path: Path) -> None:
    assert compute(tmp_path / "default", FIXTURE / "events.jsonl") == 0
    assert compute(tmp_path / "small", FIXTURE / "events.jsonl", "--memory-limit", "300MB") == 0
    assert memory.memory_limit() == 300 << 20
    assert_same_tables(tmp_path / "default", tmp_path / "small")
    definitions, _ = load_definitions(str(FIXTURE / "definitions"))
    normalized = tmp_path / "normalized"
    ingest_to_parquet(FIXTURE / "events.jsonl", definitions.space, normalized)
    assert compute(tmp_path / "scanned", normalized) == 0
    assert_same_tables(tmp_path / "default", tmp_path / "scanned")
    limits.set_memory_limit(None)  # back to the default


@pytest.mark.parametrize("value", ["lots", "10KB", "-1GB"])
def test_a_bad_memory_limit_is_one_line_naming_the_option(
    tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = compute(tmp_path / "out", FIXTURE / "events.jsonl", "--memory-limit", value)
    assert code != 0
    err = capsys.readouterr().err
    assert "--memory-limit" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "size"),
    [("6GB", 6 << 30), ("6GiB", 6 << 30), ("512M", 512 << 20), ("1.5g", 3 << 29),
     (str(1 << 30), 1 << 30)],
)  # fmt: skip
def test_parse_size(text: str, size: int) -> None:
    assert memory.parse_size(text) == size


def test_the_package_sets_the_allocator_before_polars_loads() -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != memory.ALLOCATOR_ENV}
    code = "import audience_pipeline, os, polars; print(os.environ['_RJEM_MALLOC_CONF'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)  # fmt: skip
    # Polars puts its own defaults first; jemalloc takes the last value of each option.
    assert out.stdout.strip().endswith(memory.ALLOCATOR_SETTING)


def test_dagster_engine_resource_sets_the_limit_for_its_run() -> None:
    import dagster as dg

    from audience_pipeline.orchestration.resources import EngineResource

    resource = EngineResource(memory_limit="1GB")
    try:
        resource.setup_for_execution(dg.build_init_resource_context())
        assert memory.memory_limit() == 1 << 30
    finally:
        limits.set_memory_limit(None)  # back to the default
