"""Logging, configured in one place from -v/-q (and undone afterwards, so in-process callers such
as the tests get their own handlers back)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler

# Libraries that talk a lot at INFO; they stay at WARNING unless -vv asks for everything.
_CHATTY = ("httpx", "httpcore", "urllib3", "asyncio", "filelock", "sqlglot")
# Progress of long work (ingestion's files, MB and MB/s; its line accounting): shown at INFO by
# default, hidden by -q.
_PROGRESS = ("audience_pipeline.ingest",)


def level_for(verbosity: int, default: int = logging.WARNING) -> int:
    """-q: errors only; nothing: `default`; -v: info; -vv: debug."""
    if verbosity < 0:
        return logging.ERROR
    if verbosity == 0:
        return default
    return logging.INFO if verbosity == 1 else logging.DEBUG


def stderr_console() -> Console:
    """A console on the current sys.stderr (resolved at each write, as pytest's capture needs)."""
    return Console(stderr=True)


def _handler() -> logging.Handler:
    if sys.stderr.isatty():
        return RichHandler(console=stderr_console(), show_path=False, rich_tracebacks=False)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


class _ProgressFormatter(logging.Formatter):
    """Progress shown below the chosen level is a plain line; the rest keeps its log format."""

    def __init__(self, inner: logging.Formatter | None, level: int) -> None:
        super().__init__()
        self._inner = inner or logging.Formatter()
        self._level = level

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno < self._level:
            return record.getMessage()
        return self._inner.format(record)


@contextmanager
def configured_logging(verbosity: int, default: int = logging.WARNING) -> Iterator[None]:
    """Route log records at the level `verbosity` asks for to stderr while the block runs."""
    root = logging.getLogger()
    level = level_for(verbosity, default)
    handler = _handler()
    show_progress = verbosity >= 0
    handler.setLevel(min(level, logging.INFO) if show_progress else level)
    handler.addFilter(
        lambda r: r.levelno >= level or (show_progress and r.name.startswith(_PROGRESS))
    )
    handler.setFormatter(_ProgressFormatter(handler.formatter, level))
    saved_level = root.level
    chatty = {name: logging.getLogger(name).level for name in (*_CHATTY, *_PROGRESS)}
    if show_progress:
        for name in _PROGRESS:
            logging.getLogger(name).setLevel(min(level, logging.INFO))
    root.addHandler(handler)
    root.setLevel(level)
    if verbosity < 2:
        for name in _CHATTY:
            logging.getLogger(name).setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)
        for name, old in chatty.items():
            logging.getLogger(name).setLevel(old)


__all__ = ["configured_logging", "level_for", "stderr_console"]
