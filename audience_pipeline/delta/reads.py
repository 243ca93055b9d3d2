"""Which events a level's results read, as (names, window, cut) triples.

Every aggregation the engine runs (computed traits, event conditions, funnel steps) reads events
by name, inside an optional window relative to the as-of and after an optional `backfill: false`
cut. So between two as-ofs a result can only change through events of those names whose
timestamps crossed a window edge or a moved cut (the "bands" below), besides new messages.

User rows read every user trait and every condition of a user audience. Account rows read the
account traits and account conditions, and, through `users:` nodes, the user conditions, user
audiences and user traits those nodes reach (the only way a member's user-level results enter an
account's). Custom (identify/group) traits come from non-event messages, which every pass keeps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from audience_pipeline.engine.columns import flat_column
from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.walk import condition_children, condition_exprs, iter_conditions, refs

_UTC = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class Read:
    """Events one aggregation reads: these names, inside `window` (None: all time), at or after
    `since` (None: no cut)."""

    events: tuple[str, ...]
    window: ir.Window | None
    since: datetime | None


def _node_reads(node: ir.Condition) -> Iterator[Read]:
    if isinstance(node, ir.EventCond):
        yield Read(node.events, node.window, node.since)
    elif isinstance(node, ir.Funnel):
        # The window bounds the first step's events only; later steps are chained in time.
        first, *rest = node.steps
        yield Read(first.events, node.window, node.since)
        for step in rest:
            yield Read(step.events, None, node.since)


def _trait_names(node: ir.Condition) -> set[str]:
    names: set[str] = set()
    for expr in condition_exprs(node):
        for ref in refs(expr):
            # A `traits:` expression names traits whatever the scope its parser gave.
            if ref.scope == "trait" or isinstance(node, ir.TraitsCond):
                names.add(ref.path[0])
    return names


class _Walker:
    """Collects the reads of conditions at one level, following audience references and the
    computed traits that conditions name."""

    def __init__(self, space: ir.Space, level: str) -> None:
        self.traits = {t.key: t for t in space.traits if t.level == level}
        self.audiences = {a.key: a for a in space.audiences if a.level == level}
        self.reads: list[Read] = []
        self.seen_traits: set[str] = set()
        self.seen_audiences: set[str] = set()

    def trait(self, key: str) -> None:
        trait = self.traits.get(key)
        if trait is None or key in self.seen_traits:
            return  # a custom trait: non-event messages, always kept
        self.seen_traits.add(key)
        self.reads.append(Read(trait.events, trait.window, None))
        for ref in refs(trait.where):
            if ref.scope == "trait":
                self.trait(ref.path[0])

    def audience(self, key: str) -> None:
        if key in self.seen_audiences or key not in self.audiences:
            return
        self.seen_audiences.add(key)
        self.condition(self.audiences[key].condition)

    def condition(self, node: ir.Condition) -> None:
        """Reads of a condition at this walker's level (`users:` children are not followed)."""
        self.reads.extend(_node_reads(node))
        for name in _trait_names(node):
            self.trait(name)
        if isinstance(node, ir.AudienceRef):
            self.audience(node.key)
        if isinstance(node, ir.UsersCond):
            return
        for child in condition_children(node):
            self.condition(child)


def _users_nodes(node: ir.Condition) -> Iterator[ir.UsersCond]:
    if isinstance(node, ir.UsersCond):
        yield node
        return
    for child in condition_children(node):
        yield from _users_nodes(child)


def user_reads(space: ir.Space) -> list[Read]:
    """Everything the user tables (user traits, user memberships) read."""
    walker = _Walker(space, "user")
    for trait in walker.traits:
        walker.trait(trait)
    for audience in walker.audiences:
        walker.audience(audience)
    return walker.reads


def _account_walk(space: ir.Space) -> tuple[_Walker, _Walker]:
    """Walkers over what the account tables read: the account level's, and the user level's
    (what `users:` nodes reach)."""
    accounts = _Walker(space, "account")
    users = _Walker(space, "user")
    for trait in accounts.traits:
        accounts.trait(trait)
    for audience in accounts.audiences.values():
        accounts.condition(audience.condition)
        for node in _users_nodes(audience.condition):
            users.condition(node.condition)
    return accounts, users


