"""`sync`: bring one destination up to the current memberships, resumably.

1. Take the destination's ledger lock (a second concurrent sync reports ``busy``).
2. Resume: deliver every batch still in the outbox, exactly as planned (same messageIds).
3. Plan: diff the memberships the destination should hold against what it acknowledged; a new
   destination or a newly connected audience has nothing acknowledged, so it is backfilled with
   every current member. Store the plan in the outbox (one transaction).
4. Deliver the plan batch by batch; each acknowledged batch is applied to the ledger at once.

A batch that cannot be delivered after its retries stops the sync of this destination only: the
report says ``failed`` and the batch stays pending for the next run.

Between 3 and 4 the churn guard (``guard.py``) takes out the changes of any audience that would
move more than the destination's ``max_change``; they wait in the ledger until
``sync(..., approve=[key])``, and the report says ``held``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from audience_pipeline.destinations.base import SendContext, Sender
from audience_pipeline.destinations.config import Destination, get_destination, load_destinations
from audience_pipeline.destinations.guard import Hold, HoldStore, holds_for, renumber
from audience_pipeline.destinations.ledger import Ledger, LedgerBusy, ledger_path, read_last_run
from audience_pipeline.destinations.payloads import PersonasContext
from audience_pipeline.destinations.retry import DeliveryError, RetryPolicy
from audience_pipeline.destinations.units import connected_audiences, current_units, plan_changes
from audience_pipeline.progress import Laps
from audience_pipeline.spec.issues import DefinitionsError
from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.spec.models import Definitions
from audience_pipeline.warehouse import require_run

log = logging.getLogger(__name__)

SenderFactory = Callable[[SendContext], Sender]
CHUNK_ROWS = 100_000  # outbox rows read (and prepared) at once


@dataclass
class SyncReport:
    """What one sync of one destination did.

    ``sent``: changes acknowledged by the destination in this run (resumed ones included);
    ``failed``: changes of the batch that could not be delivered; ``pending``: changes planned
    and not yet acknowledged (they go first next time).
    """

    destination: str
    status: str  # ok | held | failed | busy
    sent: int = 0
    failed: int = 0
    pending: int = 0
    resumed: int = 0
    messages: int = 0
    requests: int = 0
    retries: int = 0
    entered: dict[str, int] = field(default_factory=dict)
    exited: dict[str, int] = field(default_factory=dict)
    resynced: dict[str, int] = field(default_factory=dict)
    backfilled: list[str] = field(default_factory=list)
    held: list[Hold] = field(default_factory=list)  # audiences whose changes wait for approval
    approved: list[str] = field(default_factory=list)
    snapshot_as_of: str | None = None
    seconds: float = 0.0
    error: str | None = None


def make_sender(ctx: SendContext) -> Sender:
    """The sender of the destination's type."""
    kind = ctx.destination.type
    if kind == "webhook":
        from audience_pipeline.destinations.webhook import WebhookSender

        return WebhookSender(ctx)
    if kind == "segment":
        from audience_pipeline.destinations.segment import SegmentSender

        return SegmentSender(ctx)
    if kind == "postgres":
        from audience_pipeline.destinations.postgres import PostgresSender

        return PostgresSender(ctx)
    from audience_pipeline.destinations.files import FilesSender

    return FilesSender(ctx)


def _counts(changes: pl.DataFrame, change: str) -> dict[str, int]:
    rows = changes.filter(pl.col("change") == change).group_by("audience_key").len()
    return {str(k): int(n) for k, n in rows.sort("audience_key").iter_rows()}


