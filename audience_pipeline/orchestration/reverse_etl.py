"""Dagster: one reverse-ETL asset per destination, and the sensor that starts them.

Each asset (key ``reverse_etl/<destination>``, downstream of the memberships asset) runs
:func:`audience_pipeline.destinations.sync` and reports sent / failed / pending counts as
metadata; a failed sync fails only its own asset. Each asset carries a ``churn_guard`` check: a
sync the guard held (``max_change``) still materializes what it sent, and the check fails with
the held audiences' numbers, so a hold is visible in the UI, not a silent skip. The sensor asks for a destination's asset when
the memberships changed since its last successful sync (or its last sync did not finish), and no
sooner than the destination's ``min_interval`` after its previous sync started.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from audience_pipeline.destinations import Destination, SyncReport, is_due, load_destinations, sync
from audience_pipeline.destinations.ledger import read_last_run
from audience_pipeline.destinations.units import iso
from audience_pipeline.spec.issues import DefinitionsError
from audience_pipeline.warehouse import open_run

WAREHOUSE_ENV = "AUDIENCE_PIPELINE_WAREHOUSE"
DEFAULT_WAREHOUSE = "data/warehouse"
GROUP = "reverse_etl"


def _warehouse(warehouse_dir: str | Path | None) -> Path:
    return Path(warehouse_dir or os.environ.get(WAREHOUSE_ENV, DEFAULT_WAREHOUSE))


def asset_key(destination: str) -> dg.AssetKey:
    """``reverse_etl/<name>`` (dashes become underscores: Dagster keys allow only \\w)."""
    return dg.AssetKey([GROUP, re.sub(r"[^A-Za-z0-9_]", "_", destination)])


def _destinations(definitions_dir: str | Path) -> list[Destination]:
    destinations, issues = load_destinations(definitions_dir)
    if issues:
        raise DefinitionsError(issues)
    return destinations


def report_metadata(report: SyncReport) -> dict[str, dg.RawMetadataValue]:
    """The report as asset metadata (counts first, so the UI can plot them)."""
    return {
        "sent": report.sent,
        "failed": report.failed,
        "pending": report.pending,
        "resumed": report.resumed,
        "messages": report.messages,
        "requests": report.requests,
        "retries": report.retries,
        "entered": dg.MetadataValue.json(report.entered),
        "exited": dg.MetadataValue.json(report.exited),
        "resynced": dg.MetadataValue.json(report.resynced),
        "backfilled": dg.MetadataValue.json(report.backfilled),
        "held": dg.MetadataValue.json([h.as_dict() for h in report.held]),
        "snapshot_as_of": report.snapshot_as_of or "",
        "seconds": round(report.seconds, 3),
        "status": report.status,
    }


GUARD_CHECK = "churn_guard"


def guard_check_result(report: SyncReport) -> dg.AssetCheckResult:
    """Passed unless the churn guard held an audience; the numbers are in the metadata."""
    metadata: dict[str, dg.RawMetadataValue] = {
        "held": len(report.held),
        "held_audiences": dg.MetadataValue.json([h.as_dict() for h in report.held]),
    }
    for hold in report.held:
        metadata[f"{hold.audience_key}"] = dg.MetadataValue.text(hold.describe())
    if report.held:
        keys = " ".join(f"--approve {h.audience_key}" for h in report.held)
        metadata["approve_with"] = dg.MetadataValue.text(
            f"audience-pipeline sync {report.destination} {keys}"
        )
    return dg.AssetCheckResult(
        check_name=GUARD_CHECK,
        passed=not report.held,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description="; ".join(h.describe() for h in report.held) or "no audience held",
    )


def _asset_for(destination: Destination, definitions_dir: str | Path, warehouse_dir: Path,
               upstream: dg.AssetKey) -> dg.AssetsDefinition:  # fmt: skip
    raw = repr(sorted(destination.raw.items())).encode()
    key = asset_key(destination.name)

    @dg.asset(
        key=key,
        check_specs=[
            dg.AssetCheckSpec(
                GUARD_CHECK,
                asset=key,
                description="changes held by max_change (approve with sync --approve KEY)",
            )
        ],
        deps=[upstream],
        group_name=GROUP,
        code_version=hashlib.sha256(raw).hexdigest()[:16],
        description=f"Reverse ETL of audience memberships to {destination.name} "
        f"({destination.type}, {destination.file})",
        kinds={destination.type},
    )
    # `context` stays unannotated: Dagster checks the annotation object, and with postponed
    # annotations a nested function's annotation is only the string.
    def _sync_destination(context) -> dg.MaterializeResult:
        report = sync(destination.name, definitions_dir, warehouse_dir)
        metadata = report_metadata(report)
        if report.status not in ("ok", "held"):
            raise dg.Failure(description=f"{destination.name}: {report.error}", metadata=metadata)
        context.log.info("%s: %d changes sent", destination.name, report.sent)
        if report.held:
            context.log.warning("%s: %s", destination.name, report.error)
        return dg.MaterializeResult(metadata=metadata, check_results=[guard_check_result(report)])

    return _sync_destination


def reverse_etl_assets(
    definitions_dir: str | Path,
    warehouse_dir: str | Path | None = None,
    *,
    upstream: dg.AssetKey | str = "memberships",
) -> list[dg.AssetsDefinition]:
    """One asset per definitions/destinations/*.yaml.

    Args:
        definitions_dir: The definitions folder.
        warehouse_dir: Where compute writes the tables (default: $AUDIENCE_PIPELINE_WAREHOUSE
            or data/warehouse).
        upstream: Key of the memberships asset the syncs depend on.
    """
    key = upstream if isinstance(upstream, dg.AssetKey) else dg.AssetKey(upstream)
    warehouse = _warehouse(warehouse_dir)
    return [_asset_for(d, definitions_dir, warehouse, key) for d in _destinations(definitions_dir)]


def memberships_snapshot(warehouse_dir: Path) -> str | None:
    """The as_of of the current memberships table (None when it is missing or empty)."""
    run = open_run(warehouse_dir)
    if run is None or not run.has("memberships"):
        return None
    path = run.path("memberships")
    value = pl.scan_parquet(path).select(pl.col("as_of").max()).collect().item()
    if isinstance(value, datetime):
        return iso(value)
    return iso(datetime.fromtimestamp(path.stat().st_mtime, UTC))


def destinations_to_sync(definitions_dir: str | Path, warehouse_dir: Path,
                         now: datetime | None = None) -> list[tuple[Destination, str]]:  # fmt: skip
    """Destinations whose memberships moved (or whose last sync failed) and whose interval passed,
    each with the run key that makes one request per (destination, snapshot, attempt)."""
    snapshot = memberships_snapshot(warehouse_dir)
    if snapshot is None:
        return []
    due = []
    for destination in _destinations(definitions_dir):
        last = read_last_run(warehouse_dir, destination.name)
        # A held sync is done for its snapshot: asking again would only hold again (approval is
        # a person's `sync --approve`); new memberships are synced, and held, afresh.
        if last is not None and last.status in ("ok", "held") and last.snapshot_as_of == snapshot:
            continue
        if not is_due(destination, warehouse_dir, now):
            continue
        attempt = 0 if last is None else last.run_id
        due.append((destination, f"{destination.name}:{snapshot}:{attempt}"))
    return due


def reverse_etl_sensor(
    definitions_dir: str | Path,
    warehouse_dir: str | Path | None = None,
    *,
    minimum_interval_seconds: int = 30,
) -> dg.SensorDefinition:
    """The membership-change sensor: a run per destination that has changes to send."""
    warehouse = _warehouse(warehouse_dir)
    keys = [asset_key(d.name) for d in _destinations(definitions_dir)]

    @dg.sensor(
        name="reverse_etl_sensor",
        asset_selection=dg.AssetSelection.assets(*keys) if keys else None,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Syncs each destination when memberships change, at most once per its "
        "min_interval",
    )
    def reverse_etl_sensor(context) -> dg.SensorResult:
        due, unconfigured = [], []
        for destination, run_key in destinations_to_sync(definitions_dir, warehouse):
            # A destination whose secrets are not in the environment would fail at once on every
            # tick; leave it out and say why (`audience-pipeline sync NAME` still fails loudly).
            missing = destination.missing_secrets()
            if missing:
                unconfigured.append(f"{destination.name} (set {', '.join(missing)})")
            else:
                due.append((destination, run_key))
        if unconfigured:
            context.log.info("not configured, not synced: " + "; ".join(unconfigured))
        if not due:
            reason = "no destination has changes due"
            if unconfigured:
                reason += "; not configured: " + "; ".join(unconfigured)
            return dg.SensorResult(skip_reason=dg.SkipReason(reason))
        return dg.SensorResult(run_requests=[
            dg.RunRequest(run_key=run_key, asset_selection=[asset_key(d.name)],
                          tags={"destination": d.name})
            for d, run_key in due
        ])  # fmt: skip

    return reverse_etl_sensor