def account_reads(space: ir.Space) -> list[Read]:
    """Everything the account tables read, members' user-level results included."""
    accounts, users = _account_walk(space)
    return accounts.reads + users.reads


def user_space(space: ir.Space) -> ir.Space:
    """The user traits and audiences: all the user tables need."""
    return ir.Space(
        tuple(t for t in space.traits if t.level == "user"),
        tuple(a for a in space.audiences if a.level == "user"),
    )


def account_space(space: ir.Space) -> ir.Space:
    """What the account tables need: every account trait and audience, and the user traits
    and audiences their `users:` nodes reach (in the space's dependency order)."""
    _, users = _account_walk(space)
    return ir.Space(
        tuple(t for t in space.traits if t.level == "account" or t.key in users.seen_traits),
        tuple(a for a in space.audiences if a.level == "account" or a.key in users.seen_audiences),
    )


def _edges(read: Read) -> set[int]:
    if read.window is None:
        return set()
    return {e for e in (read.window.lower, read.window.upper) if e is not None}


def band_mask(
    old: list[Read], new: list[Read], t0: datetime, t1: datetime, *, names: bool = True
) -> pl.Expr | None:
    """Events whose inclusion in some read differs between as-of t0 (reads `old`) and t1 (reads
    `new`, the same reads compiled at t1): a window edge passed them or a cut moved.

    Returns a boolean expression over `event` and `timestamp` (only `timestamp` without
    `names`: a cheaper superset to filter with first), or None when no event can cross.
    """
    # (lo, hi) -> names; lo None: unbounded below (a cut appeared or vanished).
    ranges: dict[tuple[datetime | None, datetime | None], set[str]] = {}
    for a, b in zip(old, new, strict=True):
        for edge in _edges(b):
            delta = timedelta(seconds=edge)
            ranges.setdefault((t0 - delta, t1 - delta), set()).update(b.events)
        if a.since != b.since:
            if a.since is None or b.since is None:
                ranges.setdefault((None, None), set()).update(b.events)
            else:
                first, last = min(a.since, b.since), max(a.since, b.since)
                # A cut keeps ts >= since: [first, last) changes; widened by a microsecond
                # to stay closed on both sides without caring which way it moved.
                key = (first - timedelta(microseconds=1), last)
                ranges.setdefault(key, set()).update(b.events)
    if not ranges:
        return None
    ts = pl.col("timestamp")
    masks: list[pl.Expr] = []
    for (low, high), events in ranges.items():
        inside = pl.lit(True) if low is None else (ts > pl.lit(low, dtype=_UTC))
        if high is not None:
            inside = inside & (ts <= pl.lit(high, dtype=_UTC))
        masks.append(inside & pl.col("event").is_in(sorted(events)) if names else inside)
    return pl.any_horizontal(masks)


def event_names(reads: Iterable[Read]) -> list[str]:
    """Every event name the reads name."""
    return sorted({name for read in reads for name in read.events})


def engine_columns(columns: list[str], space: ir.Space) -> list[str]:
    """The event columns (of `columns`) an engine run over `space` reads: all but the flattened property and
    context columns no definition names (without them the engine would parse the JSON)."""
    named: set[str] = set()
    exprs: list[ir.Expr | None] = []
    for trait in space.traits:
        exprs += [trait.property, trait.where]
    for audience in space.audiences:
        for node in iter_conditions(audience.condition):
            exprs += list(condition_exprs(node))
    for expr in exprs:
        for ref in refs(expr):
            if ref.scope != "trait":
                source = "context" if ref.scope.endswith("context") else "properties"
                named.add(flat_column(source, ref.path))
    return [c for c in columns if not c.startswith(("p.", "c.")) or c in named]


__all__ = [
    "Read",
    "account_reads",
    "account_space",
    "band_mask",
    "engine_columns",
    "event_names",
    "user_reads",
    "user_space",
]
