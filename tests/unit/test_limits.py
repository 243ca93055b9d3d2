"""The memory-limit setting every engine reads (`audience_pipeline.limits`)."""

from __future__ import annotations

import pytest

from audience_pipeline.limits import (
    DEFAULT_MEMORY_LIMIT,
    MEMORY_LIMIT_ENV,
    memory_limit_bytes,
    parse_size,
    set_memory_limit,
)
from audience_pipeline.sql.compute import MEMORY_LIMIT_ENV as DUCKDB_ENV
from audience_pipeline.sql.compute import duckdb_memory_limit


def test_sizes_in_decimal_and_binary_units() -> None:
    assert parse_size("6GiB") == 6 * 1024**3
    assert parse_size("6GB") == 6 * 1000**3
    assert parse_size("512 mib") == 512 * 1024**2
    assert parse_size("1024") == 1024
    with pytest.raises(ValueError, match="not a memory size: '6 parsecs'"):
        parse_size("6 parsecs")


def test_value_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    set_memory_limit(None)  # an earlier CLI test in this process may have set one
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    assert memory_limit_bytes() == parse_size(DEFAULT_MEMORY_LIMIT) < 8 * 1024**3
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "2GiB")
    assert memory_limit_bytes() == 2 * 1024**3
    assert memory_limit_bytes("1GiB") == 1024**3
    set_memory_limit("3GiB")  # what the CLI's --memory-limit or Dagster's resource sets
    try:
        assert memory_limit_bytes() == 3 * 1024**3
        assert memory_limit_bytes("1GiB") == 1024**3
    finally:
        set_memory_limit(None)
    assert memory_limit_bytes() == 2 * 1024**3


def test_duckdb_gets_a_share_unless_its_own_setting_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(DUCKDB_ENV, raising=False)
    assert duckdb_memory_limit("4GiB") == "2048MiB"
    monkeypatch.setenv(DUCKDB_ENV, "3GB")
    assert duckdb_memory_limit() == "3GB"
    assert duckdb_memory_limit("4GiB") == "2048MiB"
