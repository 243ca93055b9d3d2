"""Writing a run: everything into `runs/<run_id>/`, then one atomic step makes it visible.

1. `begin_run` takes the folder's writer lock, removes what killed runs left behind, resolves the
   committed run (`previous`) and the run this one derives from (`base`), and makes an empty run
   folder no reader looks at.
2. The caller writes every table and input there (`RunWriter.write`, or into `folder` directly).
3. `RunWriter.commit` writes `run.json`, then swaps the `current` link to the new folder with
   `os.replace` of a fresh relative symlink: the one atomic step. The fixed links
   `<table>.parquet -> current/<table>.parquet` never change, so every table path switches runs
   at that same instant. Old runs beyond the last few are then removed.

A run killed before the swap leaves the previous run current and untouched; its folder is
removed by the next run. A run killed after the swap is committed whole.

`base`: changes, history and the incremental state derive from the committed run, except when
that run has the same as-of as this one (a rerun of the same moment, e.g. after a kill right
after a commit): then from that run's own base. So a rerun after a kill at any moment writes
what one clean run would have, table by table.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl

from audience_pipeline.warehouse.catalog import table_views
from audience_pipeline.warehouse.cleanup import sweep
from audience_pipeline.warehouse.files import fsync_dir, fsync_tree, write_parquet
from audience_pipeline.warehouse.layout import (
    CATALOG,
    CATALOG_STALE,
    CURRENT,
    FORMAT,
    LEGACY_MANIFEST,
    LOCK,
    NORMALIZED,
    RUN_FILE,
    RUNS,
    keep_runs,
    table_file,
)
from audience_pipeline.warehouse.runs import Run, open_run, open_run_id, read_run_file

log = logging.getLogger(__name__)


# Called at every write boundary of a run; empty in production. Fault-injection tests add a
# hook that stops the run exactly there (`tests/test_commit.py`).
boundary_hooks: list[Callable[[str], None]] = []


def checkpoint(step: str) -> None:
    """A write boundary of a run (see `boundary_hooks`)."""
    for hook in boundary_hooks:
        hook(step)


@contextmanager
def writer_lock(warehouse: Path) -> Iterator[None]:
    """One writer per warehouse at a time (a second one waits); released when the process
    dies, so a killed writer never blocks the next one."""
    warehouse.mkdir(parents=True, exist_ok=True)
    fd = os.open(warehouse / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("%s: another run is writing; waiting for it", warehouse)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def new_run_id() -> str:
    """Sortable by creation time; unique."""
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-{secrets.token_hex(3)}"


def base_of(warehouse: Path, previous: Run | None, as_of: datetime) -> Run | None:
    """The run a new run at `as_of` derives its changes, history and state from."""
    if previous is None or previous.as_of is None or previous.as_of != as_of:
        return previous
    if previous.base is None:
        return None  # the committed run was the first one: derive as the first run did
    return open_run_id(warehouse, previous.base) or previous


class RunWriter:
    """A run being written (see the module docstring)."""

    def __init__(
        self, warehouse: Path, run_id: str, previous: Run | None, base: Run | None, keep: int
    ) -> None:
        self.warehouse = warehouse
        self.run_id = run_id
        self.folder = warehouse / RUNS / run_id
        self.previous = previous
        self.base = base
        self.keep = keep
        self.committed: Run | None = None
        self.folder.mkdir(parents=True)

    def write(self, name: str, frame: pl.DataFrame) -> Path:
        """Write table `name` into the run."""
        path = write_parquet(frame, self.folder / table_file(name))
        checkpoint(f"table:{name}")
        return path

    def write_all(self, tables: Mapping[str, pl.DataFrame]) -> None:
        for name in sorted(tables):
            self.write(name, tables[name])

    def commit(
        self,
        *,
        as_of: datetime,
        layout: str = "none",
        json_columns: Mapping[str, Iterable[str]] | None = None,
        messages: int | None = None,
    ) -> Run:
        """Make the run the warehouse's current run (one atomic rename), then tidy up."""
        tables = sorted(p.stem for p in self.folder.glob("*.parquet"))
        payload = {
            "format": FORMAT,
            "run_id": self.run_id,
            "as_of": as_of.astimezone(UTC).isoformat(),
            "written_at": datetime.now(UTC).isoformat(),
            "layout": layout,
            "tables": tables,
            "json_columns": {k: sorted(v) for k, v in (json_columns or {}).items()},
            "messages": messages,
            "previous": self.previous.run_id if self.previous else None,
            "base": self.base.run_id if self.base else None,
        }
        (self.folder / RUN_FILE).write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
        fsync_tree(self.folder)  # on disk before the swap: a power cut never commits half
        checkpoint("run-file")
        run = read_run_file(self.folder, self.warehouse)
        fixed_links(self.warehouse, run, before_swap=True)
        checkpoint("links")
        swap_current(self.warehouse, self.run_id)
        self.committed = run
        checkpoint("swap")
        fixed_links(self.warehouse, run, before_swap=False)
        checkpoint("after-swap")
        self._catalog(run)
        checkpoint("catalog")
        sweep(self.warehouse, self.keep)
        checkpoint("cleanup")
        return run

    def _catalog(self, run: Run) -> None:
        """Views for the run's tables: they only depend on the table names, so a run with the
        same tables as the previous one skips opening the catalog (unless an earlier update
        failed, e.g. the file was held by an analyst)."""
        stale = self.warehouse / CATALOG_STALE
        previous = self.previous
        same = previous is not None and previous.run_id is not None
        same = same and set(previous.tables) == set(run.tables)  # type: ignore[union-attr]
        if same and (self.warehouse / CATALOG).exists() and not stale.exists():
            return
        if table_views(self.warehouse, run):
            stale.unlink(missing_ok=True)
        else:
            stale.touch()