def sync(
    destination_name: str,
    definitions_dir: str | Path,
    warehouse_dir: str | Path,
    *,
    policy: RetryPolicy | None = None,
    sender_factory: SenderFactory | None = None,
    approve: Sequence[str] = (),
) -> SyncReport:
    """Sync one destination (``audience-pipeline sync DESTINATION``).

    Args:
        destination_name: ``name`` of a definitions/destinations/*.yaml.
        definitions_dir: The definitions folder.
        warehouse_dir: The folder ``compute`` wrote (memberships, identities, ...); the ledger
            lives in its ``_destinations/`` subfolder.
        policy: Retry policy (default: the destination's ``max_attempts`` with 0.25 s base).
        sender_factory: Builds the sender (tests); default by destination type.
        approve: Audience keys whose held changes (see ``guard.py``) are sent now.

    Returns:
        The report; ``status`` is ``failed`` when a batch could not be delivered or the
        destination is misconfigured, ``held`` when the churn guard held an audience's
        changes (the others were sent), ``busy`` when another sync of it is running.

    Raises:
        DefinitionsError: invalid definitions or unknown destination.
        FileNotFoundError: the warehouse has no memberships table.
        ValueError: an ``approve`` key has no held changes.
    """
    destination = get_destination(destination_name, definitions_dir)
    definitions, issues = load_definitions(str(definitions_dir))
    if issues:
        raise DefinitionsError(issues)
    warehouse = Path(warehouse_dir)
    require_run(warehouse)  # raises (one line) when nothing was computed
    audiences = connected_audiences(destination, definitions)
    space_id = str(destination.settings.get("space_id", f"spa_{definitions.space.space}"))
    ctx = SendContext(
        destination=destination, audiences=audiences, personas=PersonasContext(space_id),
        warehouse_dir=warehouse,
        policy=policy or RetryPolicy(max_attempts=destination.max_attempts),
    )  # fmt: skip
    report = SyncReport(destination.name, "ok")
    clock = Laps()
    try:
        with Ledger.locked(ledger_path(warehouse, destination.name)) as ledger:
            holds = HoldStore(ledger)
            released = holds.held_changes(list(dict.fromkeys(approve))) if approve else None
            _run(ledger, holds, released, ctx, definitions, report, sender_factory or make_sender)
    except LedgerBusy as error:
        report.status, report.error = "busy", str(error)
    report.seconds = clock.total
    log.info("sync %s: %s, %d sent, %d pending (%.2fs)", destination.name, report.status,
             report.sent, report.pending, report.seconds)  # fmt: skip
    return report


def _run(ledger: Ledger, holds: HoldStore, released: pl.DataFrame | None, ctx: SendContext,
         definitions: Definitions, report: SyncReport, factory: SenderFactory) -> None:  # fmt: skip
    run_id = ledger.start_run()
    sender: Sender | None = None
    try:
        sender = factory(ctx)
        report.resumed += _deliver_pending(ledger, sender, report)
        ledger.forget_audiences(set(ctx.audiences))
        holds.forget(set(ctx.audiences))
        if released is not None:
            # Approved: exactly the changes that were held, before anything newer is planned
            # (an audience disconnected since has nothing to send: its hold was just closed).
            released = released.filter(pl.col("audience_key").is_in(list(ctx.audiences)))
            report.approved = sorted(set(released["audience_key"].to_list()))
            ledger.enqueue(renumber(released, ctx.destination.batch_size))
            holds.close(report.approved, "approved")  # after the enqueue: a crash loses nothing
            _deliver_pending(ledger, sender, report)
        units, as_of = current_units(ctx.destination, definitions, ctx.audiences, ctx.warehouse_dir)
        report.snapshot_as_of = as_of
        synced = ledger.synced()
        known = set(synced["audience_key"].unique().to_list()) | holds.seen()
        report.backfilled = sorted(k for k in ctx.audiences if k not in known)
        plan = _guarded(
            plan_changes(units, synced, as_of, ctx.destination.batch_size), synced, known,
            ctx.destination, holds, run_id, report,
        )  # fmt: skip
        report.entered = _counts(plan, "entered")
        report.exited = _counts(plan, "exited")
        report.resynced = _counts(plan, "resynced")
        ledger.enqueue(plan)
        holds.mark_seen(set(ctx.audiences) - {h.audience_key for h in report.held})
        _deliver_pending(ledger, sender, report)
        sender.finish(ledger.synced)
        if report.held:
            report.status = "held"
            report.error = "held by max_change: " + "; ".join(h.describe() for h in report.held)
    except DeliveryError as error:
        report.status, report.error = "failed", str(error)
        log.warning("sync %s failed: %s", ctx.destination.name, error)
    except (ValueError, OSError) as error:  # misconfiguration: missing secret, bad path, ...
        report.status, report.error = "failed", f"{type(error).__name__}: {error}"
        log.warning("sync %s failed: %s", ctx.destination.name, report.error)
    finally:
        if sender is not None:
            report.messages, report.requests = sender.messages, sender.requests
            report.retries = sender.retries
            sender.close()
        report.pending = ledger.pending_count()
        ledger.finish_run(run_id, report.status, sent=report.sent, failed=report.failed,
                          pending=report.pending, snapshot_as_of=report.snapshot_as_of,
                          error=report.error)  # fmt: skip


