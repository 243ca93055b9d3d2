"""More hand-derived SPEC cases: corners the random generators do not reach.

Same harness as `test_spec_audit.py` (the real CLI `compute`, Parquet outputs read back;
`SPEC_AUDIT_ENGINE=duckdb` runs every case on the SQL backend). Each expected answer is derived
from SPEC's text (quoted in the docstring), not from the engine or the reference evaluator.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import tests.unit.test_spec_audit as audit
from tests.unit.test_spec_audit import aud, compute, group, identify, track, trait, ts

# ----------------------------------------------------------------------------------------------
# Expressions and typing (SPEC 5, 5a)
# ----------------------------------------------------------------------------------------------


def test_in_list_each_comparison_imposes_its_own_type(tmp_path: Path) -> None:
    """SPEC 5: "Compared with a number, a value is read as a number (a numeric string is read as
    its number; anything else gives null); compared with a string, as a string (a number as its
    text ...); booleans as booleans." `p IN (1, 'a')` is `p = 1 OR p = 'a'`: "1" and "1.0" read
    as the number 1, 1.0 as the number 1, "a" as the string; `true` is neither."""
    cases = {"u1": "1", "u2": 1.0, "u3": "a", "u4": "1.0", "u5": True, "u6": "b", "u7": None}
    lines = [track(u, "E", ts(1), props={"p": v}) for u, v in cases.items()]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("inl", {"event": "E", "where": "p IN (1, 'a')"}),
            aud("notin", {"event": "E", "where": "p NOT IN (1, 2)"}),
        ],
    )
    assert out.members("inl") == {"u1", "u2", "u3", "u4"}
    # NOT IN: "a comparison with null is not true": "a", "b", true and null read as null numbers
    assert out.members("notin") == set()


def test_not_in_and_between_with_strings(tmp_path: Path) -> None:
    """SPEC 5: `IN`, `BETWEEN` over the section 5 typing. Compared with strings, a number is read
    as its text ("12" sorts before "b"); a missing key is null, so `NOT IN` is not true."""
    cases = {"u1": 3, "u2": "c", "u3": "bz", "u4": "d", "u5": "dz", "u6": 12, "u7": "B"}
    lines = [track(u, "E", ts(1), props={"s": v}) for u, v in cases.items()]
    lines.append(track("u8", "E", ts(1), props={}))
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("btw", {"event": "E", "where": "s BETWEEN 'b' AND 'd'"}),
            aud("nbtw", {"event": "E", "where": "s NOT BETWEEN 'b' AND 'd'"}),
            aud("notin", {"event": "E", "where": "s NOT IN (1, 2)"}),
        ],
    )
    assert out.members("btw") == {"u2", "u3", "u4"}
    assert out.members("nbtw") == {"u1", "u5", "u6", "u7"}
    assert out.members("notin") == {"u1", "u6"}


def test_coalesce_takes_the_imposed_string_type(tmp_path: Path) -> None:
    """SPEC 5a: "Names in expressions take the type their comparison imposes, also inside
    `coalesce`" and "a boolean against a string is null". Read as a string, `true` is null, so
    `coalesce(p, 'none')` falls through to 'none'; the number 5 reads as '5'."""
    cases = {"u1": True, "u2": 5, "u3": "none", "u4": "x"}
    lines = [track(u, "E", ts(1), props={"p": v}) for u, v in cases.items()]
    lines.append(track("u5", "E", ts(1), props={}))
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("none", {"event": "E", "where": "coalesce(p, 'none') = 'none'"}),
            aud("five", {"event": "E", "where": "coalesce(p, 'none') = '5'"}),
        ],
    )
    assert out.members("none") == {"u1", "u3", "u5"}
    assert out.members("five") == {"u2"}


def test_numeric_string_vs_text_forms(tmp_path: Path) -> None:
    """SPEC 5: compared with a number, "a numeric string is read as its number"; compared with a
    string, "a number as its text, as in section 3" (12.0 is `12`). So "12.0" = 12 holds, "12.0" =
    '12' does not, 12.0 = '12' holds and 12 = '12.0' does not."""
    cases = {"u1": "12.0", "u2": 12.0, "u3": 12, "u4": "1.2e1"}
    lines = [track(u, "E", ts(1), props={"p": v}) for u, v in cases.items()]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("num", {"event": "E", "where": "p = 12"}),
            aud("txt12", {"event": "E", "where": "p = '12'"}),
            aud("txt120", {"event": "E", "where": "p = '12.0'"}),
        ],
    )
    assert out.members("num") == {"u1", "u2", "u3", "u4"}
    assert out.members("txt12") == {"u2", "u3"}
    assert out.members("txt120") == {"u1"}


def test_boolean_literals_and_names(tmp_path: Path) -> None:
    """SPEC 5: "booleans as booleans"; SPEC 5a: "Two booleans compare as booleans; a boolean
    against a string is null." The string "false" is not the boolean false; `<>` with a missing
    key is null."""
    cases = {
        "u1": {"f": False, "g": False},
        "u2": {"f": "false", "g": False},
        "u3": {"f": True, "g": True},
        "u4": {"g": True},
    }
    lines = [track(u, "E", ts(1), props=p) for u, p in cases.items()]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("isfalse", {"event": "E", "where": "f = false"}),
            aud("nottrue", {"event": "E", "where": "f <> true"}),
            aud("same", {"event": "E", "where": "f = g"}),
            aud("bare", {"event": "E", "where": "NOT f"}),
        ],
    )
    assert out.members("isfalse") == {"u1"}
    assert out.members("nottrue") == {"u1"}
    assert out.members("same") == {"u1", "u3"}
    assert out.members("bare") == {"u1"}


def test_arithmetic_reads_numeric_strings(tmp_path: Path) -> None:
    """SPEC 5: arithmetic over values read as numbers ("a numeric string is read as its number;
    anything else gives null"); `abs` reads its argument as a number."""
    cases = {"u1": "-3", "u2": -3, "u3": "x", "u4": " -3"}
    lines = [track(u, "E", ts(1), props={"p": v}) for u, v in cases.items()]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("abs", {"event": "E", "where": "abs(p) = 3"}),
            aud("plus", {"event": "E", "where": "p + 1 = -2"}),
            aud("div", {"event": "E", "where": "p / 2 = -1.5"}),
            aud("isnull", {"event": "E", "where": "(p * 1) IS NULL"}),
        ],
    )
    assert out.members("abs") == {"u1", "u2"}
    assert out.members("plus") == {"u1", "u2"}
    assert out.members("div") == {"u1", "u2"}
    assert out.members("isnull") == {"u3", "u4"}


