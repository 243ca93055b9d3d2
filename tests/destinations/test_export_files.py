"""CSV export in Segment's three formats, and the files destination, parsed back."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import polars as pl
import pytest

from audience_pipeline.destinations import export, sync
from tests.destinations.support import profile, write_definitions, write_warehouse

MEMBERS = [3, 5, 6, 7]  # 3 and 6 hold two emails; 5 has no user id


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    defs = write_definitions(tmp_path / "defs", [])
    write_warehouse(tmp_path / "wh", {"buyers": MEMBERS}, {"big_accounts": {"acme": [1]}})
    return defs, tmp_path / "wh"


def test_unformatted(setup: tuple[Path, Path], tmp_path: Path) -> None:
    defs, wh = setup
    summary = export("buyers", "unformatted", None, False, tmp_path / "u.csv", wh, defs)
    rows = read_csv(tmp_path / "u.csv")
    assert summary.rows == 4 and [r["key"] for r in rows] == [profile(n) for n in MEMBERS]
    assert list(rows[0]) == ["key", "external_ids"]
    assert json.loads(rows[0]["external_ids"]) == {
        "user_id": ["u3"], "email": ["user3.0@example.com", "user3.1@example.com"],
        "anonymous_id": ["a3"],
    }  # fmt: skip
    assert "user_id" not in json.loads(rows[1]["external_ids"])


def test_formatted_has_indexed_columns(setup: tuple[Path, Path], tmp_path: Path) -> None:
    defs, wh = setup
    export("buyers", "formatted", None, False, tmp_path / "f.csv", wh, defs)
    rows = read_csv(tmp_path / "f.csv")
    assert list(rows[0]) == ["key", "external_ids", "user_id", "email", "email_1", "anonymous_id"]
    by_key = {r["key"]: r for r in rows}
    assert by_key[profile(6)]["email_1"] == "user6.1@example.com"
    assert by_key[profile(7)]["email_1"] == ""
    assert by_key[profile(5)]["user_id"] == "" and by_key[profile(5)]["anonymous_id"] == "a5"


def test_single_column_hashed_and_raw(setup: tuple[Path, Path], tmp_path: Path) -> None:
    defs, wh = setup
    summary = export("buyers", "single", "email", False, tmp_path / "s.csv", wh, defs)
    rows = read_csv(tmp_path / "s.csv")
    emails = sorted(f"user{n}.{e}@example.com" for n in MEMBERS for e in range(1 + (n % 3 == 0)))
    assert summary.rows == 6 and list(rows[0]) == ["email"]
    assert sorted(r["email"] for r in rows) == sorted(
        hashlib.sha256(e.encode()).hexdigest() for e in emails
    )
    export("buyers", "single", "email", True, tmp_path / "raw.csv", wh, defs)
    assert sorted(r["email"] for r in read_csv(tmp_path / "raw.csv")) == emails


def test_account_audience_and_bad_arguments(setup: tuple[Path, Path], tmp_path: Path) -> None:
    defs, wh = setup
    export("big_accounts", "formatted", None, False, tmp_path / "a.csv", wh, defs)
    assert read_csv(tmp_path / "a.csv") == [
        {"key": "acme", "external_ids": '{"group_id":["acme"]}', "group_id": "acme"}
    ]
    with pytest.raises(ValueError, match="unknown export format"):
        export("buyers", "fancy", None, False, tmp_path / "x.csv", wh, defs)
    with pytest.raises(ValueError, match="unknown audience"):
        export("nope", "single", None, False, tmp_path / "x.csv", wh, defs)
    with pytest.raises(ValueError, match="not an identifier type"):
        export("buyers", "single", "phone", False, tmp_path / "x.csv", wh, defs)


def test_files_destination_writes_snapshots_and_change_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    defs = write_definitions(tmp_path / "defs", [
        {"name": "drop", "type": "files", "audiences": ["buyers"], "batch_size": 3,
         "settings": {"path": str(out), "formats": ["csv", "parquet"]}},
    ])  # fmt: skip
    write_warehouse(tmp_path / "wh", {"buyers": MEMBERS})
    assert sync("drop", defs, tmp_path / "wh").status == "ok"
    write_warehouse(tmp_path / "wh", {"buyers": [5, 8]})
    assert sync("drop", defs, tmp_path / "wh").status == "ok"
    snapshot = pl.read_parquet(out / "buyers.parquet")
    assert snapshot.columns == ["audience_key", "level", "entity_id", "external_ids"]
    assert snapshot["entity_id"].to_list() == [profile(5), profile(8)]
    assert [r["entity_id"] for r in read_csv(out / "buyers.csv")] == [profile(5), profile(8)]
    changes = pl.concat(
        [pl.read_parquet(p) for p in sorted((out / "changes" / "buyers").glob("*.parquet"))]
    )
    counts = dict(changes.group_by("change").len().iter_rows())
    assert counts == {"entered": 5, "exited": 3}
    assert len(list((out / "changes" / "buyers").glob("*.csv"))) == 4  # batches of 3: 2 + 2
