"""A demo space computed once, and an edited copy of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from audience_pipeline.cli import main
from audience_pipeline.service import parse_as_of, run_compute

AS_OF = "2026-03-01T00:00:00Z"
REPO_DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Demo events, the demo space computed once, and an edited copy of the space."""
    root = tmp_path_factory.mktemp("impact")
    assert main(["generate", "--events", "4000", "--out", str(root / "events")]) == 0
    before = root / "before"
    shutil.copytree(REPO_DEFINITIONS, before, ignore=shutil.ignore_patterns("destinations"))
    run_compute(root / "events", before, parse_as_of(AS_OF), root / "wh")
    after = root / "after"
    shutil.copytree(before, after)
    edit(after)
    return root, before, after


def edit(space: Path) -> None:
    """A threshold lowered, a trait's window shortened, an audience added and one deleted."""
    path = space / "audiences" / "big_spenders.yaml"
    path.write_text(path.read_text().replace("> 500", "> 150"))
    trait = space / "traits" / "total_revenue_90d.yaml"
    raw = yaml.safe_load(trait.read_text())
    raw["within"] = "30d"
    trait.write_text(yaml.safe_dump(raw))
    (space / "audiences" / "page_viewers.yaml").write_text(
        yaml.safe_dump(
            {
                "key": "page_viewers",
                "name": "Page viewers",
                "condition": {"event": "Page Viewed", "within": "7d"},
            }
        )  # fmt: skip
    )
    (space / "audiences" / "mobile_app_users.yaml").unlink()
