"""The column-wise fast paths against the readable per-row definitions they replace."""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import random
from pathlib import Path

import orjson
import polars as pl
import pytest

from audience_pipeline.destinations import export
from audience_pipeline.destinations.config import AudienceLink
from audience_pipeline.destinations.encode import encode_messages
from audience_pipeline.destinations.hashing import sha256_hex
from audience_pipeline.destinations.identifiers import select_identifiers
from audience_pipeline.destinations.payloads import (
    AudienceInfo,
    PersonasContext,
    message_id,
    render_batch,
)
from audience_pipeline.destinations.sync import _chunks
from tests.destinations.support import profile, write_definitions, write_warehouse

export_module = importlib.import_module("audience_pipeline.destinations.export")
AUDIENCES = {
    "buyers": AudienceInfo("buyers", 'Buyers "best"', "user",
                           AudienceLink("buyers", ("identify", "track"), ("group",))),
    "vip": AudienceInfo("vip", "VIP", "user", AudienceLink("vip", ("track",), ("group",))),
    "big": AudienceInfo("big", "Big", "account",
                        AudienceLink("big", ("identify",), ("group", "identify", "track"))),
}  # fmt: skip
PERSONAS = PersonasContext("spa_test")
# Quotes, backslashes, control characters and non-ASCII: what JSON escaping must get right.
ALPHABET = ["a", "b", "é", "😀", '"', "\\", "\t", "\x01", "@", ".", ","]


def _value(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 6)))


def outbox(seed: int, n: int, *, plain: bool = False) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        key = rng.choice(list(AUDIENCES))
        level = "account" if key == "big" and rng.random() < 0.5 else "user"
        ids: dict[str, list[str]] = {}
        for id_type in ("user_id", "email", "anonymous_id", "phone"):
            count = rng.choice([0, 1, 1, 2, 3])
            if count:
                ids[id_type] = [f"v{i}.{k}" if plain else _value(rng) for k in range(count)]
        if level == "account":
            ids = {"group_id": [f"acc{i}"]}
        entity = f"p_{i}" + ("" if plain else rng.choice(["", "é", '"']))
        rows.append((i + 1, 1 + i // 50, key, level, entity,
                     rng.choice(["entered", "exited", "resynced"]), orjson.dumps(ids).decode(),
                     "2026-03-01T12:00:00.000Z"))  # fmt: skip
    schema = ["seq", "batch", "audience_key", "level", "entity_id", "change", "ids", "as_of"]
    return pl.DataFrame(rows, schema=schema, orient="row")


def reference(batch: pl.DataFrame) -> list[str]:
    return [orjson.dumps(m).decode() for m in render_batch("hook", batch, AUDIENCES, PERSONAS)]


@pytest.mark.parametrize(("seed", "plain"), [(1, False), (2, False), (3, True)])
def test_encoded_messages_are_byte_identical_to_render_change(seed: int, plain: bool) -> None:
    batch = outbox(seed, 400, plain=plain)
    expected = reference(batch)
    assert len(expected) > 400  # fan-out and two calls per change happened
    assert encode_messages("hook", batch, AUDIENCES, PERSONAS) == expected
    assert encode_messages("hook", batch.head(0), AUDIENCES, PERSONAS) == []


def test_rows_with_disagreeing_type_orders_fall_back_to_the_reference() -> None:
    batch = outbox(4, 10, plain=True).with_columns(
        pl.Series(
            "ids", ['{"email":["e"],"user_id":["u"]}', '{"user_id":["u2"],"email":["f"]}'] * 5
        )  # fmt: skip
    )
    assert encode_messages("hook", batch, AUDIENCES, PERSONAS) == reference(batch)


def test_prepared_chunks_send_what_batches_alone_would(tmp_path: Path) -> None:
    from audience_pipeline.destinations.webhook import PreparedMessages

    class Ctx:
        destination = type("D", (), {"name": "hook"})()
        audiences = AUDIENCES
        personas = PERSONAS

    chunk = outbox(5, 200)
    prepared = PreparedMessages(Ctx())  # type: ignore[arg-type]
    prepared.prepare(chunk)
    alone = PreparedMessages(Ctx())  # type: ignore[arg-type]
    for part in chunk.partition_by("batch", maintain_order=True):
        text, count = prepared.take(part)
        assert (text, count) == alone.take(part)
        assert orjson.loads(b"[" + text + b"]") == [orjson.loads(m) for m in reference(part)]
    assert not prepared.ready  # every prepared batch was taken


def test_sha256_hex_matches_hashlib_in_order_on_both_paths() -> None:
    for n in (10, 50_000):  # below and above the DuckDB threshold
        values = [None if i % 97 == 0 else f"user{i}é@example.com" for i in range(n)]
        got = sha256_hex(pl.Series("v", values)).to_list()
        assert got == [None if v is None else hashlib.sha256(v.encode()).hexdigest()
                       for v in values]  # fmt: skip


def test_postgres_and_payload_message_ids_agree() -> None:
    from audience_pipeline.destinations.postgres import PostgresSender

    batch = outbox(6, 30)
    sender = PostgresSender.__new__(PostgresSender)
    sender.ctx = type("C", (), {"destination": type("D", (), {"name": "db"})()})()  # type: ignore[assignment]
    rows = list(csv.reader(sender._csv(batch).decode().splitlines()))
    expected = [
        message_id("db", (k, lv, e, c, a, i), "row", 0)
        for k, lv, e, c, i, a in batch.select(
            "audience_key", "level", "entity_id", "change", "ids", "as_of"
        ).iter_rows()
    ]
    assert [r[0] for r in rows] == expected
    assert [r[5] for r in rows] == batch["ids"].to_list()


