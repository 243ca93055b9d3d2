"""DuckDB's memory limit for `compute --engine duckdb` (AUDIENCE_PIPELINE_DUCKDB_MEMORY_LIMIT)."""

from __future__ import annotations

import duckdb
import pytest

from audience_pipeline.sql.compute import MEMORY_LIMIT_ENV, _duckdb_config


def test_memory_limit_from_the_environment_reaches_duckdb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "512MB")
    con = duckdb.connect(config=_duckdb_config())
    try:
        limit = con.execute("SELECT current_setting('memory_limit')").fetchone()
        spill = con.execute("SELECT current_setting('temp_directory')").fetchone()
    finally:
        con.close()
    assert limit is not None and limit[0].replace(" ", "") in {"488.2MiB", "512.0MB", "488.3MiB"}
    assert spill is not None and spill[0].endswith("audience_pipeline_duckdb")


def test_without_the_variable_duckdb_keeps_its_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    assert _duckdb_config() == {}