def test_traits_condition_reads_text_traits_as_numbers(tmp_path: Path) -> None:
    """SPEC 3: most_frequent "return[s] text"; SPEC 5: "Compared with a number, a value is read
    as a number (a numeric string is read as its number...)". A most_frequent of `12` compares
    equal to the number 12. SPEC 3: "Empty results: count ... 0, sum is 0, ... the rest are
    null"."""
    lines = [track("u1", "E", ts(1), props={"p": 12}), track("u1", "E", ts(2), props={"p": 12.0})]
    lines.append(track("u2", "Other", ts(1)))
    out = compute(
        tmp_path,
        lines,
        traits=[
            trait("mf", "most_frequent", property="p"),
            trait("n", "count"),
            trait("s", "sum", property="p"),
            trait("a", "avg", property="p"),
        ],
        audiences=[
            aud("mf12", {"traits": "mf = 12"}),
            aud("zero", {"traits": "n = 0 AND s = 0 AND a IS NULL AND mf IS NULL"}),
        ],
    )
    assert out.members("mf12") == {"u1"}
    assert out.members("zero") == {"u2"}


def test_computed_null_shadows_custom_trait(tmp_path: Path) -> None:
    """SPEC 3: "A computed trait shadows a custom trait of the same key." A computed `first` over
    no events is null ("the rest are null"), and that null is what conditions see."""
    lines = [identify("u1", ts(3), {"plan": "pro"})]
    out = compute(
        tmp_path,
        lines,
        traits=[trait("plan", "first", "Never", property="p")],
        audiences=[aud("noplan", {"traits": "plan IS NULL"})],
    )
    assert out.members("noplan") == {"u1"}
    assert out.user("u1")["plan"] is None


def test_custom_trait_per_top_level_key_no_deep_merge(tmp_path: Path) -> None:
    """SPEC 3: custom traits are, "per top-level key the latest non-null value". A later
    `address` object replaces the earlier one whole; its missing `zip` is null."""
    lines = [
        identify("u1", ts(3), {"address": {"city": "Oslo", "zip": "0150"}}),
        identify("u1", ts(2), {"address": {"city": "Rome"}}),
    ]
    out = compute(
        tmp_path,
        lines,
        audiences=[aud("rome_nozip", {"traits": "address.city = 'Rome' AND address.zip IS NULL"})],
    )
    assert out.members("rome_nozip") == {"u1"}


# ----------------------------------------------------------------------------------------------
# Computed traits (SPEC 3)
# ----------------------------------------------------------------------------------------------


def test_most_frequent_min_frequency_three_and_nulls(tmp_path: Path) -> None:
    """SPEC 3: "`most_frequent` takes the value seen most often, counting only values seen at
    least `min_frequency` times"; "ties go to the smallest value in text order". A missing key is
    null, not a value. With min_frequency 3: u1 "b" x3 and "a" x3 tie -> "a"; u2's nulls do not
    count and "x" is seen only twice -> null."""
    lines = [track("u1", "E", ts(1), props={"p": v}) for v in ["b", "b", "b", "a", "a", "a", "c"]]
    lines += [track("u2", "E", ts(1), props={"p": v}) for v in [None, None, None, "x", "x"]]
    lines += [track("u2", "E", ts(1), props={})]
    out = compute(
        tmp_path,
        lines,
        traits=[
            trait("mf3", "most_frequent", property="p", min_frequency=3),
            trait("mf", "most_frequent", property="p"),
            trait("uc", "unique_count", property="p"),
            trait("ul", "unique_list", property="p"),
        ],
    )
    assert out.user("u1")["mf3"] == "a"
    assert out.user("u2")["mf3"] is None
    assert out.user("u2")["mf"] == "x"
    assert out.user("u2")["uc"] == 1
    assert out.user("u2")["ul"] == ["x"]


def test_first_last_with_where_and_window(tmp_path: Path) -> None:
    """SPEC 3: "`first`/`last` take the value of the earliest/latest matching event"; matching =
    the event name, `where` and `within`."""
    lines = [
        track("u1", "E", ts(10), props={"p": "old", "ok": True}),
        track("u1", "E", ts(3), props={"p": "mid", "ok": True}),
        track("u1", "E", ts(2), props={"p": "skip", "ok": False}),
        track("u1", "E", ts(1), props={"p": "new", "ok": True}),
        track("u1", "E", ts(0.5), props={"p": "no-ok"}),
    ]
    out = compute(
        tmp_path,
        lines,
        traits=[
            trait("f", "first", property="p", where="ok = true", within="7d"),
            trait("l", "last", property="p", where="ok = true", within="7d"),
        ],
    )
    assert (out.user("u1")["f"], out.user("u1")["l"]) == ("mid", "new")


def test_trait_where_reads_context(tmp_path: Path) -> None:
    """SPEC 5: "In event conditions, names starting with `context.` read the call's context
    instead of its properties". A computed trait's `where` filters events the same way."""
    lines = [
        track("u1", "E", ts(2), props={"v": 1}, context={"device": {"type": "ios"}}),
        track("u1", "E", ts(1), props={"v": 2}, context={"device": {"type": "web"}}),
    ]
    out = compute(
        tmp_path,
        lines,
        traits=[trait("ios_sum", "sum", property="v", where="context.device.type = 'ios'")],
    )
    assert out.user("u1")["ios_sum"] == 1


