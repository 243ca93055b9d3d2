"""The size_change check's verdict: did an audience move more than size_change_warning?"""

from __future__ import annotations

import dagster as dg


def size_change(size: int, entered: int, exited: int) -> float | None:
    """The fraction an audience moved in one run (None on its first run: nothing to compare)."""
    previous = size - entered + exited
    if previous == 0:
        return None if size == entered else float(size > 0)
    return abs(size - previous) / previous


def size_change_result(
    key: dg.AssetKey, size: int, entered: int, exited: int, threshold: float
) -> dg.AssetCheckResult:
    moved = size_change(size, entered, exited)
    return dg.AssetCheckResult(
        asset_key=key,
        check_name="size_change",
        passed=moved is None or moved <= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "size": size,
            "previous_size": size - entered + exited,
            "change_fraction": dg.MetadataValue.float(moved if moved is not None else 0.0),
            "threshold": dg.MetadataValue.float(threshold),
        },
    )


SIZE_CHANGE_DESCRIPTION = (
    "Warns when the audience's size moves by more than space.yaml's size_change_warning "
    "(a fraction of the previous size) in one run."
)

__all__ = ["SIZE_CHANGE_DESCRIPTION", "size_change", "size_change_result"]
