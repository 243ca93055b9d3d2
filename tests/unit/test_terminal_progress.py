"""The CLI's progress: on a terminal ingestion's per-file reports move a bar (and are not logged a
second time); elsewhere they stay plain log lines."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console
from rich.progress import Progress

from audience_pipeline.ingest.progress import Progress as IngestProgress
from audience_pipeline.ingest.progress import log_progress
from audience_pipeline.progress import Stages, listening
from audience_pipeline.terminal.stages import _RichStages


def _report(done: int, total: int) -> IngestProgress:
    return IngestProgress("read", 1, 2, done, total, 2.0)


def test_ingest_reports_move_the_running_stage_bar(caplog: pytest.LogCaptureFixture) -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    bar = Progress(console=console)
    drawer = _RichStages(bar)
    caplog.set_level(logging.INFO, logger="audience_pipeline.ingest")
    with bar, listening(drawer, draws_progress=True):
        stages = Stages()
        stages.start("ingest")
        log_progress(_report(300_000_000, 1_000_000_000))
        (task,) = bar.tasks
        assert (task.completed, task.total) == (300_000_000, 1_000_000_000)
        assert "1/2 files" in task.description and "MB/s" in task.description
        stages.start("compute")
        log_progress(_report(1_000_000_000, 1_000_000_000))
        ingest_task, compute_task = bar.tasks
        # the finished stage keeps its end; the report lands on the stage that runs now
        assert ingest_task.completed == ingest_task.total == 1
        assert compute_task.completed == 1_000_000_000
    assert not [r for r in caplog.records if r.name == "audience_pipeline.ingest"]


def test_without_a_bar_reports_stay_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    caplog.set_level(logging.INFO, logger="audience_pipeline.ingest")
    with listening(lambda event: seen.append(event.state)):
        log_progress(_report(5_000_000, 10_000_000))
    assert seen == ["advance"]
    (record,) = [r for r in caplog.records if r.name == "audience_pipeline.ingest"]
    assert "5.0/10.0 MB" in record.getMessage()


def test_an_advance_before_any_stage_is_ignored() -> None:
    bar = Progress(console=Console(file=io.StringIO(), force_terminal=True))
    with bar, listening(_RichStages(bar), draws_progress=True):
        log_progress(_report(1, 2))
    assert bar.tasks == []
