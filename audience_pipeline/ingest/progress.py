"""Progress of an ingestion run: files and bytes done, and the rate, for whoever listens.

Ingestion reports through one small callback (:data:`ProgressCallback`); the CLI can draw a bar
from it, a Dagster asset can forward it to ``context.log``, and without a listener it goes to
the ``audience_pipeline.ingest`` logger as plain lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from audience_pipeline.progress import advance, drawing

logger = logging.getLogger("audience_pipeline.ingest")

# Reports within a file: to a bar at most this often; as lines at most one per LINE_SECONDS or
# per tenth of the input (a 7 GB file gives about ten lines, not one per block).
BAR_SECONDS = 0.1
LINE_SECONDS = 5.0


@dataclass(frozen=True)
class Progress:
    """Where an ingestion run is: ``stage`` is "read" (files; ``bytes_done`` counts the bytes
    read so far within files too), "assemble" or "done"; or "export" (Segment's warehouse
    tables becoming messages: ``files_*`` count tables, ``rows_*`` their rows)."""

    stage: str
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    seconds: float
    rows_done: int = 0
    rows_total: int = 0

    @property
    def mb_per_s(self) -> float:
        """Input megabytes (10^6, on disk) read per second so far."""
        return self.bytes_done / 1e6 / self.seconds if self.seconds > 0 else 0.0

    @property
    def rows_per_s(self) -> float:
        """Warehouse rows exported per second so far."""
        return self.rows_done / self.seconds if self.seconds > 0 else 0.0

    def completed(self) -> tuple[float, float]:
        """(done, total) in this stage's unit: rows while exporting, else bytes."""
        if self.stage == "export":
            return self.rows_done, self.rows_total
        return self.bytes_done, self.bytes_total

    def describe(self) -> str:
        """One plain line, e.g. ``ingest read: 3/8 files, 1,089.2/2,903.4 MB, 41.2 MB/s, 26.4 s``."""
        if self.stage == "export":
            return (
                f"ingest export: {self.files_done}/{self.files_total} tables, "
                f"{self.rows_done:,}/{self.rows_total:,} rows, {self.rows_per_s:,.0f} rows/s, "
                f"{self.seconds:.1f} s"
            )
        return (
            f"ingest {self.stage}: {self.files_done}/{self.files_total} files, "
            f"{self.bytes_done / 1e6:,.1f}/{self.bytes_total / 1e6:,.1f} MB, "
            f"{self.mb_per_s:.1f} MB/s, {self.seconds:.1f} s"
        )


ProgressCallback = Callable[[Progress], None]


@dataclass
class Pace:
    """When a report is worth sending: to a bar every BAR_SECONDS; as a line once a tenth more
    of the work is done or LINE_SECONDS passed since the last."""

    _last_time: float = -1e9
    _last_tenth: int = -1

    def due(self, done: float, total: float) -> bool:
        now = time.perf_counter()
        tenth = int(done * 10 // total) if total else 10
        wait = BAR_SECONDS if drawing() else LINE_SECONDS
        if now - self._last_time < wait and tenth <= self._last_tenth:
            return False
        self._last_time, self._last_tenth = now, tenth
        return True


def log_progress(progress: Progress) -> None:
    """The default listener: the running stage advances (a bar on the CLI's terminal), and where
    nothing draws it, one INFO line per report."""
    line = progress.describe()
    done, total = progress.completed()
    if not advance(done, total, line):
        logger.info("%s", line)


@dataclass
class Tracker:
    """Counts files and bytes as they are read and reports to a callback: each file done (a
    tenth of the files or bytes, or LINE_SECONDS, since the last report, or the last file),
    and bytes read within files (to a bar every BAR_SECONDS, else as lines as rarely)."""

    sizes: list[int]
    callback: ProgressCallback = log_progress
    files_done: int = 0
    start: float = field(default_factory=time.perf_counter)
    finished_bytes: int = 0
    partial: dict[int, int] = field(default_factory=dict)  # file index -> bytes read so far
    _last_time: float = field(default=-1.0, repr=False)
    _last_tenths: tuple[int, int] = field(default=(-1, -1), repr=False)

    @property
    def bytes_done(self) -> int:
        """Bytes of the files read so far (whole files and the parts read of running ones)."""
        return self.finished_bytes + sum(self.partial.values())

    def reset(self) -> None:
        """Start counting again (reading starts over)."""
        self.files_done = self.finished_bytes = 0
        self.partial.clear()

    def report(self, stage: str) -> None:
        """Send the current state, tagged with ``stage``."""
        now = time.perf_counter()
        self._last_time, self._last_tenths = now, self._tenths()
        self.callback(
            Progress(
                stage,
                self.files_done,
                len(self.sizes),
                self.bytes_done,
                sum(self.sizes),
                now - self.start,
            )
        )

    def _tenths(self) -> tuple[int, int]:
        total_bytes, total_files = sum(self.sizes), len(self.sizes)
        return (
            self.bytes_done * 10 // total_bytes if total_bytes else 10,
            self.files_done * 10 // total_files if total_files else 10,
        )

    def _due(self, seconds: float) -> bool:
        now = time.perf_counter()
        if now - self._last_time >= seconds:
            return True
        done, last = self._tenths(), self._last_tenths
        return done[0] > last[0] or done[1] > last[1]

    def file_done(self, index: int) -> None:
        """One more file read (``index`` into ``sizes``)."""
        self.files_done += 1
        self.partial.pop(index, None)
        self.finished_bytes += self.sizes[index]
        if self.files_done == len(self.sizes) or self._due(
            BAR_SECONDS if drawing() else LINE_SECONDS
        ):
            self.report("read")

    def file_progress(self, index: int, read: int) -> None:
        """File ``index`` has ``read`` of its bytes read (a file read in one go says nothing
        here: its `file_done` does)."""
        size = self.sizes[index]
        if read >= size or read <= self.partial.get(index, 0):
            return
        self.partial[index] = read
        if self._due(BAR_SECONDS if drawing() else LINE_SECONDS):
            self.report("read")


def show_on_stderr() -> None:
    """Print the ingest logger's INFO lines (progress, the final accounting) on stderr.

    For a command line without logging set up; does nothing when the logger has a handler.
    """
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
