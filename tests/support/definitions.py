"""Definition folders written from Python values, for tests that build their own space."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.spec.models import Definitions


def write_definitions(
    root: Path,
    space: dict[str, Any],
    traits: list[dict[str, Any]],
    audiences: list[dict[str, Any]],
) -> Definitions:
    """Write space.yaml, one file per trait and audience under `root`, and load them (no issues)."""
    (root / "traits").mkdir(parents=True)
    (root / "audiences").mkdir()
    (root / "space.yaml").write_text(yaml.safe_dump(space))
    for trait in traits:
        (root / "traits" / f"{trait['key']}.yaml").write_text(
            yaml.safe_dump({"name": trait["key"], **trait})
        )
    for audience in audiences:
        raw = {"name": audience["key"], "created_at": "2026-01-01T00:00:00Z", **audience}
        (root / "audiences" / f"{audience['key']}.yaml").write_text(yaml.safe_dump(raw))
    definitions, issues = load_definitions(str(root))
    assert not issues, issues
    return definitions
