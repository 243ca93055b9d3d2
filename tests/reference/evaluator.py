"""The reference evaluator's entry point: files + definitions + as-of -> everything SPEC promises.

Slow and literal on purpose (plain loops, no dataframe library), written from SPEC sections 1-6
alone, so that property tests can hold the engine to the same answers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.reference.audiences import ACCOUNT, USER, World, audience_members
from tests.reference.identity import Profile, parse_space, resolve_profiles
from tests.reference.ingest import Message, as_utc, read_files, usable
from tests.reference.scores import rank_scores, raw_score
from tests.reference.traits import (
    Event,
    computed_value,
    group_payload,
    identify_payload,
    latest_values,
    to_event,
)


@dataclass
class RefResult:
    """The reference answer for one as-of run."""

    profiles: list[frozenset[tuple[str, str]]]
    user_traits: dict[frozenset[tuple[str, str]], dict[str, Any]]
    account_traits: dict[str, dict[str, Any]]
    memberships: dict[str, set[Any]]
    quarantine: list[tuple[str, int, str]]
    profile_of_message: dict[tuple[str, int], frozenset[tuple[str, str]]] = field(
        default_factory=dict
    )


def evaluate(
    files: dict[str, str],
    space: dict[str, Any],
    traits: list[dict[str, Any]],
    audiences: list[dict[str, Any]],
    as_of: datetime,
) -> RefResult:
    """Compute profiles, traits and audience memberships as of ``as_of``.

    Args:
        files: file name -> full JSONL text (read in sorted name order, lines 1-based).
        space: the parsed ``space.yaml`` mapping.
        traits: parsed computed-trait definitions.
        audiences: parsed audience definitions.
        as_of: the evaluation time T (naive means UTC).

    Returns:
        A RefResult; ``profile_of_message`` maps (source, line) of every used message to its
        profile.

    Raises:
        ValueError: an invalid definition (unknown node, bad expression, audience cycle...).
    """
    as_of = as_utc(as_of)
    rules, blocked = parse_space(space)
    read, quarantine = read_files(files, rules, blocked)
    messages = usable(read, as_of)
    profiles, profile_of = resolve_profiles(messages, rules, blocked)

    by_profile: dict[Profile, list[Message]] = defaultdict(list)
    for message in messages:
        by_profile[profile_of[message.read_index]].append(message)
    profile_events = {p: _events(by_profile[p]) for p in profiles}

    members: dict[str, list[Profile]] = defaultdict(list)
    group_calls: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        if message.type == "group" and message.group_id is not None:
            group_calls[message.group_id].append(message)
            profile = profile_of[message.read_index]
            if profile not in members[message.group_id]:
                members[message.group_id].append(profile)
    accounts = sorted(group_calls)
    account_events = {
        account: sorted(
            (e for p in members[account] for e in profile_events[p]), key=lambda e: e.sort_key
        )
        for account in accounts
    }

    user_traits = _user_traits(profiles, by_profile, profile_events, traits, as_of)
    account_traits = _account_traits(accounts, group_calls, account_events, traits, as_of)

    world = World(
        as_of=as_of,
        profiles=profiles,
        profile_events=profile_events,
        user_traits=user_traits,
        accounts=accounts,
        account_members=dict(members),
        account_events=account_events,
        account_traits=account_traits,
        definitions=_by_key(audiences),
        id_priority=[rule.type for rule in rules],
    )
    memberships = {key: audience_members(world, key) for key in world.definitions}
    return RefResult(
        profiles=sorted(profiles, key=sorted),
        user_traits=user_traits,
        account_traits=account_traits,
        memberships=memberships,
        quarantine=quarantine,
        profile_of_message={(m.source, m.line): profile_of[m.read_index] for m in messages},
    )


def _by_key(definitions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for definition in definitions:
        key = str(definition["key"])
        if key in out:
            msg = f"duplicate definition key {key!r}"
            raise ValueError(msg)
        out[key] = definition
    return out


def _events(messages: list[Message]) -> list[Event]:
    events = [to_event(m) for m in messages]
    return sorted((e for e in events if e is not None), key=lambda e: e.sort_key)


def _level(definition: dict[str, Any]) -> str:
    level = definition.get("level", USER)
    if level not in (USER, ACCOUNT):
        msg = f"unknown level {level!r} in {definition.get('key')!r}"
        raise ValueError(msg)
    return str(level)


def _user_traits(
    profiles: list[Profile],
    by_profile: dict[Profile, list[Message]],
    profile_events: dict[Profile, list[Event]],
    traits: list[dict[str, Any]],
    as_of: datetime,
) -> dict[Profile, dict[str, Any]]:
    computed = [t for t in _by_key(traits).values() if _level(t) == USER]
    out: dict[Profile, dict[str, Any]] = {}
    customs: dict[Any, dict[str, Any]] = {}
    for profile in profiles:
        identifies = [m for m in by_profile[profile] if m.type == "identify"]
        custom = latest_values(identify_payload(m) for m in identifies)
        customs[profile] = custom
        values = dict(custom)
        for definition in computed:
            if definition["kind"] == "score":
                continue
            values[definition["key"]] = computed_value(
                definition, profile_events[profile], custom, as_of
            )
        out[profile] = values
    _add_scores(computed, out, customs, profile_events, as_of)
    return out


def _add_scores(computed: list[dict[str, Any]], out: dict[Any, dict[str, Any]],
                customs: dict[Any, dict[str, Any]], events: dict[Any, list[Event]],
                as_of: datetime) -> None:  # fmt: skip
    """Scores rank every entity of the level, so they come after every entity's other traits
    (a score's ``where`` may name custom traits, as any computed trait's)."""
    for definition in computed:
        if definition["kind"] != "score":
            continue
        raws = {}
        for entity in out:
            raws[entity] = raw_score(definition, events[entity], customs[entity], as_of)
        for entity, score in rank_scores(raws).items():
            out[entity][definition["key"]] = score


def _account_traits(
    accounts: list[str],
    group_calls: dict[str, list[Message]],
    account_events: dict[str, list[Event]],
    traits: list[dict[str, Any]],
    as_of: datetime,
) -> dict[str, dict[str, Any]]:
    computed = [t for t in _by_key(traits).values() if _level(t) == ACCOUNT]
    out: dict[str, dict[str, Any]] = {}
    customs: dict[Any, dict[str, Any]] = {}
    for account in accounts:
        custom = latest_values(group_payload(m) for m in group_calls[account])
        customs[account] = custom
        values = dict(custom)
        for definition in computed:
            if definition["kind"] == "score":
                continue
            values[definition["key"]] = computed_value(
                definition, account_events[account], custom, as_of
            )
        out[account] = values
    _add_scores(computed, out, customs, account_events, as_of)
    return out
