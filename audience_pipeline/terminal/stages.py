"""Progress of long work: a Rich spinner per stage on a terminal (a bar with the detail once the
stage reports how far it is, as ingestion does per file), plain lines elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from audience_pipeline.progress import StageEvent, listening
from audience_pipeline.terminal.logs import stderr_console


@contextmanager
def show_stages(enabled: bool = True) -> Iterator[None]:
    """Draw the stages (audience_pipeline.progress) announced while the block runs."""
    if not enabled:
        yield
        return
    console = stderr_console()
    if not console.is_terminal:
        with listening(_plain_line):
            yield
        return
    columns = (
        SpinnerColumn(finished_text="[green]✓"),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
    )
    progress = Progress(*columns, console=console)
    with progress, listening(_RichStages(progress), draws_progress=True):
        yield


def _plain_line(event: StageEvent) -> None:
    # `advance` news is already a log line where nothing draws a bar (see progress.advance).
    if event.state == "start":
        click.echo(f"{event.name} ...", err=True)
    elif event.state == "done":
        click.echo(f"{event.name} done in {event.seconds:.2f} s", err=True)


class _RichStages:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.running: tuple[str, TaskID] | None = None

    def __call__(self, event: StageEvent) -> None:
        if event.state == "start":
            started = self.progress.add_task(event.name, total=None)
            self.tasks[event.name] = started
            self.running = (event.name, started)
            return
        if event.state == "advance":
            self._advance(event)
            return
        task = self.tasks.pop(event.name, None)
        if task is not None:
            label = f"{event.name} ({event.seconds:.1f} s)"
            self.progress.update(task, total=1, completed=1, description=label)

    def _advance(self, event: StageEvent) -> None:
        if self.running is None:
            return
        name, task = self.running
        if name not in self.tasks:
            return
        label = event.detail or name
        self.progress.update(task, total=event.total, completed=event.completed, description=label)


__all__ = ["show_stages"]
