"""Stages of long work, announced to whoever listens (the CLI draws them; nothing else needs to),
and `Laps`, the one timer for code that only measures its steps.

Library code marks its stages with a `Stages` object (`stages.start("ingest")` ends the stage
before it; `stages.finish()` ends the last); it costs a list lookup when nobody listens. The CLI
registers a listener that draws a Rich status on a terminal and plain lines elsewhere; each
stage's duration is also logged at INFO for `-v`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageEvent:
    """A stage started or finished, or (``advance``) the running stage moved to ``completed`` of
    ``total`` units, ``detail`` saying it in words (e.g. files, MB and MB/s of an ingest)."""

    name: str
    state: Literal["start", "advance", "done"]
    seconds: float = 0.0
    completed: float = 0.0
    total: float | None = None
    detail: str = ""


Listener = Callable[[StageEvent], None]
_listeners: list[Listener] = []
# Listeners that draw `advance` events themselves (a terminal bar), so callers need not log them.
_drawing: list[Listener] = []


def _notify(event: StageEvent) -> None:
    for listener in list(_listeners):
        listener(event)


class Stages:
    """Consecutive stages of one piece of work; their seconds go to `timings[name]`."""

    def __init__(self, timings: dict[str, float] | None = None) -> None:
        self.timings = timings if timings is not None else {}
        self._current: str | None = None
        self._started = 0.0

    def start(self, name: str) -> None:
        self.finish()
        self._current, self._started = name, time.perf_counter()
        _notify(StageEvent(name, "start"))

    def finish(self) -> None:
        if self._current is None:
            return
        name, seconds = self._current, time.perf_counter() - self._started
        self._current = None
        self.timings[name] = seconds
        log.info("%s: done in %.2f s", name, seconds)
        _notify(StageEvent(name, "done", seconds))


class Laps:
    """Seconds of consecutive steps, for logs and reports (not announced: see `Stages`).

    `lap(name)` records the seconds since the previous lap (or the start) under `name`;
    `total` is the seconds since the start. ``Laps(started)`` counts from an earlier
    `time.perf_counter()` reading.
    """

    def __init__(self, started: float | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter() if started is None else started
        self._last = self.started

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        return seconds

    @property
    def total(self) -> float:
        return time.perf_counter() - self.started

    def describe(self, digits: int = 1) -> str:
        """``tables 0.2s, messages 1.4s``."""
        return ", ".join(f"{name} {seconds:.{digits}f}s" for name, seconds in self.seconds.items())


def advance(completed: float, total: float | None, detail: str) -> bool:
    """Tell listeners the running stage reached `completed` of `total`.

    Returns whether a listener draws it (a progress bar), so the caller can skip logging the same
    news as a line.
    """
    _notify(StageEvent("", "advance", completed=completed, total=total, detail=detail))
    return bool(_drawing)


def drawing() -> bool:
    """Whether a listener draws `advance` events (a bar): frequent reports are then welcome."""
    return bool(_drawing)


@contextmanager
def listening(listener: Listener, draws_progress: bool = False) -> Iterator[None]:
    """Call `listener` with every stage event while the block runs.

    ``draws_progress``: the listener shows `advance` events itself (see `advance`).
    """
    _listeners.append(listener)
    if draws_progress:
        _drawing.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)
        if draws_progress:
            _drawing.remove(listener)


__all__ = ["Laps", "Listener", "StageEvent", "Stages", "advance", "drawing", "listening"]