def swap_current(warehouse: Path, run_id: str) -> None:
    """Point `current` at `runs/<run_id>`: a new relative link renamed over the old one."""
    link = warehouse / CURRENT
    if link.is_dir() and not link.is_symlink():
        # A copy that followed links (`cp -rL`, `shutil.copytree`) made `current` a folder:
        # move it aside (the sweep removes it) so that the link can take its place.
        os.replace(link, warehouse / RUNS / f".copied-{secrets.token_hex(4)}")
    tmp = warehouse / f".{CURRENT}.{secrets.token_hex(4)}"
    os.symlink(f"{RUNS}/{run_id}", tmp)
    os.replace(tmp, link)
    fsync_dir(warehouse)


def _fixed_names(run: Run) -> list[str]:
    names = [table_file(t) for t in run.tables]
    if (run.folder / NORMALIZED).is_dir():
        names.append(NORMALIZED)
    return names


def fixed_links(warehouse: Path, run: Run, *, before_swap: bool) -> None:
    """The links `<name> -> current/<name>` (table files and `_normalized`).

    Before the swap: the missing ones are created (they dangle until the swap, like a table
    that does not exist yet). After it: loose files of an older version (or of a copy that
    followed links) are replaced by links, and links to what the run does not have are removed.
    """
    names = _fixed_names(run)
    for name in names:
        path = warehouse / name
        target = f"{CURRENT}/{name}"
        if path.is_symlink():
            if os.readlink(path) != target:
                _replace_with_link(path, target)
        elif not path.exists():
            os.symlink(target, path)
        elif not before_swap:
            _replace_with_link(path, target)
    if before_swap:
        return
    (warehouse / LEGACY_MANIFEST).unlink(missing_ok=True)
    wanted = set(names)
    for path in warehouse.iterdir():
        ours = path.is_symlink() and os.readlink(path).startswith(f"{CURRENT}/")
        if ours and path.name not in wanted:
            path.unlink(missing_ok=True)


def _replace_with_link(path: Path, target: str) -> None:
    if path.is_dir() and not path.is_symlink():
        os.replace(path, path.parent / RUNS / f".loose-{path.name}-{secrets.token_hex(4)}")
    tmp = path.parent / f".{CURRENT}.{secrets.token_hex(4)}"
    os.symlink(target, tmp)
    os.replace(tmp, path)


@contextmanager
def begin_run(
    warehouse: str | Path, *, as_of: datetime, keep: int | None = None
) -> Iterator[RunWriter]:
    """Start a run of the warehouse (see the module docstring); the caller must `commit`.

    A run that raises, or ends without committing, leaves nothing behind.
    """
    warehouse = Path(warehouse)
    with writer_lock(warehouse):
        count = keep_runs(keep)
        sweep(warehouse, count)
        previous = open_run(warehouse)
        writer = RunWriter(
            warehouse, new_run_id(), previous, base_of(warehouse, previous, as_of), count
        )
        checkpoint("begin")
        try:
            yield writer
        except Exception:
            if writer.committed is None:
                shutil.rmtree(writer.folder, ignore_errors=True)
            raise
        if writer.committed is None:
            shutil.rmtree(writer.folder, ignore_errors=True)


def amend_run(warehouse: str | Path, tables: Mapping[str, pl.DataFrame]) -> Run:
    """Commit `tables` as a new run of the same moment as the current one, carrying every other
    file of the current run over by hard link (free; the old run stays intact)."""
    warehouse = Path(warehouse)
    current = open_run(warehouse)
    as_of = current.as_of if current is not None and current.as_of else datetime.now(UTC)
    with begin_run(warehouse, as_of=as_of) as writer:
        if current is not None:
            _carry_over(current, writer.folder, skip={table_file(n) for n in tables})
        writer.write_all(tables)
        return writer.commit(
            as_of=as_of,
            layout=current.layout if current is not None else "none",
            json_columns=current.json_columns if current is not None else None,
            messages=current.messages if current is not None else None,
        )


def _carry_over(run: Run, folder: Path, *, skip: set[str]) -> None:
    from audience_pipeline.warehouse.files import link_or_copy

    if run.run_id is None:  # a folder without commit point: its loose tables
        sources = [(run.path(t), table_file(t)) for t in run.tables]
    else:
        sources = [
            (path, path.relative_to(run.folder).as_posix())
            for path in run.folder.rglob("*")
            if path.is_file() and path.name != RUN_FILE
        ]
    for path, relative in sources:
        if relative not in skip:
            link_or_copy(path, folder / relative)


__all__ = [
    "RunWriter",
    "amend_run",
    "base_of",
    "begin_run",
    "checkpoint",
    "swap_current",
    "writer_lock",
]