# ----------------------------------------------------------------------------------------------
# Event conditions and having (SPEC 4)
# ----------------------------------------------------------------------------------------------


def test_having_count_distinct_as_text_and_min_max_skip_text(tmp_path: Path) -> None:
    """SPEC 5a: "`count(distinct p)` compares values as text, like unique_count" (true and "true"
    are one value, 1 and 1.0 one value; null is no value). SPEC 3: min and max "read numbers and
    skip values that are not"."""
    values = [True, "true", 1, 1.0, None, "5", "x"]
    lines = [track("u1", "E", ts(1), props={"p": v}) for v in values]
    lines += [track("u2", "E", ts(1), props={"p": v}) for v in ["x", "y"]]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("d4", {"event": "E", "having": "count(distinct p) = 4"}),
            aud("max5", {"event": "E", "having": "max(p) = 5 AND min(p) = 1"}),
            aud("nomin", {"event": "E", "having": "min(p) IS NULL AND count(p) = 2"}),
        ],
    )
    assert out.members("d4") == {"u1"}
    assert out.members("max5") == {"u1"}
    assert out.members("nomin") == {"u2"}


def test_having_count_zero_with_where_and_window(tmp_path: Path) -> None:
    """SPEC 4: "`count(*) = 0` means "did not perform"" — counted over the matching events (name,
    `where`, window). u1's only event is outside the window, u2's fails the where, u3 matches;
    u4 has no event at all. Over no events `sum(p) / count(*)` divides by zero: null."""
    lines = [
        track("u1", "Buy", ts(8), props={"p": 5}),
        track("u2", "Buy", ts(1), props={"p": 1}),
        track("u3", "Buy", ts(1), props={"p": 5}),
        track("u4", "Other", ts(1)),
    ]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("none", {"event": "Buy", "where": "p > 2", "within": "7d",
                         "having": "count(*) = 0"}),
            aud("divnull", {"event": "Buy", "where": "p > 2", "within": "7d",
                            "having": "sum(p) / count(*) IS NULL"}),
        ],
    )  # fmt: skip
    assert out.members("none") == {"u1", "u2", "u4"}
    assert out.members("divnull") == {"u1", "u2", "u4"}


def test_event_where_trait_ref_to_computed_and_missing_trait(tmp_path: Path) -> None:
    """SPEC 4: "`where` may also name `trait.k`, the entity's trait"; SPEC 5: "A missing key is
    null, and a comparison with null is not true"."""
    lines = [
        track("u1", "Buy", ts(1), props={"p": 3}),
        track("u1", "Buy", ts(2), props={"p": 1}),
        track("u2", "Buy", ts(1), props={"p": 3}),
    ]
    out = compute(
        tmp_path,
        lines,
        traits=[trait("maxp", "max", "Buy", property="p")],
        audiences=[
            aud("below_max", {"event": "Buy", "where": "p < trait.maxp"}),
            aud("missing", {"event": "Buy", "where": "p > trait.nope OR trait.nope IS NULL"}),
        ],
    )
    assert out.members("below_max") == {"u1"}
    assert out.members("missing") == {"u1", "u2"}


# ----------------------------------------------------------------------------------------------
# Funnels
# ----------------------------------------------------------------------------------------------


def test_funnel_between_bounds_only_the_first_step(tmp_path: Path) -> None:
    """SPEC 4: "there is a first-step event inside `within` and, for each next step, an event
    strictly after the previous step's event and no later than the step's own `within` after it"
    (docs/semantics.md: the funnel's `within | between` applies to the first step). SPEC 5:
    `between: [A, B]` keeps T - B < timestamp <= T - A."""
    lines = [
        track("u1", "A", ts(2)), track("u1", "B", ts(0.5)),  # A inside [1d,3d), B later: yes
        track("u2", "A", ts(0.5)), track("u2", "B", ts(0.2)),  # A too recent: no
        track("u3", "A", ts(3)), track("u3", "B", ts(2)),  # A exactly T-3d: outside
    ]  # fmt: skip
    out = compute(
        tmp_path,
        lines,
        audiences=[aud("f", {"funnel": {"between": ["1d", "3d"],
                                        "steps": [{"event": "A"}, {"event": "B"}]}})],
    )  # fmt: skip
    assert out.members("f") == {"u1"}


def test_funnel_same_event_twice_needs_two_instants(tmp_path: Path) -> None:
    """SPEC 5a: "Funnel steps chain on strictly later timestamps." Steps [E, E]: one E, or two
    E at the same instant, is not enough."""
    lines = [
        track("u1", "E", ts(1)),
        track("u2", "E", ts(1)), track("u2", "E", ts(1)),
        track("u3", "E", ts(2)), track("u3", "E", ts(1)),
    ]  # fmt: skip
    out = compute(
        tmp_path,
        lines,
        audiences=[aud("twice", {"funnel": {"steps": [{"event": "E"}, {"event": "E"}]}})],
    )
    assert out.members("twice") == {"u3"}