def test_chunks_group_consecutive_batches() -> None:
    assert _chunks([(1, 5), (2, 5), (3, 5), (4, 20), (7, 1)], 10) == [(1, 2), (3, 3), (4, 4),
                                                                       (7, 7)]  # fmt: skip
    assert _chunks([], 10) == []


def test_identifier_json_is_valid_for_non_ascii_values() -> None:
    identities = pl.DataFrame({"profile_id": ["p1", "p1", "p2"], "id_type": ["email"] * 3,
                               "id_value": ["é@x.com", "😀\"@x", "plain"]})  # fmt: skip
    out = dict(select_identifiers(identities, {"email": "all"}, None).iter_rows())
    assert json.loads(out["p1"]) == {"email": ["é@x.com", '😀"@x']}
    assert json.loads(out["p2"]) == {"email": ["plain"]}


def _independent(identities: pl.DataFrame, members: list[str]) -> dict[str, dict[str, list[str]]]:
    order = ["user_id", "email", "anonymous_id", "phone"]
    out: dict[str, dict[str, list[str]]] = {m: {} for m in members}
    for pid, id_type, value in identities.iter_rows():
        if pid in out:
            out[pid].setdefault(id_type, []).append(value)
    return {p: {t: sorted(v[t]) for t in order if t in v} for p, v in out.items()}


@pytest.mark.parametrize(("layout", "collide"), [("sorted", False), ("shuffled", False),
                                                 ("shuffled", True)])  # fmt: skip
def test_export_formats_against_an_independent_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, collide: bool
) -> None:
    """Identities sorted by profile (as `compute` writes them) take the merge path; in any other
    order, the hash join (whose collisions the equality check drops)."""
    if collide:  # every profile id of the same length hashes alike: the equality check decides
        monkeypatch.setattr(export_module, "_profile_hash",
                            lambda e: e.str.len_bytes().cast(pl.UInt64))  # fmt: skip
    rng = random.Random(7)
    rows = [(profile(n), t, _value(rng)) for n in range(60)
            for t in ("user_id", "email", "anonymous_id", "phone")
            for _ in range(rng.choice([0, 1, 1, 2, 3]))]  # fmt: skip
    identities = pl.DataFrame(rows, schema=["profile_id", "id_type", "id_value"], orient="row")
    identities = identities.unique(maintain_order=True)
    if layout == "sorted":
        identities = identities.sort("profile_id", "id_type", "id_value")
    else:
        identities = identities.sample(fraction=1.0, shuffle=True, seed=3)
        assert not identities["profile_id"].is_sorted()
    members = sorted(rng.sample(range(70), 40))
    defs = write_definitions(tmp_path / "defs", [])
    write_warehouse(tmp_path / "wh", {"buyers": members}, identities=identities)
    want = _independent(identities, [profile(n) for n in members])

    export("buyers", "unformatted", None, False, tmp_path / "u.csv", tmp_path / "wh", defs)
    with (tmp_path / "u.csv").open(newline="", encoding="utf-8") as handle:
        got = {r["key"]: json.loads(r["external_ids"]) for r in csv.DictReader(handle)}
    assert got == want

    export("buyers", "formatted", None, False, tmp_path / "f.csv", tmp_path / "wh", defs)
    with (tmp_path / "f.csv").open(newline="", encoding="utf-8") as handle:
        formatted = list(csv.DictReader(handle))
    for row in formatted:
        for id_type, values in want[row["key"]].items():
            names = [id_type] + [f"{id_type}_{i}" for i in range(1, len(values))]
            assert [row[n] for n in names] == values

    export("buyers", "single", "email", False, tmp_path / "s.csv", tmp_path / "wh", defs)
    with (tmp_path / "s.csv").open(newline="", encoding="utf-8") as handle:
        hashed = [r["email"] for r in csv.DictReader(handle)]
    emails = [v for p in sorted(want) for v in want[p].get("email", [])]
    assert hashed == [hashlib.sha256(v.encode()).hexdigest() for v in emails]


@pytest.mark.parametrize("fmt", ["formatted", "unformatted"])
def test_export_plain_lines_match_the_quoting_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """Values needing no quoting or escaping take the line-at-once path; forcing the general
    path (Polars quoting, JSON escaping) must give the same bytes."""
    rng = random.Random(11)
    rows = [(profile(n), t, f"{t[0]}{n}.{k}{rng.choice(['', 'é', ' x', '#', ';'])}")
            for n in range(80) for t in ("user_id", "email", "anonymous_id", "phone")
            for k in range(rng.choice([0, 1, 1, 2, 3]))]  # fmt: skip
    identities = pl.DataFrame(rows, schema=["profile_id", "id_type", "id_value"], orient="row")
    defs = write_definitions(tmp_path / "defs", [])
    members = sorted({*rng.sample(range(80), 45), 80, 81})  # 80, 81: no identifiers
    write_warehouse(tmp_path / "wh", {"buyers": members},
                    identities=identities.sample(fraction=1.0, shuffle=True, seed=3))  # fmt: skip
    export("buyers", fmt, None, False, tmp_path / "lines.csv", tmp_path / "wh", defs)
    monkeypatch.setattr(export_module, "_plain", lambda values: False)
    export("buyers", fmt, None, False, tmp_path / "quoted.csv", tmp_path / "wh", defs)
    lines = (tmp_path / "lines.csv").read_bytes()
    assert lines == (tmp_path / "quoted.csv").read_bytes()
    assert b'"{""user_id"":[""' in lines and b"\np_000080,{}" in lines  # no ids: "{}" unquoted
    assert fmt == "unformatted" or b",," in lines  # a missing value is an empty field
