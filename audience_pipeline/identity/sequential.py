"""SPEC section 2's identity rule, one message at a time.

This is the reference: `resolve_sequential` runs the rule in plain Python over every message, and
the vectorized resolver (`graph.py`) hands it only the components where an identifier limit bites.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from audience_pipeline.identity.result import (
    IDENTITIES_SCHEMA,
    MESSAGE_PROFILES_SCHEMA,
    IdentityResult,
    alias_fallback_type,
    empty_result,
    profile_id,
    type_limits,
    type_ranks,
)
from audience_pipeline.spec.models import SpaceConfig

Identifier = tuple[str, str]  # (id_type, id_value)


@dataclass(frozen=True)
class LinkOutcome:
    """Result of linking messages in order.

    Attributes:
        message_profiles: the final profile id of each message, in input order.
        identities: ``(profile_id, id_type, id_value)`` of every linked identifier.
        profiles: how many profiles remain after all merges.
    """

    message_profiles: list[str]
    identities: list[tuple[str, str, str]]
    profiles: int


class Linker:
    """Profiles as a union-find whose indices are creation order (smaller = created earlier)."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.limits = limits
        self.parent: list[int] = []
        self.counts: list[dict[str, int]] = []  # distinct values per type; valid on roots only
        self.ids: list[str] = []
        self.owner: dict[Identifier, int] = {}

    def find(self, p: int) -> int:
        parent = self.parent
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    def _new_profile(self, ident: Identifier) -> int:
        p = len(self.parent)
        self.parent.append(p)
        self.counts.append({ident[0]: 1})
        self.ids.append(profile_id(*ident))
        self.owner[ident] = p
        return p

    def _fits(self, counts: dict[str, int]) -> bool:
        return all(n <= self.limits[t] for t, n in counts.items())

    def link(self, identifiers: Sequence[Identifier]) -> None:
        """Link one message's identifiers (sorted by priority then value, no duplicates)."""
        first = identifiers[0]
        owned = self.owner.get(first)
        p = self._new_profile(first) if owned is None else self.find(owned)
        for ident in identifiers[1:]:
            owned = self.owner.get(ident)
            if owned is None:
                id_type = ident[0]
                n = self.counts[p].get(id_type, 0) + 1
                if n > self.limits[id_type]:
                    continue  # over the limit: stays unseen
                self.counts[p][id_type] = n
                self.owner[ident] = p
                continue
            q = self.find(owned)
            if q == p:
                continue
            merged = dict(self.counts[p])
            for id_type, n in self.counts[q].items():
                merged[id_type] = merged.get(id_type, 0) + n
            if not self._fits(merged):
                continue  # the merge would break a limit: both profiles stay as they are
            # The merged profile keeps the id of the one created earlier (the smaller index).
            keep, drop = (p, q) if p < q else (q, p)
            self.parent[drop] = keep
            self.counts[keep] = merged
            self.counts[drop] = {}
            p = keep


def link_in_order(messages: Iterable[Sequence[Identifier]], limits: dict[str, int]) -> LinkOutcome:
    """Run the linking rule over messages already in processing order.

    Args:
        messages: each message's identifiers, previousId included, sorted by (priority, value)
            and without duplicates; at least one per message.
        limits: most distinct values per identifier type one profile may hold.

    Returns:
        Each message's final profile (that of its first identifier) and every linked identifier.
    """
    linker = Linker(limits)
    firsts: list[Identifier] = []
    for identifiers in messages:
        linker.link(identifiers)
        firsts.append(identifiers[0])
    ids = linker.ids
    message_profiles = [ids[linker.find(linker.owner[first])] for first in firsts]
    identities = [(ids[linker.find(p)], t, v) for (t, v), p in linker.owner.items()]
    roots = sum(1 for i, parent in enumerate(linker.parent) if i == parent)
    return LinkOutcome(message_profiles, identities, roots)


def _order_key(row: dict[str, Any]) -> tuple[Any, ...]:
    # (timestamp, messageId with nulls last, seq)
    mid = row["message_id"]
    return (row["timestamp"], mid is None, mid or "", row["seq"])


def message_identifiers(
    row: dict[str, Any],
    first_type: dict[str, str],
    ranks: dict[str, int],
    fallback: str,
) -> list[Identifier]:
    """One message's identifiers in linking order, with an alias's previousId typed.

    ``first_type`` maps each value to the type it was first seen as; it is read for the
    previousId, then updated with this message's identifiers.
    """
    idents = {(d["id_type"], d["id_value"]) for d in row["ids"] or ()}
    previous = row.get("previous_id")
    if row["type"] == "alias" and previous is not None:
        idents.add((first_type.get(previous, fallback), previous))
    unknown = sorted({t for t, _ in idents if t not in ranks})
    if unknown:
        msg = f"message seq={row['seq']}: identifier types not in the space: {unknown}"
        raise ValueError(msg)
    if not idents:
        msg = f"message seq={row['seq']}: no identifier"
        raise ValueError(msg)
    ordered = sorted(idents, key=lambda ident: (ranks[ident[0]], ident[1]))
    for id_type, id_value in ordered:
        # Highest priority first, so a value seen under two types in one message keeps the better.
        first_type.setdefault(id_value, id_type)
    return ordered


def resolve_sequential(messages: pl.DataFrame, space: SpaceConfig) -> IdentityResult:
    """Resolve profiles by applying SPEC section 2's rule to every message in plain Python.

    The reference for `resolve_identities`; it takes one Python step per message, so use it on
    small inputs (tests) only.

    Args:
        messages: ``seq``, ``message_id``, ``type``, ``timestamp``, ``ids`` (list of
            ``{id_type, id_value}``), ``previous_id``; already cut at as-of.
        space: identifier types, priorities and limits.

    Returns:
        The profile of every message and the identifiers of every profile.
    """
    if messages.height == 0:
        return empty_result()
    columns = ["seq", "message_id", "type", "timestamp", "ids", "previous_id"]
    rows = sorted(messages.select(columns).iter_rows(named=True), key=_order_key)
    ranks = type_ranks(space)
    fallback = alias_fallback_type(space)
    first_type: dict[str, str] = {}
    ordered = [message_identifiers(row, first_type, ranks, fallback) for row in rows]
    outcome = link_in_order(ordered, type_limits(space))
    message_profiles = pl.DataFrame(
        {"seq": [row["seq"] for row in rows], "profile_id": outcome.message_profiles},
        schema=MESSAGE_PROFILES_SCHEMA,
    ).sort("seq")
    identities = pl.DataFrame(outcome.identities, schema=IDENTITIES_SCHEMA, orient="row").sort(
        IDENTITIES_SCHEMA.names()
    )
    stats = {
        "profiles": outcome.profiles,
        "components": outcome.profiles,
        "sequential_components": outcome.profiles,
        "sequential_messages": messages.height,
    }
    return IdentityResult(message_profiles, identities, stats)