def test_three_step_funnel_negative_last_with_trait(tmp_path: Path) -> None:
    """SPEC 4: "the last step may say `performed: false` (no such event). A step's `where` may name
    `parent.p` ... and `trait.k` (the profile's trait)". The negative step looks only after the
    second step's event."""
    lines = [
        identify("u1", ts(9), {"plan": "pro"}),
        identify("u2", ts(9), {"plan": "pro"}),
        identify("u3", ts(9), {"plan": "pro"}),
        # u1: A, B, then an Upgrade to another plan -> still no matching C -> member
        track("u1", "A", ts(5)), track("u1", "B", ts(4)),
        track("u1", "C", ts(3), props={"plan": "free"}),
        # u2: C with its own plan after B -> not
        track("u2", "A", ts(5)), track("u2", "B", ts(4)),
        track("u2", "C", ts(3), props={"plan": "pro"}),
        # u3: C before B only -> member
        track("u3", "A", ts(5)), track("u3", "C", ts(4.5), props={"plan": "pro"}),
        track("u3", "B", ts(4)),
        # u4: A without B -> not
        track("u4", "A", ts(5)),
    ]  # fmt: skip
    out = compute(
        tmp_path,
        lines,
        audiences=[aud("f", {"funnel": {"steps": [
            {"event": "A"}, {"event": "B"},
            {"event": "C", "where": "plan = trait.plan", "performed": False}]}})],
    )  # fmt: skip
    assert out.members("f") == {"u1", "u3"}


def test_account_funnel_over_pooled_member_events(tmp_path: Path) -> None:
    """SPEC 5a: "At account level, an `event:` or `funnel:` node outside `users:` runs over the
    pooled events of the account's members, and `trait.k` there is the account's trait." u1 does
    A and u2 (same account) does B later; in g2 nobody does B."""
    lines = [
        group("u1", "g1", ts(9), {"tier": "gold"}), group("u2", "g1", ts(9)),
        group("u3", "g2", ts(9), {"tier": "gold"}),
        identify("u2", ts(9), {"tier": "silver"}),
        track("u1", "A", ts(3)), track("u2", "B", ts(2), props={"tier": "gold"}),
        track("u3", "A", ts(3)),
    ]  # fmt: skip
    out = compute(
        tmp_path,
        lines,
        audiences=[
            {"key": "fa", "level": "account", "condition": {"funnel": {"steps": [
                {"event": "A"}, {"event": "B", "where": "tier = trait.tier"}]}}},
            {"key": "neg", "level": "account", "condition": {"funnel": {"steps": [
                {"event": "A"}, {"event": "B", "performed": False}]}}},
        ],
    )  # fmt: skip
    assert out.members("fa") == {"g1"}
    assert out.members("neg") == {"g2"}


# ----------------------------------------------------------------------------------------------
# backfill / created_at
# ----------------------------------------------------------------------------------------------


def test_backfill_false_created_at_after_as_of(tmp_path: Path) -> None:
    """SPEC 4: "`backfill: false`: only events at or after created_at count". With created_at
    after as-of no event counts, so "did not perform" holds for everyone and "performed" for no
    one; `not:` is the complement."""
    lines = [track("u1", "E", ts(1)), track("u2", "F", ts(1))]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("did", {"event": "E"}, backfill=False, created_at=ts(-1)),
            aud("didnt", {"event": "E", "having": "count(*) = 0"}, backfill=False,
                created_at=ts(-1)),
            aud("not_did", {"not": {"event": "E"}}, backfill=False, created_at=ts(-1)),
        ],
    )  # fmt: skip
    assert out.members("did") == set()
    assert out.members("didnt") == {"u1", "u2"}
    assert out.members("not_did") == {"u1", "u2"}


def test_backfill_false_created_at_with_offset_and_funnel(tmp_path: Path) -> None:
    """SPEC 4: "only events at or after created_at count"; SPEC 5a: it limits "funnel steps". A
    created_at with an offset is an instant: 2026-01-08T05:00:00+05:00 is 2026-01-08T00:00Z
    (T - 2d). u1's first step is before it, u2's both steps are at or after it."""
    lines = [
        track("u1", "A", ts(2, 1)), track("u1", "B", ts(1)),
        track("u2", "A", ts(2)), track("u2", "B", ts(1)),
    ]  # fmt: skip
    out = compute(
        tmp_path,
        lines,
        audiences=[aud("f", {"funnel": {"steps": [{"event": "A"}, {"event": "B"}]}},
                       backfill=False, created_at="2026-01-08T05:00:00+05:00")],
    )  # fmt: skip
    assert out.members("f") == {"u2"}


def test_backfill_false_does_not_limit_trait_ref_in_where(tmp_path: Path) -> None:
    """SPEC 5a: "`backfill: false` limits the audience's own event conditions and funnel steps
    ..., not the computed traits or audiences it names." The computed trait counts the old
    event; only the audience's own event must be at or after created_at."""
    lines = [
        track("u1", "Buy", ts(5)),
        track("u1", "Visit", ts(1)),
        track("u2", "Visit", ts(1)),
    ]
    out = compute(
        tmp_path,
        lines,
        traits=[trait("buys", "count", "Buy")],
        audiences=[aud("a", {"event": "Visit", "where": "trait.buys >= 1"},
                       backfill=False, created_at=ts(3))],
    )  # fmt: skip
    assert out.members("a") == {"u1"}


# ----------------------------------------------------------------------------------------------
# Identity (SPEC 2)
# ----------------------------------------------------------------------------------------------


def test_first_identifier_picks_profile_then_merge(tmp_path: Path) -> None:
    """SPEC 2: "the first one picks its profile (new if unseen); each next one joins it — adding
    an unseen identifier, or merging the profile that owns it". A blocked user_id is dropped, so
    the email is first; its profile takes in a1's profile."""
    lines = [
        track(None, "A", ts(5), anonymousId="a1"),
        track(None, "A", ts(4), context={"traits": {"email": "e@x.com"}}),
        track("unknown", "A", ts(3), anonymousId="a1", context={"traits": {"email": "E@x.com"}}),
    ]
    out = compute(tmp_path, lines, traits=[trait("a", "count", "A")])
    assert out.profiles() == {frozenset({"email:e@x.com", "anonymous_id:a1"})}
    assert out.user("e@x.com")["a"] == 3


