"""The warehouse folder: its layout, the commit point of a run, and reading a run.

Writers go through `begin_run` (a run is written where no reader looks, then made visible by one
atomic rename); readers through `open_run` (resolved once) or `open_snapshot` (pinned, for
long-lived readers). See `writer` and `runs` for how, docs/storage.md for why.
"""

from __future__ import annotations

from audience_pipeline.warehouse.guard import EmptyInput, check_not_empty
from audience_pipeline.warehouse.layout import CATALOG, CURRENT, NORMALIZED, RUNS, STATE
from audience_pipeline.warehouse.runs import (
    NoWarehouse,
    Run,
    current_stamp,
    open_run,
    require_run,
)
from audience_pipeline.warehouse.writer import RunWriter, begin_run

__all__ = [
    "CATALOG",
    "CURRENT",
    "NORMALIZED",
    "RUNS",
    "STATE",
    "EmptyInput",
    "NoWarehouse",
    "Run",
    "RunWriter",
    "begin_run",
    "check_not_empty",
    "current_stamp",
    "open_run",
    "require_run",
]
