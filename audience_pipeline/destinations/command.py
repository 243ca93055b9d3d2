"""`audience-pipeline sync DESTINATION [--approve KEY]`: one sync, printed; the exit code says
how it went (0 sent, 1 failed or busy, 3 held by the churn guard)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from audience_pipeline.destinations.sync import sync

EXIT_HELD = 3


def sync_command(destination: str, definitions: str | Path, warehouse: str | Path,
                 approve: Sequence[str] = ()) -> int:  # fmt: skip
    report = sync(destination, definitions, warehouse, approve=approve)
    print(
        f"{report.destination}: {report.status}; sent {report.sent}, failed {report.failed}, "
        f"pending {report.pending}, requests {report.requests}, retries {report.retries}"
    )
    for key in report.approved:
        print(f"  approved {key}: held changes sent")
    for key in sorted(set(report.entered) | set(report.exited)):
        print(f"  {key}: +{report.entered.get(key, 0)} / -{report.exited.get(key, 0)}")
    if report.status == "held":
        for hold in report.held:
            print(f"held: {hold.describe()}", file=sys.stderr)
        keys = " ".join(f"--approve {h.audience_key}" for h in report.held)
        print(f"to send them: audience-pipeline sync {report.destination} {keys}", file=sys.stderr)
        return EXIT_HELD
    if report.status != "ok":
        print(f"error: {report.error}", file=sys.stderr)
        return 1
    return 0


__all__ = ["EXIT_HELD", "sync_command"]