def test_message_belongs_to_highest_priority_linked_identifier(tmp_path: Path) -> None:
    """SPEC 2: "A message belongs to the final profile of its highest-priority linked
    identifier." e1 cannot join u2's profile (that would hold two user_ids, limit 1), so the
    track from u2 carrying e1 is u2's; the track with only e1 is u1's."""
    lines = [
        identify("u1", ts(5), {"email": "e1@x.com"}),
        identify("u2", ts(4), {}),
        track("u2", "A", ts(3), context={"traits": {"email": "e1@x.com"}}),
        track(None, "A", ts(2), context={"traits": {"email": "e1@x.com"}}),
    ]
    out = compute(tmp_path, lines, traits=[trait("a", "count", "A")])
    assert out.profiles() == {
        frozenset({"user_id:u1", "email:e1@x.com"}),
        frozenset({"user_id:u2"}),
    }
    assert (out.user("u1")["a"], out.user("u2")["a"]) == (1, 1)


def test_alias_previous_id_first_seen_as_email(tmp_path: Path) -> None:
    """SPEC 1: alias "links `previousId` (as the identifier type it was first seen as ...) to
    `userId`". The previousId was first seen as an email, so the alias links that email."""
    lines = [
        track(None, "A", ts(5), context={"traits": {"email": "old@x.com"}}),
        {"type": "alias", "userId": "u1", "previousId": "old@x.com", "timestamp": ts(4),
         "messageId": "al"},
    ]  # fmt: skip
    out = compute(tmp_path, lines)
    assert out.profiles() == {frozenset({"user_id:u1", "email:old@x.com"})}


def test_include_anonymous_false_email_only_profile(tmp_path: Path) -> None:
    """SPEC 4: "include_anonymous: ... false: only profiles with a user_id or an email
    identifier". An email-only profile is in, an anonymous one out; an anonymous id merged into a
    user's profile is in with it."""
    lines = [
        track(None, "E", ts(3), context={"traits": {"email": "e@x.com"}}),
        track(None, "E", ts(3), anonymousId="a1"),
        track(None, "E", ts(3), anonymousId="a2"),
        identify("u2", ts(2), {}, anonymousId="a2"),
    ]
    out = compute(
        tmp_path, lines, audiences=[aud("known", {"event": "E"}, include_anonymous=False)]
    )
    assert out.members("known") == {"e@x.com", "u2"}


# ----------------------------------------------------------------------------------------------
# Accounts
# ----------------------------------------------------------------------------------------------


def test_account_audience_refs_and_users_trait_scope(tmp_path: Path) -> None:
    """SPEC 4: `audience: KEY` at the same level; inside `users:` the condition is user-level, so
    `trait.k` is the member profile's trait (SPEC 4: "`trait.k` (the profile's trait)"), while an
    account-level `traits:` sees account traits. Computed account traits shadow custom ones."""
    lines = [
        group("u1", "g1", ts(9), {"tier": "gold", "n": 100}),
        group("u2", "g2", ts(9), {"tier": "silver"}),
        identify("u1", ts(9), {"tier": "silver"}),
        identify("u2", ts(9), {"tier": "silver"}),
        track("u1", "Use", ts(1), props={"tier": "silver"}),
        track("u2", "Use", ts(1), props={"tier": "silver"}),
    ]
    out = compute(
        tmp_path,
        lines,
        traits=[trait("n", "count", "Use", level="account")],
        audiences=[
            {"key": "gold", "level": "account", "condition": {"traits": "tier = 'gold'"}},
            {"key": "not_gold", "level": "account", "condition": {"not": {"audience": "gold"}}},
            {"key": "user_tier", "level": "account", "condition": {"users": "all", "condition": {
                "event": "Use", "where": "tier = trait.tier"}}},
            {"key": "n1", "level": "account", "condition": {"traits": "n = 1"}},
        ],
    )  # fmt: skip
    assert out.members("gold") == {"g1"}
    assert out.members("not_gold") == {"g2"}
    assert out.members("user_tier") == {"g1", "g2"}
    assert out.members("n1") == {"g1", "g2"}


def test_account_trait_counts_each_event_once(tmp_path: Path) -> None:
    """SPEC 3: "an account trait aggregates its members' events". One member making two group
    calls for the account is still one member; each of its events counts once."""
    lines = [
        group("u1", "g1", ts(9)), group("u1", "g1", ts(8)), group("u2", "g1", ts(8)),
        track("u1", "Buy", ts(1), props={"v": 2}), track("u2", "Buy", ts(1), props={"v": 3}),
    ]  # fmt: skip
    out = compute(
        tmp_path,
        lines,
        traits=[
            trait("buys", "count", "Buy", level="account"),
            trait("rev", "sum", "Buy", property="v", level="account"),
        ],
        audiences=[{"key": "two", "level": "account",
                    "condition": {"event": "Buy", "having": "count(*) = 2"}}],
    )  # fmt: skip
    assert (out.account("g1")["buys"], out.account("g1")["rev"]) == (2, 5)
    assert out.members("two") == {"g1"}


# ----------------------------------------------------------------------------------------------
# Batch 2
# ----------------------------------------------------------------------------------------------


def test_string_functions_and_like_read_numbers_as_text(tmp_path: Path) -> None:
    """SPEC 5: compared with a string, a value is read "as a string (a number as its text, as in
    section 3)"; "booleans as booleans" (SPEC 5a: "a boolean against a string is null"). LIKE,
    lower/upper and length work on the string reading: 12.0 is `12`, 1.5 is `1.5`."""
    cases = {"u1": 12.0, "u2": 1.5, "u3": True, "u4": "1x"}
    lines = [track(u, "E", ts(1), props={"p": v}) for u, v in cases.items()]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("like", {"event": "E", "where": "p LIKE '1%'"}),
            aud("lower", {"event": "E", "where": "lower(p) = '12'"}),
            aud("len3", {"event": "E", "where": "length(p) = 3"}),
            aud("upnull", {"event": "E", "where": "upper(p) IS NULL"}),
        ],
    )
    assert out.members("like") == {"u1", "u2", "u4"}
    assert out.members("lower") == {"u1"}
    assert out.members("len3") == {"u2"}
    assert out.members("upnull") == {"u3"}


