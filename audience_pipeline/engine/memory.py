"""The engine's memory limit: a setting of the process (the CLI's `--memory-limit`, Dagster's
engine resource), from which `compute` chooses how many buckets of profiles it evaluates at a
time (`engine.buckets.choose_buckets`).

The limit is what the engine plans for, not a hard cap the allocator enforces: the bucket count
keeps one bucket's evaluation within what the limit leaves after the run's fixed tables.
"""

from __future__ import annotations

import os

from audience_pipeline import limits

DEFAULT_MEMORY_LIMIT = 6 << 30  # leaves room under 8 GiB for Python, the libraries and writes
MIN_MEMORY_LIMIT = 256 << 20

# jemalloc (Polars' allocator) keeps freed pages for 0.5-1 s by default; a run that frees one
# stage's tables before the next allocates would then hold both. Returning them at once (0 ms)
# cost a page fault on every reallocation (about 40% of a 10M run's CPU was system time); 250 ms
# keeps pages between a stage's steps: 13% less CPU at 10M, peak 4.7 GB (docs/benchmarks.md).
# Only read when Polars is first imported: `audience_pipeline/__init__.py` sets it.
ALLOCATOR_ENV = "_RJEM_MALLOC_CONF"
ALLOCATOR_SETTING = "dirty_decay_ms:250,muzzy_decay_ms:250"


def parse_size(text: str) -> int:
    """``6GB``, ``6GiB``, ``512M``, ``8589934592`` -> bytes (binary units: 1 GB = 1024**3;
    `limits.parse_size` reads them).

    Raises:
        ValueError: not a size, or below 256 MiB.
    """
    try:
        size = limits.parse_size(text, binary=True)
    except ValueError:
        msg = f"not a size: {text!r} (examples: 6GB, 512MB)"
        raise ValueError(msg) from None
    if size < MIN_MEMORY_LIMIT:
        msg = f"{text!r} is below the smallest limit, 256MB"
        raise ValueError(msg)
    return size


def set_memory_limit(limit: int | str) -> int:
    """Set the process's memory limit (bytes, or a size text) for every later `compute`.

    The one process setting lives in the neutral `limits` module, so the DuckDB engine plans
    for the same limit.
    """
    size = parse_size(limit) if isinstance(limit, str) else max(MIN_MEMORY_LIMIT, limit)
    limits.set_memory_limit(size)
    return size


def memory_limit() -> int:
    """The process's memory limit in bytes (`limits`: the process's, else
    AUDIENCE_PIPELINE_MEMORY_LIMIT, else its default, the same 6 GiB as DEFAULT_MEMORY_LIMIT)."""
    return limits.memory_limit_bytes()


def configure_allocator() -> None:
    """Have jemalloc hand freed pages back soon (`ALLOCATOR_SETTING`), unless the caller set it.

    Effective only before Polars is first imported (the package's `__init__` calls it).
    """
    os.environ.setdefault(ALLOCATOR_ENV, ALLOCATOR_SETTING)


__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "configure_allocator",
    "memory_limit",
    "parse_size",
    "set_memory_limit",
]
