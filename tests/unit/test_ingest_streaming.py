"""Ingestion through Parquet parts on disk gives what one in-memory pass over all rows gives.

The reference here is the former in-memory algorithm: every file read whole, seq shifted by the
lines of the files before, copies dropped (``dedupe.drop_duplicates``) and the flat columns
decoded over the whole deduped table (``flatten.add_flat_columns``). Tiny parts and decode
slices make every boundary (a part, a slice, a file) fall inside the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from audience_pipeline.ingest import (
    assemble,
    flatten,
    ingest,
    ingest_to_parquet,
    parts,
    read_normalized,
    write_normalized,
)
from audience_pipeline.ingest.dedupe import drop_duplicates
from audience_pipeline.ingest.files import discover
from audience_pipeline.ingest.reader import read_file
from audience_pipeline.spec.models import SpaceConfig

SPACE = SpaceConfig()
TS = "2026-01-01T00:00:00Z"


def _write(path: Path, messages: list[Any]) -> Path:
    path.write_text(
        "".join((m if isinstance(m, str) else orjson.dumps(m).decode()) + "\n" for m in messages)
    )
    return path


def _message(index: int) -> dict[str, Any] | str:
    """Varied messages: copies of a messageId across files, keys that are null at first."""
    if index % 11 == 5:
        return "not json"
    kind = ("track", "identify", "page", "group")[index % 4]
    message: dict[str, Any] = {
        "type": kind,
        "userId": f"u{index % 5}",
        "timestamp": f"2026-01-{1 + index % 9:02d}T00:00:00Z",
        "messageId": f"m{index % 13}",
        "receivedAt": f"2026-02-{1 + (index * 7) % 5:02d}T00:00:00Z",
        # a key that is null in early rows and a string later: its column position depends
        # on the slice it first shows up as a string in
        "properties": {"late": None if index < 12 else "x", f"k{index % 6}": index},
        "context": {"ip": f"10.0.0.{index}", "nested": {"deep": index % 3}},
    }
    if kind == "track":
        message["event"] = "Bought"
    if kind == "group":
        message.update(groupId=f"g{index % 2}", traits={"size": index})
    if kind == "identify":
        message["traits"] = {"plan": f"p{index}"}
    return message


def _files(tmp_path: Path) -> Path:
    folder = tmp_path / "events"
    folder.mkdir()
    messages = [_message(index) for index in range(60)]
    _write(folder / "a.jsonl", messages[:25])
    _write(folder / "b.jsonl", [])  # an empty file in between
    _write(folder / "c.jsonl", ["", *messages[25:], ""])
    (folder / "d.jsonl.gz").write_bytes(b"not gzip")  # unreadable: one quarantine row
    return folder


def _reference(folder: Path, limit: int = flatten.MAX_FLAT_COLUMNS) -> dict[str, pl.DataFrame]:
    results = [read_file(path, SPACE) for path in discover(folder)]
    offsets = [0]
    for result in results:
        offsets.append(offsets[-1] + result.lines)
    events = pl.concat(
        [r.events.with_columns(pl.col("seq") + o) for r, o in zip(results, offsets, strict=False)]
    )
    traits = pl.concat(
        [
            r.trait_updates.with_columns(pl.col("seq") + o)
            for r, o in zip(results, offsets, strict=False)
        ]
    )
    events, traits, _ = drop_duplicates(events, traits)
    return {
        "events": flatten.add_flat_columns(events, limit=limit),
        "trait_updates": traits,
        "quarantine": pl.concat([r.quarantine for r in results]),
    }


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parts, "PART_LINES", 4)
    monkeypatch.setattr(assemble, "DECODE_ROWS", 7)
    monkeypatch.setattr(flatten, "DECODE_ROWS", 7)


@pytest.mark.usefixtures("tiny")
def test_parts_and_slices_give_the_in_memory_result(tmp_path: Path) -> None:
    folder = _files(tmp_path)
    expected = _reference(folder)
    got = ingest(folder, SPACE, workers=1)
    assert got.events.columns == expected["events"].columns
    assert got.events.equals(expected["events"])
    assert got.trait_updates.equals(expected["trait_updates"])
    assert got.quarantine.equals(expected["quarantine"])
    assert got.stats["duplicates"] > 0
    assert got.stats["messages"] == got.events.height
    assert got.stats["quarantined"] == got.quarantine.height
    assert got.stats["files"] == 4


@pytest.mark.usefixtures("tiny")
def test_too_many_keys_give_no_flat_columns_of_that_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assemble, "MAX_FLAT_COLUMNS", 4)
    folder = _files(tmp_path)
    got = ingest(folder, SPACE, workers=1).events
    expected = _reference(folder, limit=4)["events"]
    assert got.equals(expected)
    assert not [c for c in got.columns if c.startswith("p.")]  # 7 property keys
    assert [c for c in got.columns if c.startswith("c.")] == ["c.ip", "c.nested", "c.nested.deep"]


def test_ingest_to_parquet_writes_what_write_normalized_writes(tmp_path: Path) -> None:
    folder = _files(tmp_path)
    in_memory = ingest(folder, SPACE)
    write_normalized(in_memory, tmp_path / "expected")
    stats = ingest_to_parquet(folder, SPACE, tmp_path / "got")
    assert stats == in_memory.stats
    assert {p.name for p in (tmp_path / "got").iterdir()} == {
        "events.parquet",
        "trait_updates.parquet",
        "quarantine.parquet",
    }  # no scratch parts left behind
    expected, got = read_normalized(tmp_path / "expected"), read_normalized(tmp_path / "got")
    assert got.events.equals(expected.events)
    assert got.trait_updates.equals(expected.trait_updates)
    assert got.quarantine.equals(expected.quarantine)
    assert got.stats == expected.stats


def test_worker_processes_write_the_same_parts(tmp_path: Path) -> None:
    folder = _files(tmp_path)
    serial = ingest(folder, SPACE, workers=1)
    parallel = ingest(folder, SPACE, workers=2)
    assert parallel.events.equals(serial.events)
    assert parallel.trait_updates.equals(serial.trait_updates)
    assert parallel.quarantine.equals(serial.quarantine)


def test_gzip_damaged_half_way_keeps_its_parts_and_quarantines_the_rest(tmp_path: Path) -> None:
    import gzip

    lines = b"".join(
        orjson.dumps({"type": "track", "event": "E", "userId": "u", "timestamp": TS}) + b"\n"
        for _ in range(50)
    )
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(lines)[:-20])
    directory = tmp_path / "parts"
    result = parts.write_parts(tmp_path / "cut.jsonl.gz", SPACE, directory, chunk_lines=3)
    events = pl.concat([pl.read_parquet(p) for p in result.of("events")])
    quarantine = pl.concat([pl.read_parquet(p) for p in result.of("quarantine")])
    assert events.height + quarantine.height == result.lines
    assert quarantine["line"].to_list() == [events.height + 1]
    assert events["line"].to_list() == list(range(1, events.height + 1))


def test_keys_polars_would_read_as_patterns_are_plain_keys(tmp_path: Path) -> None:
    # SPEC 1: properties are any JSON, so a key may be "*" or look like a regex ("^a$"); Polars
    # reads such names as a wildcard and a pattern in select(), which must not reach ingestion.
    messages = [
        {"type": "track", "event": "A", "userId": "u1", "timestamp": TS, "messageId": "1",
         "properties": {"*": "star", "^a$": "caret", "a": "plain"}},
        {"type": "track", "event": "A", "userId": "u2", "timestamp": TS, "messageId": "2",
         "properties": {"a": "other"}, "context": {"*": 1}},
    ]  # fmt: skip
    result = ingest([_write(tmp_path / "e.jsonl", messages)], SPACE)
    events = result.events.sort("seq")
    assert result.quarantine.height == 0
    assert events.get_column("p.*").to_list() == ["sstar", None]
    assert events.get_column("p.^a$").to_list() == ["scaret", None]
    assert events.get_column("p.a").to_list() == ["splain", "sother"]


@pytest.mark.usefixtures("tiny")
def test_slices_decoded_two_at_a_time_give_the_same_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _files(tmp_path)
    one = ingest(folder, SPACE, workers=1)
    monkeypatch.setattr(assemble, "DECODE_THREADS", 2)
    two = ingest(folder, SPACE, workers=1)
    assert two.events.columns == one.events.columns
    assert two.events.equals(one.events)


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_reports_every_file_then_assembly_and_end(tmp_path: Path, workers: int) -> None:
    from audience_pipeline.ingest.progress import Progress

    folder = _files(tmp_path)
    reports: list[Progress] = []
    ingest(folder, SPACE, workers=workers, progress=reports.append)
    total = sum(path.stat().st_size for path in discover(folder))
    stages = [report.stage for report in reports]
    assert stages == ["read"] * 5 + ["assemble", "done"]  # the start, then each of 4 files
    assert [report.files_done for report in reports[:5]] == [0, 1, 2, 3, 4]
    assert all(report.bytes_total == total and report.files_total == 4 for report in reports)
    assert reports[-1].bytes_done == total
    assert "4/4 files" in reports[-1].describe()


@pytest.mark.usefixtures("tiny")
def test_parts_over_the_key_cap_are_flattened_by_the_assembly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reader that finds more keys in one part than the cap leaves its parts unflattened;
    # the assembly then decodes the deduped table itself, with the same result.
    monkeypatch.setattr(flatten, "MAX_FLAT_COLUMNS", 2)
    folder = _files(tmp_path)
    got = ingest(folder, SPACE, workers=1).events
    expected = _reference(folder)["events"]
    assert got.columns == expected.columns
    assert got.equals(expected)


def test_a_key_held_only_by_dropped_copies_has_no_column(tmp_path: Path) -> None:
    first = {"type": "track", "event": "A", "userId": "u", "timestamp": TS, "messageId": "m"}
    late = {**first, "receivedAt": "2026-02-01T00:00:00Z", "properties": {"rare": 1, "a": 2}}
    early = {**first, "receivedAt": "2026-01-01T00:00:00Z", "properties": {"a": 3}}
    other = {**first, "messageId": "n", "context": {"gone": None}}
    folder = tmp_path / "events"
    folder.mkdir()
    _write(folder / "a.jsonl", [late, other])
    _write(folder / "b.jsonl", [early])
    got = ingest(folder, SPACE, workers=1)
    expected = _reference(folder)["events"]
    assert got.stats["duplicates"] == 1
    assert got.events.columns == expected.columns
    assert got.events.equals(expected)
    assert [c for c in got.events.columns if c.startswith(("p.", "c."))] == ["p.a"]


def test_flat_columns_are_sorted_by_key(tmp_path: Path) -> None:
    messages = [
        {"type": "track", "event": "A", "userId": "u", "timestamp": TS,
         "properties": {"b": 1, "a": {"z": 1, "y": 2}}, "context": {"k": "v", "c": True}},
        {"type": "track", "event": "A", "userId": "u", "timestamp": TS, "properties": {"aa": 1}},
    ]  # fmt: skip
    events = ingest([_write(tmp_path / "e.jsonl", messages)], SPACE).events
    flat = [c for c in events.columns if c.startswith(("p.", "c."))]
    assert flat == ["p.a", "p.a.y", "p.a.z", "p.aa", "p.b", "c.c", "c.k"]
