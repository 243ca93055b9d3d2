"""Why an entity is (or is not) in an audience, from one pinned warehouse run.

`Explainer` takes a `Snapshot` (the run's tables and normalized messages) and the definitions
folder, compiles the definitions as the run did (as-of, and `created_at` defaults pinned by the
Dagster registry when the warehouse has one), and explains audiences for one profile or account
by re-running the engine on that entity's own messages (`explain.evaluate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from audience_pipeline.engine.columns import ENTITY
from audience_pipeline.engine.traitvalues import computed_column
from audience_pipeline.explain.evaluate import evaluate
from audience_pipeline.explain.tree import TreeBuilder
from audience_pipeline.ir import nodes as ir
from audience_pipeline.spec.compile import compile_space
from audience_pipeline.spec.issues import DefinitionsError
from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.spec.models import Definitions
from audience_pipeline.sqltraits.columns import rows_from_columns
from audience_pipeline.warehouse.snapshot import Snapshot

MESSAGE_COLUMNS = [
    "seq", "message_id", "type", "event", "timestamp", "group_id", "properties", "context",
]  # fmt: skip
REGISTRY_FILE = "_audience_registry.json"


class UnknownAudience(KeyError):
    """No audience with that key in the definitions."""


class UnknownEntity(KeyError):
    """No profile or account with that id in the run."""


class LevelMismatch(ValueError):
    """A user audience asked for an account, or the reverse."""


def compile_for_run(
    definitions_dir: str | Path, snapshot: Snapshot
) -> tuple[Definitions, ir.Space]:
    """The definitions compiled as the run compiled them.

    Raises:
        DefinitionsError: invalid definitions.
    """
    definitions, issues = load_definitions(str(definitions_dir))
    if issues:
        raise DefinitionsError(issues)
    if (snapshot.directory / REGISTRY_FILE).exists():
        from audience_pipeline.membership.registry import Registry

        definitions = Registry(snapshot.directory / REGISTRY_FILE).pin_created_at(
            definitions, snapshot.as_of
        )
    space, issues = compile_space(definitions, snapshot.as_of)
    if issues:
        raise DefinitionsError(issues)
    return definitions, space


class Explainer:
    """Explanations over one pinned run (thread-safe: it only reads)."""

    def __init__(self, snapshot: Snapshot, definitions_dir: str | Path) -> None:
        self.snapshot = snapshot
        self.definitions, self.space = compile_for_run(definitions_dir, snapshot)
        self.levels = {a.key: a.level for a in self.space.audiences}

    def level_of(self, key: str) -> str:
        if key not in self.levels:
            known = self.definitions.audience(key)
            msg = f"unknown audience {key!r}" if known is None else f"audience {key!r} is invalid"
            raise UnknownAudience(msg)
        return self.levels[key]

    def explain(self, level: str, entity: str, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Explain each audience in `keys` (all of `level`) for one profile or account.

        Raises:
            UnknownAudience, LevelMismatch, UnknownEntity; SnapshotMissing when the run kept no
            normalized messages.
        """
        for key in keys:
            if self.level_of(key) != level:
                msg = f"audience {key!r} is a {self.levels[key]}-level audience"
                raise LevelMismatch(msg)
        snapshot = self.snapshot
        if level == "user":
            profiles, accounts = [entity], []
        else:
            calls = (
                snapshot.messages()
                .filter((pl.col("type") == "group") & (pl.col("group_id") == entity))
                .select("profile_id")
                .unique()
                .collect()
            )
            profiles, accounts = sorted(calls["profile_id"].to_list()), [entity]
        messages = snapshot.messages_of(profiles, MESSAGE_COLUMNS) if profiles else None
        if messages is None or messages.height == 0:
            noun = "profile" if level == "user" else "account"
            raise UnknownEntity(f"no {noun} {entity!r} in the run of {snapshot.as_of.isoformat()}")
        updates = (
            snapshot.trait_updates()
            .filter(pl.col("seq").is_in(messages["seq"].implode()))
            .collect()
        )
        identities = snapshot.scan("identities").filter(pl.col("profile_id").is_in(profiles))
        evaluation = evaluate(
            messages,
            updates,
            identities.collect(),
            self.space,
            snapshot.as_of,
            profiles=profiles,
            accounts=accounts,
            scores=self._stored_scores(profiles, accounts),
            sql_rows=self._stored_sql_traits(profiles, accounts),
        )
        builder = TreeBuilder(evaluation, self.space, self.definitions)
        stored = self._stored_memberships(level, entity)
        out = {}
        for key in keys:
            explanation = dict(builder.audience(key, entity))
            explanation["warehouse_member"] = key in stored
            out[key] = explanation
        return out

    def _stored_scores(self, profiles: list[str], accounts: list[str]) -> dict[str, pl.DataFrame]:
        """The run's score traits of these entities (entity_id, `_tr_<key>`), per level."""
        out = {}
        for level, table, owner, ids in (("user", "user_traits", "profile_id", profiles),
                                         ("account", "account_traits", "account_id", accounts)):  # fmt: skip
            keys = [t.key for t in self.space.traits if t.level == level and t.kind == "score"]
            if not keys or not ids:
                continue
            out[level] = (
                self.snapshot.scan(table)
                .filter(pl.col(owner).is_in(ids))
                .select(pl.col(owner).alias(ENTITY),
                        *[pl.col(k).cast(pl.Int64).alias(computed_column(k)) for k in keys])
                .collect()
            )  # fmt: skip
        return out

    def _stored_sql_traits(self, profiles: list[str], accounts: list[str]
                           ) -> dict[str, tuple[pl.DataFrame, set[str]]]:  # fmt: skip
        """The run's SQL trait objects of these entities, per level, with every SQL key."""
        out = {}
        for level, table, owner, ids in (("user", "user_traits", "profile_id", profiles),
                                         ("account", "account_traits", "account_id", accounts)):  # fmt: skip
            keys = [t.key for t in self.definitions.traits if t.level == level and t.kind == "sql"]
            if not keys or not ids:
                continue
            stored = self.snapshot.scan(table).filter(pl.col(owner).is_in(ids)).collect()
            rows = rows_from_columns(stored, owner, keys, set(self.snapshot.json_columns(table)))
            out[level] = (rows, set(keys))
        return out

    def _stored_memberships(self, level: str, entity: str) -> set[str]:
        rows = (
            self.snapshot.scan("memberships")
            .filter((pl.col("level") == level) & (pl.col("entity_id") == entity))
            .select("audience_key")
            .collect()
        )
        return set(rows["audience_key"].to_list())


__all__ = [
    "Explainer",
    "LevelMismatch",
    "UnknownAudience",
    "UnknownEntity",
    "compile_for_run",
]
