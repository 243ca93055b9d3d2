"""Dagster's run: today's daily partitions in, every table committed as one run.

The run itself is the facade every run goes through (`service.run`, incremental); this module
only says where Dagster's messages come from (`Partitions`). No Dagster here: assets call
`engine_step`, and so can scripts and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from audience_pipeline.ingest.result import IngestResult
from audience_pipeline.ingest.schema import QUARANTINE_COLUMNS, empty_frame
from audience_pipeline.membership.refresh import (
    EngineRun,
    custom_only,
    refresh_engine,
    run_engine,
    run_tables,
)
from audience_pipeline.service import Loaded, run
from audience_pipeline.spec.models import Definitions
from audience_pipeline.warehouse import Run, RunWriter, check_not_empty
from audience_pipeline.warehouse.guard import lines_read
from audience_pipeline.warehouse.layout import STATE
from audience_pipeline.warehouse.partitions import (
    combine_partitions,
    pin_partitions,
    quarantined_reasons,
)

STATE_DIR = STATE
ALLOW_EMPTY_OPTION = "allow_empty (AUDIENCE_PIPELINE_ALLOW_EMPTY=1)"


@dataclass(frozen=True)
class Partitions:
    """The daily partitions of raw events and trait updates in `warehouse` (every day so far),
    hard-linked into the run as its inputs."""

    warehouse: Path

    def load(self, writer: RunWriter, definitions: Definitions, *, allow_empty: bool) -> Loaded:
        del definitions  # the partitions were ingested with the space's rules already
        events, updates = pin_partitions(self.warehouse, writer)
        read = lines_read(events.height, quarantined_reasons(self.warehouse))
        check_not_empty(read, writer.previous, source=self.warehouse / "raw_events",
                        allow_empty=allow_empty, option=ALLOW_EMPTY_OPTION)  # fmt: skip
        ingested = IngestResult(events, updates, empty_frame(QUARANTINE_COLUMNS))
        return Loaded(ingested, "partitions")


def engine_step(
    warehouse: Path,
    definitions_dir: str | Path,
    as_of: datetime,
    *,
    allow_empty: bool = False,
    engine: str = "polars",
    dsn: str | None = None,
) -> tuple[EngineRun, Run]:
    """The Dagster pipeline's run: pin the partitions, refresh every table incrementally, write
    them, the state and the audience registry into a new run folder, and commit it (one atomic
    step; `service.run` with ``incremental=True``).

    Raises:
        DefinitionsError: invalid definitions, or a deleted audience key defined again.
        EmptyInput: no partition holds a message while the last run had some.
    """
    warehouse = Path(warehouse)
    outcome = run(definitions_dir, Partitions(warehouse), warehouse, as_of, engine=engine,
                  dsn=dsn, incremental=True, allow_empty=allow_empty)  # fmt: skip
    assert outcome.engine_run is not None  # incremental runs always have one
    return outcome.engine_run, outcome.committed


__all__ = [
    "ALLOW_EMPTY_OPTION",
    "EngineRun",
    "Partitions",
    "combine_partitions",
    "custom_only",
    "engine_step",
    "pin_partitions",
    "refresh_engine",
    "run_engine",
    "run_tables",
]
