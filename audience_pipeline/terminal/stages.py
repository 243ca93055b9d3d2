"""Progress of long work: a Rich spinner per stage on a terminal, plain lines elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

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
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress, listening(_RichStages(progress)):
        yield


def _plain_line(event: StageEvent) -> None:
    if event.state == "start":
        click.echo(f"{event.name} ...", err=True)
    else:
        click.echo(f"{event.name} done in {event.seconds:.2f} s", err=True)


class _RichStages:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, event: StageEvent) -> None:
        if event.state == "start":
            self.tasks[event.name] = self.progress.add_task(event.name, total=None)
            return
        task = self.tasks.pop(event.name, None)
        if task is not None:
            label = f"{event.name} ({event.seconds:.1f} s)"
            self.progress.update(task, total=1, completed=1, description=label)


__all__ = ["show_stages"]