def test_funnel_parent_compare_mixed_types_is_null(tmp_path: Path) -> None:
    """SPEC 5: "Two names compared with each other compare as numbers when both are numbers, as
    strings when both are strings, else null." `parent.order_id` "1" against 1 is null, so a
    negative last step "no such event" holds; 1 against 1.0 are both numbers and equal."""
    lines = [
        track("u1", "Checkout", ts(2), props={"order_id": "1"}),
        track("u1", "Order", ts(1), props={"order_id": 1}),
        track("u2", "Checkout", ts(2), props={"order_id": 1}),
        track("u2", "Order", ts(1), props={"order_id": 1.0}),
    ]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("ab", {"funnel": {"steps": [
                {"event": "Checkout"},
                {"event": "Order", "where": "order_id = parent.order_id", "performed": False}]}}),
            aud("done", {"funnel": {"steps": [
                {"event": "Checkout"},
                {"event": "Order", "where": "order_id = parent.order_id"}]}}),
        ],
    )  # fmt: skip
    assert out.members("ab") == {"u1"}
    assert out.members("done") == {"u2"}


def test_trait_ref_in_computed_trait_where_is_the_custom_trait(tmp_path: Path) -> None:
    """SPEC 5a: "`trait.k` inside a computed trait's `where` names a custom trait." Even when a
    computed trait of the same key shadows it in `user_traits`, the `where` reads the custom
    value ("pro"), not the computed one ("free")."""
    lines = [
        identify("u1", ts(9), {"plan": "pro"}),
        track("u1", "Plan", ts(8), props={"name": "free"}),
        track("u1", "Buy", ts(1), props={"plan": "pro", "v": 1}),
        track("u1", "Buy", ts(1), props={"plan": "free", "v": 10}),
    ]
    out = compute(
        tmp_path,
        lines,
        traits=[
            trait("plan", "last", "Plan", property="name"),
            trait("v_plan", "sum", "Buy", property="v", where="plan = trait.plan"),
        ],
    )
    assert out.user("u1")["plan"] == "free"
    assert out.user("u1")["v_plan"] == 1


def test_account_computed_trait_where_trait_ref_and_ties(tmp_path: Path) -> None:
    """SPEC 5a: "`trait.k` inside a computed trait's `where` names a custom trait" — for an
    account trait, the account's custom trait (SPEC 3: account traits come from group calls'
    `traits`, "the same" latest non-null by (timestamp, messageId))."""
    at = ts(9)
    lines = [
        {**group("u1", "g1", at, {"cur": "USD"}), "messageId": "m2"},
        {**group("u2", "g1", at, {"cur": "EUR"}), "messageId": "m1"},
        identify("u1", ts(8), {"cur": "EUR"}),
        track("u1", "Buy", ts(1), props={"cur": "USD", "v": 2}),
        track("u2", "Buy", ts(1), props={"cur": "EUR", "v": 3}),
    ]
    out = compute(
        tmp_path,
        lines,
        traits=[trait("home", "sum", "Buy", property="v", where="cur = trait.cur",
                      level="account")],
    )  # fmt: skip
    assert out.account("g1")["cur"] == "USD"
    assert out.account("g1")["home"] == 2


def test_alias_previous_id_seen_only_after_the_alias_is_a_user_id(tmp_path: Path) -> None:
    """SPEC 5a: "An alias's `previousId` takes the type it was first seen as before the alias."
    SPEC 1: "`user_id` if never seen". "x1" appears as an anonymous id only after the alias, so
    the alias links user_id:x1, which the user_id limit (1) keeps out of u1's profile; the later
    anonymous x1 is a profile of its own."""
    lines = [
        {"type": "alias", "userId": "u1", "previousId": "x1", "timestamp": ts(5),
         "messageId": "al"},
        track(None, "A", ts(4), anonymousId="x1"),
    ]  # fmt: skip
    out = compute(tmp_path, lines)
    assert out.profiles() == {frozenset({"user_id:u1"}), frozenset({"anonymous_id:x1"})}


def test_traits_email_read_on_track_calls(tmp_path: Path) -> None:
    """SPEC 2: email comes `from: [traits.email, context.traits.email]`; SPEC 5a: "`traits.*`
    paths are not read on group calls" — only on group calls. A track carrying `traits.email` is
    linked by it."""
    lines = [
        {"type": "track", "event": "A", "anonymousId": "a1", "timestamp": ts(2),
         "traits": {"email": "T@x.com"}},
    ]  # fmt: skip
    out = compute(tmp_path, lines)
    assert out.profiles() == {frozenset({"email:t@x.com", "anonymous_id:a1"})}


def test_most_frequent_ties_in_text_order_of_numbers(tmp_path: Path) -> None:
    """SPEC 3: "ties go to the smallest value in text order" and most_frequent "compare[s]
    values as text": 10 and 9 tie, and "10" < "9" as text."""
    lines = [track("u1", "E", ts(1), props={"p": v}) for v in [9, 9, 10, 10]]
    out = compute(tmp_path, lines, traits=[trait("mf", "most_frequent", property="p")])
    assert out.user("u1")["mf"] == "10"


def test_backfill_true_ignores_created_at(tmp_path: Path) -> None:
    """SPEC 4: "`backfill: true`" counts all history; only "false: only events at or after
    created_at count"."""
    lines = [track("u1", "E", ts(5))]
    out = compute(
        tmp_path,
        lines,
        audiences=[aud("bt", {"event": "E"}, backfill=True, created_at=ts(1))],
    )
    assert out.members("bt") == {"u1"}


