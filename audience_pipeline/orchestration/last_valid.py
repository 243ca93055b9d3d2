"""The last definitions that loaded without a problem, kept beside the warehouse.

A typo in one YAML file plus "Reload definitions" would otherwise drop every trait and audience
asset from the UI. The code location builds its assets from this copy instead (same keys, same
code versions), and the `definitions_valid` check says what is wrong and where.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.spec.models import Definitions

log = logging.getLogger(__name__)

FOLDER = "_definitions/last_valid"
KEPT = ("space.yaml", "traits", "audiences")


def _files(root: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for name in KEPT:
        path = root / name
        candidates = (
            [path] if path.is_file() else sorted(path.rglob("*.y*ml")) if path.is_dir() else []
        )
        for file in candidates:
            found[str(file.relative_to(root))] = file.read_bytes()
    return found


def remember(definitions_dir: str | Path, warehouse: Path) -> None:
    """Keep a copy of valid definitions (replaced atomically, only when they changed)."""
    source, target = Path(definitions_dir), warehouse / FOLDER
    files = _files(source)
    if target.is_dir() and _files(target) == files:
        return
    staging = target.with_name(f".{target.name}-{uuid.uuid4().hex[:8]}")
    try:
        for relative, content in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        previous = target.with_name(f".{target.name}-old-{uuid.uuid4().hex[:8]}")
        if target.exists():
            target.rename(previous)
        staging.rename(target)
        shutil.rmtree(previous, ignore_errors=True)
    except OSError as error:  # a read-only warehouse only loses the fallback
        log.warning("could not keep a copy of the valid definitions: %s", error)
        shutil.rmtree(staging, ignore_errors=True)


def recall(warehouse: Path) -> Definitions | None:
    """The last valid definitions, or None when none were kept."""
    folder = warehouse / FOLDER
    if not folder.is_dir():
        return None
    definitions, issues = load_definitions(folder)
    return None if issues else definitions


__all__ = ["FOLDER", "recall", "remember"]
