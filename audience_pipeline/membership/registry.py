"""The audience registry: versions of each audience key, first computations, tombstones.

SPEC section 4: an audience key is never reused, even after the audience is deleted, and an
audience without `created_at` was created at the pipeline's first computation of it. The
registry (a JSON file beside the warehouse) remembers, per key, every version (the hash of its
definition) with the as-of of its first computation, and when the key was deleted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from audience_pipeline.incremental import definition_hash
from audience_pipeline.spec.issues import DefinitionsError, Issue
from audience_pipeline.spec.models import Definitions

if TYPE_CHECKING:
    from audience_pipeline.warehouse import Run

REGISTRY_FILE = "_audience_registry.json"


@dataclass
class KeyRecord:
    """One audience key: its versions (hash -> first computation) and its deletion time."""

    versions: dict[str, str] = field(default_factory=dict)
    current: str | None = None
    deleted_at: str | None = None


@dataclass
class Changes:
    """How the audience definitions differ from what the registry last saw."""

    added: list[str]
    edited: list[str]
    deleted: list[str]
    reused: list[str]  # tombstoned keys that came back: refused

    @property
    def any(self) -> bool:
        return bool(self.added or self.edited or self.deleted or self.reused)


class Registry:
    """The registry file of one warehouse."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: dict[str, KeyRecord] = {}
        if path.exists():
            raw: dict[str, Any] = orjson.loads(path.read_bytes())
            self.keys = {k: KeyRecord(**v) for k, v in raw.items()}

    @classmethod
    def of_warehouse(cls, warehouse: Path) -> Registry:
        """The registry of the warehouse's current run (or the folder's own file, kept by
        versions before run folders)."""
        from audience_pipeline.warehouse import open_run

        return cls.of_run(open_run(warehouse), Path(warehouse))

    @classmethod
    def of_run(cls, run: Run | None, warehouse: Path) -> Registry:
        """The registry a run committed (runs keep it in their folder)."""
        if run is not None and (run.folder / REGISTRY_FILE).exists():
            return cls(run.folder / REGISTRY_FILE)
        return cls(Path(warehouse) / REGISTRY_FILE)

    def diff(self, definitions: Definitions) -> Changes:
        """Compare the definitions with the registry (nothing is written)."""
        current = {a.key: definition_hash(a.raw) for a in definitions.audiences}
        added, edited, reused = [], [], []
        for key, digest in sorted(current.items()):
            record = self.keys.get(key)
            if record is None:
                added.append(key)
            elif record.deleted_at is not None:
                reused.append(key)
            elif record.current != digest:
                edited.append(key)
        deleted = sorted(
            k for k, r in self.keys.items() if r.deleted_at is None and k not in current
        )
        return Changes(added, edited, deleted, reused)

    def refuse_reused(self, definitions: Definitions) -> None:
        """Raise DefinitionsError if a deleted (tombstoned) key is defined again."""
        reused = self.diff(definitions).reused
        if reused:
            issues = [
                Issue(
                    (definitions.audience(k).file if definitions.audience(k) else "audiences"),  # type: ignore[union-attr]
                    k,
                    "key",
                    f"audience key was deleted on {self.keys[k].deleted_at} and cannot be reused",
                    k,
                )
                for k in reused
            ]
            raise DefinitionsError(issues)

    def record(self, definitions: Definitions, as_of: datetime) -> Changes:
        """Record a computation at `as_of`: new versions, tombstones; returns the changes."""
        changes = self.diff(definitions)
        stamp = as_of.isoformat()
        for audience in definitions.audiences:
            if audience.key in changes.reused:
                continue
            digest = definition_hash(audience.raw)
            record = self.keys.setdefault(audience.key, KeyRecord())
            record.versions.setdefault(digest, stamp)
            record.current = digest
        for key in changes.deleted:
            self.keys[key].deleted_at = stamp
        return changes

    def pin_created_at(self, definitions: Definitions, as_of: datetime) -> Definitions:
        """Give audiences without created_at the first computation of their current version
        (this run's as-of for a version never computed)."""
        audiences = []
        for audience in definitions.audiences:
            if audience.created_at is None:
                record = self.keys.get(audience.key)
                first = record.versions.get(definition_hash(audience.raw)) if record else None
                created = datetime.fromisoformat(first) if first else as_of
                audience = replace(audience, created_at=created)
            audiences.append(audience)
        return replace(definitions, audiences=tuple(audiences))

    def save(self) -> None:
        """Write the registry atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        data = {k: vars(v) for k, v in sorted(self.keys.items())}
        tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.path)


__all__ = ["Changes", "KeyRecord", "Registry"]
