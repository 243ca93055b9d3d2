"""The current generation, and a background thread that loads the next one.

Requests read `store.current` once and use only that object: a swap is one reference assignment,
so a request sees the old run or the new one, never a mix. The reloader polls the warehouse's
commit point (the id of its current run changes exactly when a run commits); a run being
written is invisible until then, so the old generation keeps serving meanwhile. A reload's frames
are built in a child process at a lower CPU priority and mapped in (api/builder.py), so requests
keep their latency while a new run loads; the old generation is freed by reference counting once
the last request on it ends (it holds no per-entity Python objects, so that is quick).
"""

from __future__ import annotations

import gc
import logging
import threading
from pathlib import Path

from audience_pipeline.api.builder import build_frames_in_child
from audience_pipeline.api.tables import Generation, assemble_generation, build_generation
from audience_pipeline.progress import Laps
from audience_pipeline.spec.issues import DefinitionsError
from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.spec.models import Definitions
from audience_pipeline.warehouse.runs import current_stamp
from audience_pipeline.warehouse.snapshot import SnapshotChanged, open_snapshot

log = logging.getLogger(__name__)


def load_checked_definitions(definitions_dir: str | Path) -> Definitions:
    definitions, issues = load_definitions(str(definitions_dir))
    if issues:
        raise DefinitionsError(issues)
    return definitions


class Store:
    """Holds the generation being served and replaces it when the warehouse changes."""

    def __init__(
        self,
        warehouse: str | Path,
        definitions_dir: str | Path,
        *,
        events_days: int = 14,
        poll_seconds: float = 1.0,
        build_in_child: bool = True,
    ) -> None:
        self.warehouse = Path(warehouse)
        self.definitions_dir = str(definitions_dir)
        self.events_days = events_days
        self.poll_seconds = poll_seconds
        self.build_in_child = build_in_child  # reloads only: the first load has nobody waiting
        self._current: Generation | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    @property
    def current(self) -> Generation:
        generation = self._current
        if generation is None:
            msg = "no generation loaded yet"
            raise RuntimeError(msg)
        return generation

    def load(self, *, timeout: float = 60.0) -> Generation:
        """Load the warehouse's current run now (waiting while a run is being written)."""
        definitions = load_checked_definitions(self.definitions_dir)
        del timeout  # a committed run never needs waiting for
        snapshot = open_snapshot(self.warehouse)
        number = self._current.number + 1 if self._current else 1
        generation = build_generation(number, snapshot, definitions, events_days=self.events_days)
        self._swap(generation)
        log.info(
            "serving generation %d (as of %s) in %.1f s: %d profiles, %d accounts",
            generation.number, generation.as_of.isoformat(), generation.load_seconds,
            len(generation.users.ids), len(generation.accounts.ids),
        )  # fmt: skip
        return generation

    def _swap(self, generation: Generation) -> None:
        self._current = generation  # one reference assignment: requests see old or new
        # Few long-lived objects remain after a build; frozen, the cyclic GC never walks them.
        gc.freeze()

    def changed(self) -> bool:
        """Whether the warehouse published another run than the one being served."""
        current = self._current
        if current is None:
            return True
        stamp = current_stamp(self.warehouse)
        return stamp is not None and stamp != current.snapshot.stamp

    def reload_once(self) -> bool:
        """One poll: load and swap in a new run if there is one; True when swapped."""
        if not self.changed():
            return False
        try:
            definitions = load_checked_definitions(self.definitions_dir)
        except DefinitionsError as error:
            definitions = self.current.definitions
            log.warning("definitions are invalid; keeping the previous ones: %s", error)
        snapshot = open_snapshot(self.warehouse)
        number = self.current.number + 1
        if self.build_in_child:
            started = Laps().started
            try:
                frames = build_frames_in_child(self.warehouse, definitions, snapshot.stamp,
                                               events_days=self.events_days)  # fmt: skip
            except SnapshotChanged as error:
                log.info("warehouse changed while loading (%s); trying again", error)
                return False
            generation = assemble_generation(number, snapshot, definitions, frames,
                                             events_days=self.events_days, started=started)  # fmt: skip
        else:
            generation = build_generation(
                number, snapshot, definitions, events_days=self.events_days
            )
        self._swap(generation)
        log.info(
            "reloaded: generation %d (as of %s) in %.1f s",
            generation.number, generation.as_of.isoformat(), generation.load_seconds,
        )  # fmt: skip
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.reload_once()
                self.last_error = None
            except Exception as error:  # keep serving the old run whatever went wrong
                self.last_error = f"{type(error).__name__}: {error}"
                log.exception("reload failed; still serving generation %d", self.current.number)

    def start(self) -> None:
        """Start polling the warehouse in a daemon thread."""
        if self._thread is None and self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._run, name="warehouse-reload", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


__all__ = ["Store", "load_checked_definitions"]