def test_null_comparisons_and_not_node(tmp_path: Path) -> None:
    """SPEC 5: "A missing key is null, and a comparison with null is not true"; SPEC 5a: `not:` is
    two-valued. SPEC 5a: "`IS NULL` is true for a missing key or JSON null only" (an empty object
    is not null)."""
    lines = [
        track("u1", "E", ts(1), props={"p": "x"}),
        track("u2", "E", ts(1), props={}),
        track("u3", "E", ts(1), props={"p": {}}),
    ]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("ne", {"event": "E", "where": "p <> 'y'"}),
            aud("not_ne", {"not": {"event": "E", "where": "p <> 'y'"}}),
            aud("notnull", {"event": "E", "where": "p IS NOT NULL"}),
            aud("lit", {"traits": "NULL IS NULL AND 1 = 1"}),
        ],
    )
    assert out.members("ne") == {"u1"}
    assert out.members("not_ne") == {"u2", "u3"}
    assert out.members("notnull") == {"u1", "u3"}
    assert out.members("lit") == {"u1", "u2", "u3"}


def test_group_only_profile_is_in_the_user_universe(tmp_path: Path) -> None:
    """SPEC 2: "The universe of user-level audiences is every profile with a message at or before
    as-of" — a group call is a message."""
    lines = [group("u1", "g1", ts(1)), track("u2", "E", ts(1))]
    out = compute(
        tmp_path,
        lines,
        audiences=[aud("everyone", {"all": []}), aud("no_e", {"not": {"event": "E"}})],
    )
    assert out.members("everyone") == {"u1", "u2"}
    assert out.members("no_e") == {"u1"}


def test_property_against_trait_ref_is_two_names(tmp_path: Path) -> None:
    """SPEC 5: "Two names compared with each other compare as numbers when both are numbers, as
    strings when both are strings, else null." `trait.n` (a count: a number) against the string
    "1" is null; against 1 it holds. `trait.mf` (most_frequent returns text) against the number
    12 is null; against the string "12" it holds."""
    lines = [
        track("u1", "V", ts(3), props={"p": 12}), track("u1", "V", ts(3), props={"p": 12}),
        track("u1", "E", ts(1), props={"n": 2, "m": "12"}),
        track("u2", "V", ts(3), props={"p": 12}), track("u2", "V", ts(3), props={"p": 12}),
        track("u2", "E", ts(1), props={"n": "2", "m": 12}),
    ]  # fmt: skip
    out = compute(
        tmp_path,
        lines,
        traits=[trait("vn", "count", "V"), trait("mf", "most_frequent", "V", property="p")],
        audiences=[
            aud("n_eq", {"event": "E", "where": "n = trait.vn"}),
            aud("m_eq", {"event": "E", "where": "m = trait.mf"}),
        ],
    )  # fmt: skip
    assert out.members("n_eq") == {"u1"}
    assert out.members("m_eq") == {"u1"}


def test_mixed_type_first_trait_keeps_json_typing_in_conditions(tmp_path: Path) -> None:
    """SPEC 5a: "first/last over mixed JSON types are stored as JSON text", but SPEC 5: "Values
    are JSON-typed": conditions still see 5 as a number (its text `5`), "x" as a string and "5"
    as a numeric string."""
    cases = {"u1": 5, "u2": "x", "u3": "5", "u4": True}
    lines = [track(u, "E", ts(1), props={"p": v}) for u, v in cases.items()]
    out = compute(
        tmp_path,
        lines,
        traits=[trait("f", "first", property="p")],
        audiences=[
            aud("num5", {"traits": "f = 5"}),
            aud("txt5", {"traits": "f = '5'"}),
            aud("x", {"traits": "f = 'x'"}),
            aud("bool", {"traits": "f = true"}),
            aud("ev", {"event": "E", "where": "p = trait.f"}),
        ],
    )
    assert out.members("num5") == {"u1", "u3"}
    assert out.members("txt5") == {"u1", "u3"}
    assert out.members("x") == {"u2"}
    assert out.members("bool") == {"u4"}
    assert out.members("ev") == {"u1", "u2", "u3", "u4"}


def test_traits_compared_with_each_other(tmp_path: Path) -> None:
    """SPEC 5: two names compare "as numbers when both are numbers, as strings when both are
    strings, else null"; a computed sum is a number, a custom trait keeps its raw JSON value."""
    lines = [
        identify("u1", ts(5), {"budget": 10}),
        identify("u2", ts(5), {"budget": "10"}),
        track("u1", "Buy", ts(1), props={"v": 12}),
        track("u2", "Buy", ts(1), props={"v": 12}),
    ]
    out = compute(
        tmp_path,
        lines,
        traits=[trait("spent", "sum", "Buy", property="v")],
        audiences=[aud("over", {"traits": "spent > budget"})],
    )
    assert out.members("over") == {"u1"}


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_boolean_subexpressions_compared_and_null_tested(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """SPEC 5: comparisons, `AND/OR/NOT`, `IS [NOT] NULL` over expressions; "booleans as
    booleans" (SPEC 5a: "Two booleans compare as booleans"). A boolean sub-expression compared
    with a boolean, or tested for null, is one operand: `(n > 1 AND n < 5) = false` is not
    `n > 1 AND (n < 5 = false)`. Regression: the SQL backend printed these without parentheses
    (a DuckDB parser error, or a silently different precedence for `IS NOT NULL`). Run on both
    engines whatever SPEC_AUDIT_ENGINE says."""
    monkeypatch.setattr(audit, "ENGINE", engine)
    cases = {"u1": -3, "u2": "3", "u3": 7, "u4": True}
    lines = [track(u, "E", ts(1), props={"n": v, "s": "ab"}) for u, v in cases.items()]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("gt_true", {"event": "E", "where": "(n > 1) = true"}),
            aud("and_false", {"event": "E", "where": "(n > 1 AND n < 5) = false"}),
            aud("or_eq", {"event": "E", "where": "(n < 1 OR n > 5) = (s LIKE 'a%')"}),
            aud("and_notnull", {"event": "E", "where": "(n > 1 AND n < 5) IS NOT NULL"}),
            aud("cmp_null", {"event": "E", "where": "(n = 3) IS NULL"}),
            aud("in_bool", {"event": "E", "where": "(n > 1) IN (true)"}),
        ],
    )
    # u4's n (a boolean) read as a number is null, so every comparison on it is null
    assert out.members("gt_true") == {"u2", "u3"}
    assert out.members("and_false") == {"u1", "u3"}
    assert out.members("or_eq") == {"u1", "u3"}
    assert out.members("and_notnull") == {"u1", "u2", "u3"}
    assert out.members("cmp_null") == {"u4"}
    assert out.members("in_bool") == {"u2", "u3"}


