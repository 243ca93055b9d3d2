"""Identity resolution: SPEC section 2's rule, and the vectorized resolver against it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience_pipeline.identity import (
    IdentityResult,
    profile_id,
    resolve_identities,
    resolve_sequential,
)
from audience_pipeline.identity.components import connected_components
from audience_pipeline.spec.models import IdentifierSpec, SpaceConfig

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SCHEMA = pl.Schema(
    {
        "seq": pl.Int64(),
        "message_id": pl.String(),
        "type": pl.String(),
        "timestamp": pl.Datetime("us", "UTC"),
        "ids": pl.List(pl.Struct({"id_type": pl.String, "id_value": pl.String})),
        "previous_id": pl.String(),
    }
)
SPACE = SpaceConfig()  # user_id limit 1, email limit 5, anonymous_id limit 100
PRIORITY = {"user_id": 0, "email": 1, "anonymous_id": 2}


def msg(
    minute: int,
    *,
    user: str | None = None,
    email: str | None = None,
    anon: str | None = None,
    previous: str | None = None,
    message_id: str | None = None,
    type_: str | None = None,
) -> dict[str, Any]:
    """One message; seq is filled in by `frame` from list order."""
    ids = [
        {"id_type": t, "id_value": v}
        for t, v in (("user_id", user), ("email", email), ("anonymous_id", anon))
        if v is not None
    ]
    ids.sort(key=lambda d: (PRIORITY[d["id_type"]], d["id_value"]))
    return {
        "message_id": message_id,
        "type": type_ or ("alias" if previous is not None else "track"),
        "timestamp": T0 + timedelta(minutes=minute),
        "ids": ids,
        "previous_id": previous,
    }


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame([{"seq": i, **row} for i, row in enumerate(rows)], schema=SCHEMA)


def both(rows: list[dict[str, Any]], space: SpaceConfig = SPACE) -> IdentityResult:
    """Resolve with the vectorized engine, checking it against the sequential rule."""
    messages = frame(rows)
    fast = resolve_identities(messages, space)
    slow = resolve_sequential(messages, space)
    assert fast.message_profiles.equals(slow.message_profiles)
    assert fast.identities.equals(slow.identities)
    assert fast.stats["profiles"] == slow.stats["profiles"]
    return fast


def profiles(result: IdentityResult) -> list[str]:
    return result.message_profiles["profile_id"].to_list()


def identities(result: IdentityResult) -> set[tuple[str, str, str]]:
    return set(result.identities.iter_rows())


def test_profile_id_format() -> None:
    pid = profile_id("user_id", "u1")
    assert pid.startswith("p_") and len(pid) == 22
    assert pid != profile_id("email", "u1")


def test_shared_email_merges_anonymous_and_user() -> None:
    result = both(
        [msg(0, anon="a1"), msg(1, anon="a1", email="x@y"), msg(2, user="u1", email="x@y")]
    )
    pid = profile_id("anonymous_id", "a1")  # the component's earliest message created it
    assert profiles(result) == [pid, pid, pid]
    assert identities(result) == {
        (pid, "anonymous_id", "a1"),
        (pid, "email", "x@y"),
        (pid, "user_id", "u1"),
    }
    assert result.stats["profiles"] == 1
    assert result.stats["sequential_messages"] == 0


def test_limit_blocks_merge_of_two_user_ids() -> None:
    # user_id limit 1: the second user_id's profile cannot take the shared email's profile.
    result = both([msg(0, user="u1", email="e@x"), msg(1, user="u2", email="e@x")])
    p1, p2 = profile_id("user_id", "u1"), profile_id("user_id", "u2")
    assert profiles(result) == [p1, p2]
    assert identities(result) == {
        (p1, "user_id", "u1"),
        (p1, "email", "e@x"),
        (p2, "user_id", "u2"),
    }
    assert result.stats["sequential_components"] == 1
    assert result.stats["sequential_messages"] == 2


def test_repeated_messages_in_a_limited_component() -> None:
    # The engine skips repeats of an identifier set; every message still gets its profile.
    rows = [
        msg(0, user="u1", email="e@x"),
        msg(1, user="u2", email="e@x"),
        msg(2, anon="a1"),
        msg(3, user="u2", email="e@x"),
        msg(4, user="u2", anon="a1"),
        msg(5, anon="a1"),
    ]
    result = both(rows)
    p1, p2 = profile_id("user_id", "u1"), profile_id("user_id", "u2")
    # a1's profile (created at minute 2) merges into u2's (minute 1), which keeps its id.
    assert profiles(result) == [p1, p2, p2, p2, p2, p2]
    assert identities(result) == {
        (p1, "user_id", "u1"),
        (p1, "email", "e@x"),
        (p2, "anonymous_id", "a1"),
        (p2, "user_id", "u2"),
    }
    assert result.stats["sequential_messages"] == 6


def test_unseen_identifier_over_limit_is_not_linked() -> None:
    space = SpaceConfig(
        identifiers=(
            IdentifierSpec("user_id", ("userId",), 1, 0),
            IdentifierSpec("email", ("traits.email",), 1, 1),
            IdentifierSpec("anonymous_id", ("anonymousId",), 100, 2),
        )
    )
    rows = [
        msg(0, user="u1", email="a@x"),
        msg(1, user="u1", email="b@x"),  # second email: over the limit, stays unseen
        msg(2, email="b@x"),  # so b@x later starts its own profile
    ]
    result = both(rows, space)
    p1, pb = profile_id("user_id", "u1"), profile_id("email", "b@x")
    assert profiles(result) == [p1, p1, pb]
    assert identities(result) == {(p1, "user_id", "u1"), (p1, "email", "a@x"), (pb, "email", "b@x")}


def test_merge_blocked_by_a_type_other_than_the_linked_one() -> None:
    space = SpaceConfig(
        identifiers=(
            IdentifierSpec("user_id", ("userId",), 1, 0),
            IdentifierSpec("email", ("traits.email",), 5, 1),
            IdentifierSpec("anonymous_id", ("anonymousId",), 2, 2),
        )
    )
    rows = [
        msg(0, email="e@x", anon="a1"),
        msg(1, email="e@x", anon="a2"),
        msg(2, email="f@x", anon="a3"),
        msg(3, email="e@x"),
        msg(4, email="e@x", anon="a3"),  # merging f@x's profile would make 3 anonymous_ids
    ]
    result = both(rows, space)
    pe, pf = profile_id("email", "e@x"), profile_id("email", "f@x")
    assert profiles(result) == [pe, pe, pf, pe, pe]
    assert (pf, "anonymous_id", "a3") in identities(result)


def test_message_belongs_to_final_profile_after_later_merge() -> None:
    rows = [
        msg(0, anon="a1"),
        msg(1, anon="a2"),
        msg(2, user="u1", anon="a2"),
        msg(3, user="u1", anon="a1"),
    ]
    result = both(rows)
    pid = profile_id("anonymous_id", "a1")  # created first, so it survives the merge
    assert profiles(result) == [pid] * 4


def test_alias_previous_id_takes_type_first_seen() -> None:
    rows = [msg(0, anon="dev1"), msg(1, user="u1", previous="dev1")]
    result = both(rows)
    pid = profile_id("anonymous_id", "dev1")
    assert profiles(result) == [pid, pid]
    assert identities(result) == {(pid, "anonymous_id", "dev1"), (pid, "user_id", "u1")}


def test_alias_previous_id_never_seen_is_user_id() -> None:
    rows = [msg(0, anon="a9", previous="old"), msg(1, user="old")]
    result = both(rows)
    pid = profile_id("user_id", "old")
    assert profiles(result) == [pid, pid]
    assert identities(result) == {(pid, "user_id", "old"), (pid, "anonymous_id", "a9")}


def test_alias_seen_only_after_the_alias_is_user_id() -> None:
    rows = [msg(0, anon="a9", previous="x"), msg(1, anon="x")]
    result = both(rows)
    assert (profile_id("user_id", "x"), "user_id", "x") in identities(result)
    assert profiles(result)[1] == profile_id("anonymous_id", "x")


def test_alias_fallback_without_user_id_type_is_highest_priority() -> None:
    space = SpaceConfig(
        identifiers=(
            IdentifierSpec("email", ("traits.email",), 5, 0),
            IdentifierSpec("anonymous_id", ("anonymousId",), 100, 1),
        )
    )
    rows = [msg(0, anon="a1", previous="zzz")]
    result = both(rows, space)
    assert ("email", "zzz") in {(t, v) for _, t, v in identities(result)}
    assert profiles(result) == [profile_id("email", "zzz")]


def test_alias_highest_priority_type_in_first_message() -> None:
    rows = [msg(0, email="v", anon="v"), msg(1, user="u1", previous="v")]
    result = both(rows)
    pid = profile_id("email", "v")
    assert identities(result) == {
        (pid, "email", "v"),
        (pid, "anonymous_id", "v"),
        (pid, "user_id", "u1"),
    }


def test_alias_merging_two_profiles() -> None:
    rows = [
        msg(0, anon="dev1"),
        msg(1, user="u1", anon="dev2"),
        msg(2, user="u1", previous="dev1"),
    ]
    result = both(rows)
    pid = profile_id("anonymous_id", "dev1")
    assert profiles(result) == [pid, pid, pid]
    assert result.identities["profile_id"].unique().to_list() == [pid]


def test_alias_previous_id_first_seen_as_earlier_alias() -> None:
    # "x" was first held by an alias (typed user_id there); a later anonymous_id "x" does not
    # change the type the next alias gives it.
    rows = [
        msg(0, anon="a1", previous="x"),
        msg(1, anon="x"),
        msg(2, anon="a2", previous="x"),
    ]
    result = both(rows)
    px = profile_id("user_id", "x")  # the alias's first identifier created the profile
    assert profiles(result) == [px, profile_id("anonymous_id", "x"), px]


def test_ordered_by_timestamp_not_file_order() -> None:
    rows = [msg(5, user="u1", email="e@x"), msg(0, user="u2", email="e@x")]
    result = both(rows)
    p1, p2 = profile_id("user_id", "u1"), profile_id("user_id", "u2")
    # u2's message is earlier, so u2 keeps the email and u1 is left alone.
    assert profiles(result) == [p1, p2]
    assert (p2, "email", "e@x") in identities(result)


def test_ties_by_message_id_nulls_last_then_seq() -> None:
    rows = [
        msg(0, user="u1", email="e@x"),  # no messageId: after both with one
        msg(0, user="u2", email="e@x", message_id="b"),
        msg(0, user="u3", email="e@x", message_id="a"),
    ]
    result = both(rows)
    assert (profile_id("user_id", "u3"), "email", "e@x") in identities(result)
    rows = [msg(0, user="u1", email="e@x"), msg(0, user="u2", email="e@x")]
    assert (profile_id("user_id", "u1"), "email", "e@x") in identities(both(rows))


def test_ids_stable_across_recomputation_and_unrelated_data() -> None:
    rows = [msg(0, anon="a1"), msg(1, user="u1", anon="a1"), msg(2, user="u2", email="e@x")]
    first = both(rows)
    again = both(rows)
    assert first.message_profiles.equals(again.message_profiles)
    unrelated = [msg(-10, user="u9", anon="a9"), msg(3, email="z@x"), *rows]
    more = both(unrelated)
    assert profiles(more)[2:] == profiles(first)
    assert first.identities.equals(
        more.identities.filter(pl.col("id_value").is_in(["a1", "u1", "u2", "e@x"]))
    )


def test_merge_keeps_the_earlier_profile_id() -> None:
    rows = [msg(0, user="u1"), msg(1, email="e@x"), msg(2, user="u1", email="e@x")]
    result = both(rows)
    pid = profile_id("user_id", "u1")
    assert profiles(result) == [pid] * 3
    # New data merging into it later changes nothing for u1's profile id.
    rows.append(msg(3, email="e@x", anon="a5"))
    assert profiles(both(rows)) == [pid] * 4


def test_empty_input() -> None:
    result = resolve_identities(pl.DataFrame(schema=SCHEMA), SPACE)
    assert result.message_profiles.height == 0
    assert result.identities.schema == pl.Schema(
        {"profile_id": pl.String, "id_type": pl.String, "id_value": pl.String}
    )


def test_unknown_identifier_type_is_an_error() -> None:
    rows = [{**msg(0, user="u1"), "ids": [{"id_type": "phone", "id_value": "1"}]}]
    with pytest.raises(ValueError, match="phone"):
        resolve_identities(frame(rows), SPACE)


def test_connected_components_long_chain() -> None:
    n = 5000
    # A path visited in a scrambled order so min labels have to travel far.
    order = [(i * 7919) % n for i in range(n)]
    edges = pl.DataFrame({"a": order[:-1], "b": order[1:]})
    label = connected_components(n + 2, edges)
    assert label.head(n).unique().to_list() == [0]
    assert label.tail(2).to_list() == [n, n + 1]


# --- property: the vectorized resolver is the sequential rule ------------------------------

TYPES = ("user_id", "email", "anonymous_id")


@st.composite
def spaces(draw: st.DrawFn) -> SpaceConfig:
    order = draw(st.permutations(TYPES))
    if draw(st.booleans()):
        order = order[:2]  # sometimes without user_id or another type
    return SpaceConfig(
        identifiers=tuple(
            IdentifierSpec(t, (t,), draw(st.integers(1, 3)), priority)
            for priority, t in enumerate(order)
        )
    )


@st.composite
def message_sets(draw: st.DrawFn) -> tuple[pl.DataFrame, SpaceConfig]:
    space = draw(spaces())
    types = [spec.type for spec in space.identifiers]
    rank = {spec.type: spec.priority for spec in space.identifiers}
    values = st.sampled_from(["a", "b", "c", "d", "e"])  # few values, so components collide
    rows = []
    for seq in range(draw(st.integers(1, 14))):
        pairs = draw(st.sets(st.tuples(st.sampled_from(types), values), min_size=1, max_size=4))
        is_alias = draw(st.integers(0, 3)) == 0
        rows.append(
            {
                "seq": seq,
                "message_id": draw(st.none() | st.sampled_from(["m1", "m2", "m3"])),
                "type": "alias" if is_alias else "track",
                "timestamp": T0 + timedelta(minutes=draw(st.integers(0, 4))),
                "ids": [
                    {"id_type": t, "id_value": v}
                    for t, v in sorted(pairs, key=lambda p: (rank[p[0]], p[1]))
                ],
                "previous_id": draw(values) if is_alias else None,
            }
        )
    return pl.DataFrame(rows, schema=SCHEMA), space


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message_sets())
def test_vectorized_equals_sequential(case: tuple[pl.DataFrame, SpaceConfig]) -> None:
    messages, space = case
    fast = resolve_identities(messages, space)
    slow = resolve_sequential(messages, space)
    assert fast.message_profiles.equals(slow.message_profiles)
    assert fast.identities.equals(slow.identities)
    assert fast.stats["profiles"] == slow.stats["profiles"]
    assert fast.message_profiles["seq"].to_list() == sorted(messages["seq"].to_list())
