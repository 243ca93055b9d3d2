"""Stages of long work, announced to whoever listens (the CLI draws them; nothing else needs to).

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
    name: str
    state: Literal["start", "done"]
    seconds: float = 0.0


Listener = Callable[[StageEvent], None]
_listeners: list[Listener] = []


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


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call `listener` with every stage event while the block runs."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


__all__ = ["Listener", "StageEvent", "Stages", "listening"]