def test_typed_expression_against_string_literal(tmp_path: Path) -> None:
    """SPEC 5: "Compared with a number, a value is read as a number (a numeric string is read as
    its number; anything else gives null)". `length(name)` is a number, so the literal '5' is
    read as 5; 'five' reads as null. (docs/semantics.md: a literal or typed side imposes its
    type; the reference evaluator instead makes such comparisons null, see its DECISIONS.)"""
    lines = [
        track("u1", "E", ts(1), props={"name": "alice"}),
        track("u2", "E", ts(1), props={"name": "bob"}),
    ]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("len5", {"event": "E", "where": "length(name) = '5'"}),
            aud("five", {"event": "E", "where": "length(name) = 'five'"}),
        ],
    )
    assert out.members("len5") == {"u1"}
    assert out.members("five") == set()


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_property_keys_differing_only_in_case_are_distinct(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """SPEC 5: "Names are property (or trait) keys" — JSON keys, which are case-sensitive:
    `plan` never reads `Plan`. Regression: the SQL backend stored both as columns of one DuckDB
    table, whose case-insensitive names made `plan` read `Plan`. Run on both engines."""
    monkeypatch.setattr(audit, "ENGINE", engine)
    lines = [
        track("u1", "E", ts(1), props={"Plan": "P"}, context={"Dev": "x"}),
        track("u2", "E", ts(1), props={"plan": "p"}, context={"dev": "y"}),
        track("u3", "E", ts(1), props={"Plan": "P", "plan": "p"}, context={"Dev": "x", "dev": "y"}),
    ]
    out = compute(
        tmp_path,
        lines,
        traits=[trait("first_plan", "first", property="plan")],
        audiences=[
            aud("lower_p", {"event": "E", "where": "plan = 'p'"}),
            aud("upper_p", {"event": "E", "where": "plan = 'P'"}),
            aud("no_plan", {"event": "E", "where": "plan IS NULL"}),
            aud("dev_y", {"event": "E", "where": "context.dev = 'y'"}),
        ],
    )
    assert out.members("lower_p") == {"u2", "u3"}
    assert out.members("upper_p") == set()
    assert out.members("no_plan") == {"u1"}
    assert out.members("dev_y") == {"u2", "u3"}
    assert [out.user(u)["first_plan"] for u in ("u1", "u2", "u3")] == [None, "p", "p"]


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_property_key_with_a_double_quote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """SPEC 1: `properties` are "event properties (any JSON)", so a key may hold any character;
    SPEC 5: "Names are property (or trait) keys" (a quoted identifier names such a key).
    Regression: the SQL backend pasted such a key into SQL unescaped and failed the run."""
    monkeypatch.setattr(audit, "ENGINE", engine)
    lines = [track("u1", "E", ts(1), props={'q"k': 2, "a b": 1}), track("u2", "E", ts(1))]
    out = compute(
        tmp_path, lines, audiences=[aud("q", {"event": "E", "where": '"q""k" = 2 AND "a b" = 1'})]
    )
    assert out.rc == 0
    assert out.members("q") == {"u1"}


def test_having_allows_the_section_5_functions(tmp_path: Path) -> None:
    """SPEC 5: "`where`, `traits` and `having` are SQL boolean expressions ...: comparisons, ...,
    arithmetic, and `lower, upper, length, coalesce, abs`"; only "subqueries, other functions,
    statements" are rejected. SPEC 4: over no events "counts and sum 0, the rest null".
    Regression: `validate` rejected any function around an aggregate in `having`."""
    lines = [
        track("u1", "E", ts(1), props={"p": -3}),
        track("u2", "E", ts(1), props={"p": "x"}),
        track("u3", "F", ts(1)),
    ]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("abs3", {"event": "E", "having": "abs(min(p)) = 3"}),
            aud("avg0", {"event": "E", "having": "coalesce(avg(p), 0) = 0"}),
            aud("len2", {"event": "E", "having": "length(sum(p)) = 2"}),
        ],
    )
    assert out.rc == 0
    assert out.members("abs3") == {"u1"}
    assert out.members("avg0") == {"u2", "u3"}
    assert out.members("len2") == {"u1"}


def test_documented_trait_prefix_and_context_property(tmp_path: Path) -> None:
    """docs/semantics.md (SPEC silent): in a `traits:` condition `trait.k` names the trait `k`;
    a computed trait's `property: context.x` reads the call's context, as SPEC 5 has names
    starting with `context.` do in event conditions."""
    lines = [
        identify("u1", ts(3), {"plan": "pro"}),
        track("u1", "A", ts(2), context={"device": {"type": "ios"}}),
        track("u1", "A", ts(1), context={"device": {"type": "web"}}),
    ]
    out = compute(
        tmp_path,
        lines,
        traits=[trait("dev", "first", "A", property="context.device.type")],
        audiences=[aud("pro", {"traits": "trait.plan = 'pro' AND dev = 'ios'"})],
    )
    assert out.user("u1")["dev"] == "ios"
    assert out.members("pro") == {"u1"}
