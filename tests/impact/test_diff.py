"""`diff` against a full recompute: its "after" is the next run's memberships, and it writes
nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest

from audience_pipeline.cli import main
from audience_pipeline.impact import edit_impact
from audience_pipeline.service import parse_as_of, run_compute
from tests.impact.conftest import AS_OF


def files_of(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in folder.rglob("*") if p.is_file()}  # fmt: skip


def test_after_equals_the_next_runs_memberships(run: tuple[Path, Path, Path],
                                                tmp_path: Path) -> None:  # fmt: skip
    root, before, after = run
    wh = tmp_path / "wh"  # its own run: the module's warehouse stays as the other tests need it
    run_compute(root / "events", before, parse_as_of(AS_OF), wh)
    untouched = files_of(wh)
    report = edit_impact(after, wh, sample=10**9)
    assert files_of(wh) == untouched  # diff writes nothing
    by_key = {i.audience_key: i for i in report.audiences}
    assert by_key["page_viewers"].status == "new" and by_key["page_viewers"].size_now == 0
    assert by_key["mobile_app_users"].status == "deleted"
    assert by_key["mobile_app_users"].size_after == 0 < by_key["mobile_app_users"].size_now
    assert by_key["big_spenders"].exiting > 0  # the edits move people both ways
    assert sum(i.entering for i in report.audiences if i.status == "existing") > 0
    # The next run with the same inputs and as-of, and the edited space: a full recompute.
    # A microsecond later: a run at the same as-of would replace the first one (and be compared
    # with the run before it, docs/semantics.md), not follow it.
    run_compute(root / "events", after, parse_as_of(AS_OF) + timedelta(microseconds=1), wh)
    memberships = pl.read_parquet(wh / "memberships.parquet")
    changes = pl.read_parquet(wh / "membership_changes.parquet")
    for impact in report.audiences:
        key = impact.audience_key
        members = memberships.filter(pl.col("audience_key") == key)
        assert impact.size_after == members.height, key

        def changed(kind: str, key: str = key) -> set[str]:
            rows = changes.filter((pl.col("audience_key") == key) & (pl.col("change") == kind))
            return set(rows["entity_id"].to_list())

        assert {s["entity_id"] for s in impact.entering_sample} == changed("entered"), key
        assert {s["entity_id"] for s in impact.exiting_sample} == changed("exited"), key
        assert impact.size_now - impact.exiting + impact.entering == impact.size_after


def test_named_keys_bring_their_dependents(run: tuple[Path, Path, Path]) -> None:
    root, _, after = run
    report = edit_impact(after, root / "wh", ["total_revenue_90d"])
    keys = {i.audience_key for i in report.audiences}
    # Every audience whose YAML names the trait, and what names those audiences.
    naming = {p.stem for p in (after / "audiences").glob("*.yaml")
              if "total_revenue_90d" in p.read_text()}  # fmt: skip
    assert naming and naming <= keys
    referring = {p.stem for p in (after / "audiences").glob("*.yaml")
                 if any(f"audience: {k}" in p.read_text() for k in naming)}  # fmt: skip
    assert referring <= keys
    assert "known_users" not in keys


def test_cli_json_markdown_and_unknown_key(run: tuple[Path, Path, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    root, before, after = run
    base = ["--definitions", str(after), "--warehouse", str(root / "wh")]
    assert main(["diff", "big_spenders", *base, "--json"]) == 0
    rows = orjson.loads(capsys.readouterr().out)
    (first,) = [r for r in rows if r["audience_key"] == "big_spenders"]
    assert {"audience_key", "size_now", "size_after", "entering", "exiting"} <= set(first)
    assert main(["diff", "big_spenders", *base, "--format", "markdown"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("### Audience impact") and "| `big_spenders` | user |" in text
    assert main(["diff", "no_such_key", *base]) == 1
    assert "no_such_key" in capsys.readouterr().err
    # The unedited space against its own run: nothing moves.
    assert main(["diff", "--definitions", str(before), "--warehouse", str(root / "wh"),
                 "--json"]) == 0  # fmt: skip
    unchanged = orjson.loads(capsys.readouterr().out)
    assert unchanged and all(r["entering"] == r["exiting"] == 0 for r in unchanged)
    assert all(r["size_now"] == r["size_after"] for r in unchanged)