def _guarded(plan: pl.DataFrame, synced: pl.DataFrame, known: set[str], destination: Destination,
             holds: HoldStore, run_id: int, report: SyncReport) -> pl.DataFrame:  # fmt: skip
    """The plan without the audiences the churn guard holds (recorded in the ledger)."""
    if destination.max_change is None:  # the guard was switched off: nothing stays held
        holds.close(sorted(holds.open_holds()), "superseded")
        return plan
    found = holds_for(plan, synced, known, destination.max_change, report.snapshot_as_of or "")
    held_keys = {h.audience_key for h in found}
    held_rows = plan.filter(pl.col("audience_key").is_in(held_keys))
    holds.record(run_id, found, held_rows)
    holds.close(sorted(set(holds.open_holds()) - held_keys), "superseded")
    report.held = found
    for hold in found:
        log.warning("sync %s: held %s", destination.name, hold.describe())
    kept = plan.filter(~pl.col("audience_key").is_in(held_keys))
    return renumber(kept.drop("batch"), destination.batch_size).select(plan.columns)


def _chunks(sizes: list[tuple[int, int]], rows: int) -> list[tuple[int, int]]:
    """Consecutive pending batches grouped to about ``rows`` rows: (first, last) batch."""
    chunks: list[tuple[int, int]] = []
    count = 0
    for batch, size in sizes:
        if chunks and count + size <= rows:
            chunks[-1] = (chunks[-1][0], batch)
            count += size
        else:
            chunks.append((batch, batch))
            count = size
    return chunks


def _deliver_pending(ledger: Ledger, sender: Sender, report: SyncReport) -> int:
    """Deliver every pending batch in order; returns the changes acknowledged.

    The outbox is read a chunk of batches at a time, and a sender with ``prepare`` gets each
    chunk first: building messages column-wise for 100,000 rows at once costs far less than
    the same work batch by batch. Each batch is still sent and acknowledged on its own.
    """
    done = 0
    prepare = getattr(sender, "prepare", None)
    for first, last in _chunks(ledger.batch_sizes(), CHUNK_ROWS):
        chunk = ledger.batches(first, last)
        if prepare is not None:
            prepare(chunk)
        for rows in chunk.partition_by("batch", maintain_order=True):
            done += _deliver(ledger, sender, int(rows["batch"][0]), rows, report)
    return done


def _deliver(ledger: Ledger, sender: Sender, batch: int, rows: pl.DataFrame,
             report: SyncReport) -> int:  # fmt: skip
    try:
        sender.send(rows)
    except DeliveryError:
        report.failed += rows.height
        raise
    done = ledger.acknowledge(batch)
    report.sent += done
    return done


def sync_all(definitions_dir: str | Path, warehouse_dir: str | Path) -> list[SyncReport]:
    """Sync every destination; one failing destination never stops the others."""
    destinations, issues = load_destinations(definitions_dir)
    if issues:
        raise DefinitionsError(issues)
    reports = []
    for destination in destinations:
        try:
            reports.append(sync(destination.name, definitions_dir, warehouse_dir))
        except Exception as error:  # noqa: BLE001 - one destination must not stop the rest
            log.exception("sync %s crashed", destination.name)
            reports.append(
                SyncReport(destination.name, "failed", error=f"{type(error).__name__}: {error}")
            )
    return reports


def is_due(
    destination: Destination, warehouse_dir: str | Path, now: datetime | None = None
) -> bool:
    """Whether ``min_interval`` has passed since the destination's last sync started."""
    last = read_last_run(warehouse_dir, destination.name)
    if last is None:
        return True
    now = now or datetime.now(UTC)
    return now - last.started_at >= timedelta(seconds=destination.min_interval_seconds)
