"""`python -m audience_pipeline.orchestration.demo`: demo data in the landing folder, one
materialization of the whole graph into the local instance ($DAGSTER_HOME)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl

from audience_pipeline.demo.generate import generate
from audience_pipeline.orchestration.definitions import build_definitions
from audience_pipeline.orchestration.resources import AS_OF_TAG, settings_from_env
from audience_pipeline.orchestration.sensors import DOWNSTREAM_GROUPS
from audience_pipeline.spec.loader import load_definitions

log = logging.getLogger(__name__)


def land_demo_events(landing: Path, *, events: int, days: int, as_of: datetime) -> list[str]:
    """Generate `days` daily files of demo events into `landing/<YYYY-MM-DD>/`."""
    staging = landing.parent / "_staging"
    shutil.rmtree(staging, ignore_errors=True)
    generate(staging, events=events, as_of=as_of, days=days, files=days, gzip=True)
    partitions = []
    for k, path in enumerate(sorted(staging.glob("events-*"))):
        day = (as_of - timedelta(days=days - k)).date().isoformat()
        (landing / day).mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), landing / day / path.name)
        partitions.append(day)
    shutil.rmtree(staging, ignore_errors=True)
    return partitions


# Run events at INFO: the console stays readable (the UI has every DEBUG event).
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def materialize_demo(partitions: list[str], as_of: datetime) -> None:
    """Ingest every partition, then run the engine and everything downstream once."""
    defs = build_definitions()
    instance = dg.DagsterInstance.get()
    # The checks go in too: materialize() runs only what it is given, and a check never run
    # shows "Not evaluated" in the UI.
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    assets += [c for c in defs.asset_checks or [] if isinstance(c, dg.AssetsDefinition)]
    resources = defs.resources or {}
    ingest = dg.AssetSelection.groups("ingest")
    for day in partitions:
        dg.materialize(assets, selection=ingest, partition_key=day, instance=instance,
                       resources=resources, run_config=QUIET)  # fmt: skip
    dg.materialize(
        assets,
        selection=dg.AssetSelection.groups(*DOWNSTREAM_GROUPS),
        instance=instance,
        resources=resources,
        tags={AS_OF_TAG: as_of.isoformat()},
        run_config=QUIET,
    )


def print_summary(warehouse: Path, definitions_dir: str) -> None:
    """What the demo computed: each audience's size (zero included), and where to look next."""
    definitions, _ = load_definitions(definitions_dir)
    members = pl.read_parquet(warehouse / "memberships.parquet")
    sizes = dict(members.group_by("audience_key").len().iter_rows())
    print(f"\n{'audience':<40} {'level':<8} members")
    for audience in sorted(definitions.audiences, key=lambda a: (a.level != "user", a.key)):
        print(f"{audience.key:<40} {audience.level:<8} {sizes.get(audience.key, 0)}")
    print(f'\nwarehouse: {warehouse} (audience-pipeline sql "SELECT ..." --warehouse {warehouse})')
    port = os.environ.get("DAGSTER_PORT", "3000")
    print(f"Dagster UI: http://127.0.0.1:{port} (starting)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=60)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # instance migrations: noise here
    as_of = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    settings = settings_from_env()
    partitions = land_demo_events(settings.landing, events=args.events, days=args.days,
                                  as_of=as_of)  # fmt: skip
    materialize_demo(partitions, as_of)
    log.info("demo materialized as of %s; warehouse in %s", as_of, settings.warehouse_dir)
    print_summary(Path(settings.warehouse_dir), settings.definitions_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
