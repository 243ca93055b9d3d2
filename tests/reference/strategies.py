"""Hypothesis strategies for property tests that hold the engine to the reference evaluator.

Data is drawn from small pools (few users, anonymous ids, emails, groups, events, property keys)
so that identities collide, limits bite and conditions are often true and often false. Numbers are
small integers and halves, which add up exactly in float64 in any order. Expressions are drawn
from the supported grammar only (SPEC section 5).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

AS_OF = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

USER_IDS: list[Any] = ["u1", "u2", "u3", "u4", " u2 ", 7]
ANON_IDS = ["a1", "a2", "a3", "a4", "a5", "a6"]
EMAILS = ["ann@x.com", "Ann@X.com ", "bob@x.com", "cy@x.com"]
BLOCKED_IDS: list[Any] = ["", "null", "Unknown", " anonymous ", 0, 4.5, True]
GROUP_IDS: list[Any] = ["g1", "g2", "g3", 7]
EVENTS = ["Product Viewed", "Product Added", "Order Completed", "Signed Up"]
ALL_EVENTS = [*EVENTS, "Page Viewed", "Screen Viewed"]
PROPERTY_KEYS = ["price", "product_id", "plan", "flag", "qty"]
NUMBERS: list[Any] = [0, 1, 2, 3, 5, 12, 12.0, 2.5, 20, 50, 99.5, 150, -3]
NUMERIC_STRINGS = ["12", "12.0", "3.5", "7", "150", "-2"]
PLAIN_STRINGS = ["p1", "p2", "p3", "pro", "free", "N/A", "Pro"]
MIXED_VALUES: list[Any] = [*NUMBERS, *NUMERIC_STRINGS, *PLAIN_STRINGS, True, False, None]
DEVICES = ["ios", "android", "web"]
USER_TRAIT_KEYS = ["plan", "seats", "vip", "company"]
ACCOUNT_TRAIT_KEYS = ["tier", "size"]
BAD_LINES = [
    "{not json",
    "[1, 2, 3]",
    '"just a string"',
    '{"type": "bogus", "userId": "u1", "timestamp": "2026-02-01T00:00:00Z"}',
    '{"type": "track", "event": "Signed Up", "timestamp": "2026-02-01T00:00:00Z"}',
    '{"type": "track", "userId": "null", "event": "Signed Up", "timestamp": "2026-02-01"}',
    '{"type": "track", "userId": "u1", "event": "Signed Up", "timestamp": "last tuesday"}',
    '{"type": "track", "userId": "u1", "event": "Signed Up"}',
    '{"type": "track", "userId": "u1", "event": "", "timestamp": "2026-02-01T00:00:00Z"}',
    '{"type": "track", "userId": "u1", "timestamp": "2026-02-01T00:00:00Z"}',
    '{"type": "group", "userId": "u1", "groupId": "", "timestamp": "2026-02-01T00:00:00Z"}',
    '{"type": "group", "userId": "u1", "timestamp": "2026-02-01T00:00:00Z"}',
]
DEFAULT_BLOCKED = ["", "null", "undefined", "none", "0", "unknown", "anonymous"]


# --- events ---------------------------------------------------------------------------------


@st.composite
def timestamps(draw: st.DrawFn) -> tuple[datetime, str]:
    """A moment over ~60 days before as-of (a few after it), coarse so that ties happen, and
    its ISO text in one of several spellings."""
    hours = draw(st.integers(min_value=-36, max_value=60 * 24))
    minutes = draw(st.sampled_from([0, 0, 0, 30]))
    moment = AS_OF - timedelta(hours=hours, minutes=minutes)
    style = draw(st.sampled_from(["z", "z", "offset", "plus2", "naive"]))
    if style == "z":
        text = moment.strftime("%Y-%m-%dT%H:%M:%S") + "Z"
    elif style == "offset":
        text = moment.isoformat()
    elif style == "plus2":
        text = moment.astimezone(timezone(timedelta(hours=2))).isoformat()
    else:
        text = moment.replace(tzinfo=None).isoformat()
    return moment, text


def _maybe(draw: st.DrawFn, value: Any, probability_in_8: int = 4) -> Any:
    return value if draw(st.integers(0, 7)) < probability_in_8 else None


@st.composite
def properties(draw: st.DrawFn) -> dict[str, Any]:
    """Event properties with mixed JSON types and missing keys."""
    out: dict[str, Any] = {}
    for key in PROPERTY_KEYS:
        if draw(st.booleans()):
            if key == "product_id":
                out[key] = draw(st.sampled_from(["p1", "p2", "p3", 3, "3", None]))
            elif key == "plan":
                out[key] = draw(st.sampled_from(["pro", "free", "Pro", None, 1]))
            elif key == "flag":
                out[key] = draw(st.sampled_from([True, False, "true", None, 1]))
            elif draw(st.integers(0, 3)) == 0:
                out[key] = draw(st.sampled_from(MIXED_VALUES))
            else:
                out[key] = draw(st.sampled_from([*NUMBERS, *NUMERIC_STRINGS[:3]]))
    return out


@st.composite
def messages(draw: st.DrawFn, index: int = 0) -> dict[str, Any]:
    """One Segment-spec message (valid unless it happens to lack identifiers)."""
    kind = draw(
        st.sampled_from(
            ["track"] * 6 + ["identify"] * 2 + ["group"] * 2 + ["page", "screen", "alias"]
        )
    )
    msg: dict[str, Any] = {"type": kind}
    user_id = _maybe(draw, draw(st.sampled_from(USER_IDS)), 4)
    anon = _maybe(draw, draw(st.sampled_from(ANON_IDS)), 6)
    if user_id is None and anon is None and draw(st.integers(0, 9)) > 0:
        anon = draw(st.sampled_from(ANON_IDS))
    if draw(st.integers(0, 19)) == 0:
        user_id = draw(st.sampled_from(BLOCKED_IDS))
    if user_id is not None:
        msg["userId"] = user_id
    if anon is not None:
        msg["anonymousId"] = anon
    moment, text = draw(timestamps())
    has_timestamp = draw(st.integers(0, 19)) > 0
    if has_timestamp:
        msg["timestamp"] = text
    if not has_timestamp or draw(st.integers(0, 3)) == 0:
        lag = timedelta(minutes=draw(st.sampled_from([0, 1, 5, 60])))
        msg["receivedAt"] = (moment + lag).isoformat()
    roll = draw(st.integers(0, 9))
    if roll < 6:
        msg["messageId"] = f"m{index}"
    elif roll < 8:
        msg["messageId"] = f"m{draw(st.integers(0, max(index, 1)))}"  # likely a duplicate
    context: dict[str, Any] = {}
    if draw(st.booleans()):
        context["device"] = {"type": draw(st.sampled_from(DEVICES))}
    if draw(st.integers(0, 4)) == 0:
        context["traits"] = {"email": draw(st.sampled_from(EMAILS))}
    if kind == "track":
        msg["event"] = draw(st.sampled_from(EVENTS))
        msg["properties"] = draw(properties())
    elif kind in ("page", "screen"):
        if draw(st.integers(0, 3)) > 0:
            msg["name"] = draw(st.sampled_from(["Home", "Pricing", "Cart"]))
        if draw(st.booleans()):
            msg["properties"] = draw(properties())
        if kind == "page" and draw(st.booleans()):
            path = draw(st.sampled_from(["/", "/pricing", "/cart"]))
            context["page"] = {"path": path, "url": "https://x.com" + path}
    elif kind == "identify":
        traits = _user_traits(draw)
        if draw(st.integers(0, 3)) == 0:
            context["traits"] = {**context.get("traits", {}), **_user_traits(draw)}
        msg["traits"] = traits
    elif kind == "group":
        msg["groupId"] = draw(st.sampled_from(GROUP_IDS))
        msg["traits"] = {
            key: draw(st.sampled_from(["gold", "silver", 3, 10, "10", None]))
            for key in ACCOUNT_TRAIT_KEYS
            if draw(st.booleans())
        }
        if draw(st.integers(0, 3)) == 0:
            msg["traits"]["email"] = draw(st.sampled_from(EMAILS))  # account's, not an id
    elif kind == "alias":
        msg["previousId"] = draw(st.sampled_from([*ANON_IDS, "u1", "u3", "old-1", "ann@x.com"]))
    if context:
        msg["context"] = context
    return msg


def _user_traits(draw: st.DrawFn) -> dict[str, Any]:
    pools: dict[str, list[Any]] = {
        "plan": ["pro", "free", "Pro", None],
        "seats": [1, 3, "5", 10.0, "many", None],
        "vip": [True, False, "true", None],
        "company": ["Acme", "acme", None],
        "email": EMAILS,
    }
    return {key: draw(st.sampled_from(pool)) for key, pool in pools.items() if draw(st.booleans())}


@st.composite
def event_files(draw: st.DrawFn, max_messages: int = 150) -> dict[str, str]:
    """One or two JSONL files of messages, with some bad and blank lines."""
    count = draw(st.integers(min_value=min(40, max_messages), max_value=max_messages))
    lines: list[str] = []
    for index in range(count):
        roll = draw(st.integers(0, 39))
        if roll == 17:
            lines.append(draw(st.sampled_from(BAD_LINES)))
        elif roll == 23:
            lines.append(draw(st.sampled_from(["", "   "])))
        else:
            lines.append(json.dumps(draw(messages(index))))
    split = draw(st.integers(0, len(lines)))
    if draw(st.booleans()):
        return {"events.jsonl": "\n".join(lines) + "\n"}
    return {"b.jsonl": "\n".join(lines[:split]), "a.jsonl": "\n".join(lines[split:])}


@st.composite
def spaces(draw: st.DrawFn) -> dict[str, Any]:
    """A space.yaml mapping with small limits that sometimes bite."""
    email_from = draw(
        st.sampled_from(
            [["traits.email", "context.traits.email"], "context.traits.email", "traits.email"]
        )
    )
    return {
        "space": "default",
        "timezone": "UTC",
        "identifiers": [
            {"type": "user_id", "from": "userId", "limit": draw(st.sampled_from([1, 1, 2]))},
            {"type": "email", "from": email_from, "limit": draw(st.sampled_from([1, 2, 5]))},
            {
                "type": "anonymous_id",
                "from": "anonymousId",
                "limit": draw(st.sampled_from([2, 3, 100])),
            },
        ],
        "blocked_values": DEFAULT_BLOCKED,
    }


# --- expressions ----------------------------------------------------------------------------


def _number(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(["0", "1", "2", "3", "5", "10", "12", "12.0", "20", "50", "100"]))


def _string(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(["'p1'", "'p2'", "'pro'", "'free'", "'12'", "'true'", "'Pro'"]))


NUMERIC_KEYS = {"price", "qty", "seats", "size", "parent.price"}
STRING_KEYS = {"product_id", "plan", "company", "tier", "context.device.type", "name"}
BOOLEAN_KEYS = {"flag", "vip"}
_NUMERIC_KINDS = ("count", "sum", "avg", "min", "max", "unique_count", "score")


def key_kind(key: str) -> str | None:
    """The JSON kind a key mostly holds in generated data (None: mixed)."""
    bare = key.removeprefix("trait.")
    if bare in NUMERIC_KEYS or bare.endswith(_NUMERIC_KINDS):
        return "number"
    if bare in STRING_KEYS or bare.endswith("most_frequent") or "device" in bare:
        return "string"
    if bare in BOOLEAN_KEYS:
        return "boolean"
    return None


def _typed_atom(draw: st.DrawFn, key: str, kind: str | None, op: str) -> str:
    if kind == "number":
        return draw(
            st.sampled_from(
                [
                    f"{key} {op} {_number(draw)}",
                    f"{key} BETWEEN {_number(draw)} AND {_number(draw)}",
                    f"coalesce({key}, 0) {op} {_number(draw)}",
                    f"{key} * 2 >= {_number(draw)}",
                    f"abs({key} - 10) < {_number(draw)}",
                    f"{key} IN (3, 12, 150)",
                ]
            )
        )
    if kind == "string":
        literal = draw(
            st.sampled_from(["'p1'", "'p2'", "'pro'", "'free'", "'ios'", "'Acme'", "'gold'"])
        )
        return draw(
            st.sampled_from(
                [
                    f"{key} = {literal}",
                    f"{key} <> {literal}",
                    f"{key} IN ({literal}, 'p2', 'web', 'silver')",
                    f"lower({key}) LIKE '{draw(st.sampled_from(['p%', '%o%', 'a_%', 'gold']))}'",
                    f"{key} ILIKE '{draw(st.sampled_from(['P%', 'FREE', '%1%', 'IOS']))}'",
                    f"length({key}) <= 3",
                ]
            )
        )
    if kind == "boolean":
        return draw(st.sampled_from([key, f"NOT {key}", f"{key} = true", f"{key} IS NOT NULL"]))
    return f"{key} IS NOT NULL"


@st.composite
def value_atoms(draw: st.DrawFn, keys: Sequence[str]) -> str:
    """One predicate over the given names (property, trait or context keys); mostly shaped for
    the kind of value the key holds, sometimes anything (mixed types, nulls)."""
    key = draw(st.sampled_from(list(keys)))
    other = draw(st.sampled_from(list(keys)))
    op = draw(st.sampled_from(["=", "<>", "<", "<=", ">", ">="]))
    if draw(st.integers(0, 9)) < 7:
        return _typed_atom(draw, key, key_kind(key), op)
    choices = [
        f"{key} {op} {_number(draw)}",
        f"{key} {op} {_string(draw)}",
        f"{key} = {draw(st.sampled_from(['true', 'false']))}",
        f"{key}",
        f"{key} IS NULL",
        f"{key} IS NOT NULL",
        f"{key} IN ({_string(draw)}, {_number(draw)}, {_string(draw)})",
        f"{key} NOT IN ({_string(draw)}, {_string(draw)})",
        f"{key} BETWEEN {_number(draw)} AND {_number(draw)}",
        f"{key} NOT BETWEEN 2 AND 20",
        f"lower({key}) LIKE '{draw(st.sampled_from(['p%', '_2', '%o', 'pro']))}'",
        f"{key} ILIKE '{draw(st.sampled_from(['P%', 'FREE', '%1%']))}'",
        f"{key} NOT LIKE 'p%'",
        f"coalesce({key}, 0) {op} {_number(draw)}",
        f"coalesce({key}, 'none') = {_string(draw)}",
        f"{key} + {other} {op} {_number(draw)}",
        f"{key} * 2 >= {_number(draw)}",
        f"{key} % 2 = 1",
        f"{key} / {other} > 1",
        f"{key} - 1 < 0",
        f"length({key}) = {draw(st.sampled_from(['1', '2', '3', '4']))}",
        f"upper({key}) = {draw(st.sampled_from(['PRO', 'P1', 'TRUE']))!r}",
        f"abs({key}) > {_number(draw)}",
        f"{key} {op} {other}",
        f"coalesce({key}, {other}) = {_string(draw)}",
    ]
    return draw(st.sampled_from(choices))


@st.composite
def boolean_expressions(draw: st.DrawFn, keys: Sequence[str], depth: int = 2) -> str:
    """AND/OR/NOT combinations of :func:`value_atoms`."""
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(value_atoms(keys))
    shape = draw(st.sampled_from(["and", "or", "not"]))
    left = draw(boolean_expressions(keys, depth - 1))
    if shape == "not":
        return f"NOT ({left})"
    right = draw(boolean_expressions(keys, depth - 1))
    return f"({left}) {shape.upper()} ({right})"


def _where_keys(trait_keys: Sequence[str], parent: bool = False) -> list[str]:
    keys = [*PROPERTY_KEYS, "context.device.type"]
    keys += [f"trait.{k}" for k in trait_keys]
    if parent:
        keys += ["parent.product_id", "parent.price", "parent.context.device.type"]
    return keys


@st.composite
def having_expressions(draw: st.DrawFn) -> str:
    """A ``having`` over count/sum/avg/min/max."""
    key = draw(st.sampled_from(PROPERTY_KEYS))
    atoms = [
        f"count(*) >= {draw(st.integers(1, 3))}",
        f"count(*) >= {draw(st.integers(1, 3))}",
        "count(*) = 0",
        f"count(*) <= {draw(st.integers(0, 2))}",
        f"count({key}) >= {draw(st.integers(1, 2))}",
        f"count(distinct {key}) >= {draw(st.integers(1, 3))}",
        f"sum({key}) > {_number(draw)}",
        f"avg({key}) >= {_number(draw)}",
        f"min({key}) < {_number(draw)}",
        f"max({key}) >= {_number(draw)}",
        f"avg({key}) IS NULL",
    ]
    first = draw(st.sampled_from(atoms))
    if draw(st.integers(0, 3)) == 0:
        return f"{first} AND {draw(st.sampled_from(atoms))}"
    return first


def _event_names(draw: st.DrawFn) -> str | list[str]:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.lists(st.sampled_from(ALL_EVENTS), min_size=1, max_size=3, unique=True))
    return draw(st.sampled_from([*EVENTS, *EVENTS, "Page Viewed"]))


def _window(draw: st.DrawFn) -> dict[str, Any]:
    roll = draw(st.integers(0, 5))
    if roll == 4:
        return {"within": draw(st.sampled_from(["30d", "2w", "7d", "12h", "90m"]))}
    if roll == 5:
        low, high = draw(st.sampled_from([("1d", "7d"), ("12h", "3d"), ("7d", "30d")]))
        return {"between": [low, high]}
    return {}


# --- traits ---------------------------------------------------------------------------------

KIND_NAMES = [
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "most_frequent",
    "first",
    "last",
    "unique_list",
    "unique_count",
]


SCORE_NAMES = ["quantity", "frequency", "recency", "momentum", "consistency"]


def _score_trait(draw: st.DrawFn, index: int) -> dict[str, Any]:
    """A `kind: score` trait (its key ends in `_score`: a number for expressions)."""
    score = draw(st.sampled_from(SCORE_NAMES))
    definition: dict[str, Any] = {"key": f"t{index}_{score}_score", "kind": "score",
                                  "score": score}  # fmt: skip
    if draw(st.integers(0, 2)) > 0:
        definition["event"] = _event_names(draw)
    level = draw(st.sampled_from(["user", "user", "account"]))
    if level == "account" or draw(st.booleans()):
        definition["level"] = level
    if draw(st.integers(0, 3)) == 0:
        customs = ACCOUNT_TRAIT_KEYS if level == "account" else USER_TRAIT_KEYS
        keys = [*PROPERTY_KEYS, *(f"trait.{k}" for k in customs)]
        definition["where"] = draw(boolean_expressions(keys, 1))
    if draw(st.integers(0, 2)) > 0:
        definition["within"] = draw(st.sampled_from(["3d", "7d", "9d", "15d", "30d", "90m", "2w"]))
    return definition


@st.composite
def trait_defs(draw: st.DrawFn, max_traits: int = 5) -> list[dict[str, Any]]:
    """Computed trait definitions (user and account level, unique keys)."""
    out = []
    for index in range(draw(st.integers(0, max_traits))):
        if draw(st.integers(0, 4)) == 0:
            out.append(_score_trait(draw, index))
            continue
        kind = draw(st.sampled_from(KIND_NAMES))
        level = draw(st.sampled_from(["user", "user", "account"]))
        definition: dict[str, Any] = {
            "key": f"t{index}_{kind}",
            "kind": kind,
            "event": _event_names(draw),
        }
        if level == "account" or draw(st.booleans()):
            definition["level"] = level
        if kind in ("sum", "avg", "min", "max") and draw(st.integers(0, 3)) > 0:
            definition["property"] = draw(st.sampled_from(["price", "qty"]))
        elif kind != "count":
            definition["property"] = draw(st.sampled_from([*PROPERTY_KEYS, "name"]))
        if draw(st.integers(0, 2)) == 2:
            customs = ACCOUNT_TRAIT_KEYS if level == "account" else USER_TRAIT_KEYS
            keys = [*PROPERTY_KEYS, "context.device.type", *(f"trait.{k}" for k in customs)]
            definition["where"] = draw(boolean_expressions(keys, 1))
        definition.update(_window(draw))
        if kind == "most_frequent" and draw(st.booleans()):
            definition["min_frequency"] = draw(st.integers(1, 3))
        out.append(definition)
    return out


# --- audiences ------------------------------------------------------------------------------


@st.composite
def _event_condition(draw: st.DrawFn, trait_keys: Sequence[str]) -> dict[str, Any]:
    node: dict[str, Any] = {"event": _event_names(draw)}
    if draw(st.integers(0, 2)) == 2:
        node["where"] = draw(boolean_expressions(_where_keys(trait_keys), 1))
    node.update(_window(draw))
    if draw(st.booleans()):
        node["having"] = draw(having_expressions())
    return node


@st.composite
def _funnel(draw: st.DrawFn, trait_keys: Sequence[str]) -> dict[str, Any]:
    steps = []
    for index in range(draw(st.integers(2, 3))):
        step: dict[str, Any] = {"event": draw(st.sampled_from(EVENTS))}
        if draw(st.integers(0, 2)) == 0:
            if index > 0 and draw(st.booleans()):
                step["where"] = draw(
                    st.sampled_from(
                        [
                            "product_id = parent.product_id",
                            "price >= parent.price",
                            "context.device.type = parent.context.device.type",
                            "coalesce(price, 0) > coalesce(parent.price, 0)",
                        ]
                    )
                )
            else:
                step["where"] = draw(boolean_expressions(_where_keys(trait_keys), 1))
        if index > 0 and draw(st.booleans()):
            step["within"] = draw(st.sampled_from(["1h", "12h", "1d", "7d"]))
        steps.append(step)
    if draw(st.integers(0, 2)) == 0:
        steps[-1]["performed"] = False
    funnel: dict[str, Any] = {"steps": steps}
    funnel.update(_window(draw))
    return {"funnel": funnel}


SECTION7_DURATIONS = ["1h", "12h", "1d", "3d", "7d", "2w", "30d"]
SAMPLE_BOUNDS: list[Any] = [0, 0.01, 10, 12.5, 33.33, 50, 66.67, 90, 99.99, 100]


@st.composite
def _behaviour(draw: st.DrawFn, trait_keys: Sequence[str]) -> dict[str, Any]:
    """A section-7 behaviour node (first_time, stopped, restarted, regularly)."""
    kind = draw(st.sampled_from(["first_time", "stopped", "restarted", "regularly"]))
    body: dict[str, Any] = {"event": _event_names(draw)}
    if draw(st.integers(0, 3)) == 0:
        body["where"] = draw(boolean_expressions(_where_keys(trait_keys), 1))
    duration = st.sampled_from(SECTION7_DURATIONS)
    if kind == "regularly":
        periods = draw(st.integers(1, 4))
        body.update(times=draw(st.integers(1, 3)), period=draw(duration), periods=periods)
        if draw(st.booleans()):
            body["min_periods"] = draw(st.integers(1, periods))
    else:
        body["within"] = draw(duration)
        if kind == "stopped":
            body["before"] = draw(duration)
        if kind == "restarted":
            body["gap"] = draw(duration)
    return {kind: body}


@st.composite
def _sample(draw: st.DrawFn) -> dict[str, Any]:
    low, high = sorted(draw(st.lists(st.sampled_from(SAMPLE_BOUNDS), min_size=2, max_size=2,
                                     unique=True)))  # fmt: skip
    return {"sample": {"salt": draw(st.sampled_from(["exp", "2026", 7])), "from": low, "to": high}}


@st.composite
def user_conditions(
    draw: st.DrawFn, trait_keys: Sequence[str], audience_keys: Sequence[str], depth: int = 2
) -> dict[str, Any]:
    """A user-level condition tree."""
    leaves = ["event", "event", "traits", "traits", "funnel", "behaviour", "behaviour", "sample"]
    leaves += ["audience"] if audience_keys else []
    shapes = leaves + (["any", "all", "not"] if depth > 0 else [])
    shape = draw(st.sampled_from(shapes))
    if shape in ("all", "any"):
        children = st.lists(user_conditions(trait_keys, audience_keys, depth - 1), max_size=3)
        return {shape: draw(children)}
    if shape == "not":
        return {"not": draw(user_conditions(trait_keys, audience_keys, depth - 1))}
    keys = [*USER_TRAIT_KEYS, *trait_keys]
    if shape == "behaviour":
        return draw(_behaviour(keys))
    if shape == "sample":
        return draw(_sample())
    if shape == "event":
        return draw(_event_condition(keys))
    if shape == "funnel":
        return draw(_funnel(keys))
    if shape == "audience":
        return {"audience": draw(st.sampled_from(list(audience_keys)))}
    return {"traits": draw(boolean_expressions(keys, 2))}


@st.composite
def account_conditions(
    draw: st.DrawFn,
    user_trait_keys: Sequence[str],
    account_trait_keys: Sequence[str],
    user_audiences: Sequence[str],
    account_audiences: Sequence[str],
    depth: int = 2,
) -> dict[str, Any]:
    """An account-level condition tree (``users:`` nodes hold user-level trees)."""
    leaves = ["users", "users", "event", "traits", "funnel", "behaviour", "sample"]
    leaves += ["audience"] if account_audiences else []
    shape = draw(st.sampled_from(leaves + (["all", "any", "not"] if depth > 0 else [])))
    recurse = account_conditions(
        user_trait_keys, account_trait_keys, user_audiences, account_audiences, depth - 1
    )
    if shape in ("all", "any"):
        return {shape: draw(st.lists(recurse, max_size=3))}
    if shape == "not":
        return {"not": draw(recurse)}
    if shape == "users":
        inner = draw(user_conditions(user_trait_keys, user_audiences, 1))
        return {"users": draw(st.sampled_from(["any", "all", "none"])), "condition": inner}
    if shape == "behaviour":
        return draw(_behaviour([*ACCOUNT_TRAIT_KEYS, *account_trait_keys]))
    if shape == "sample":
        return draw(_sample())
    if shape == "event":
        return draw(_event_condition([*ACCOUNT_TRAIT_KEYS, *account_trait_keys]))
    if shape == "funnel":
        return draw(_funnel([*ACCOUNT_TRAIT_KEYS, *account_trait_keys]))
    if shape == "audience":
        return {"audience": draw(st.sampled_from(list(account_audiences)))}
    keys = [*ACCOUNT_TRAIT_KEYS, *account_trait_keys]
    return {"traits": draw(boolean_expressions(keys, 2))}


@st.composite
def audience_defs(
    draw: st.DrawFn,
    user_trait_keys: Sequence[str] = (),
    account_trait_keys: Sequence[str] = (),
    max_audiences: int = 5,
) -> list[dict[str, Any]]:
    """Audience definitions; references only point to earlier audiences (acyclic)."""
    out: list[dict[str, Any]] = []
    user_keys: list[str] = []
    account_keys: list[str] = []
    for index in range(draw(st.integers(1, max_audiences))):
        level = draw(st.sampled_from(["user", "user", "account"]))
        key = f"aud{index}"
        definition: dict[str, Any] = {"key": key, "name": f"Audience {index}"}
        if level == "account":
            definition["level"] = "account"
            definition["condition"] = draw(
                account_conditions(user_trait_keys, account_trait_keys, user_keys, account_keys)
            )
            account_keys.append(key)
        else:
            definition["condition"] = draw(user_conditions(user_trait_keys, user_keys))
            if draw(st.integers(0, 3)) == 0:
                definition["include_anonymous"] = False
            user_keys.append(key)
        if draw(st.integers(0, 3)) == 0:
            definition["backfill"] = False
            if draw(st.integers(0, 3)) > 0:
                days = draw(st.integers(0, 40))
                definition["created_at"] = (AS_OF - timedelta(days=days)).isoformat()
        out.append(definition)
    return out


@st.composite
def scenario(
    draw: st.DrawFn, max_messages: int = 150
) -> tuple[dict[str, str], dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], datetime]:
    """(files, space, traits, audiences, as_of) for one property-test run."""
    files = draw(event_files(max_messages))
    space = draw(spaces())
    traits = draw(trait_defs())
    user_keys = [t["key"] for t in traits if t.get("level", "user") == "user"]
    account_keys = [t["key"] for t in traits if t.get("level") == "account"]
    audiences = draw(audience_defs(user_keys, account_keys))
    return files, space, traits, audiences, AS_OF
