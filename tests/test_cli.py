"""The command line end to end: compute writes every table, reruns diff, preview and sql read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from audience_pipeline.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "smoke"
TABLES = {
    "identities", "user_traits", "account_traits", "memberships", "account_user_memberships",
    "membership_changes", "membership_history", "quarantine",
}  # fmt: skip


def compute(out: Path, events: Path, as_of: str) -> int:
    return main([
        "compute", "--definitions", str(FIXTURE / "definitions"), "--events", str(events),
        "--as-of", as_of, "--out", str(out),
    ])  # fmt: skip


def members(out: Path, key: str) -> set[str]:
    frame = pl.read_parquet(out / "memberships.parquet").filter(pl.col("audience_key") == key)
    return set(frame["entity_id"].to_list())


def profile_of(out: Path, id_type: str, value: str) -> str:
    ids = pl.read_parquet(out / "identities.parquet")
    row = ids.filter((pl.col("id_type") == id_type) & (pl.col("id_value") == value))
    return str(row["profile_id"][0])


def test_compute_writes_every_table_with_expected_members(tmp_path: Path) -> None:
    out = tmp_path / "warehouse"
    assert compute(out, FIXTURE / "events.jsonl", "2026-01-10T00:00:00Z") == 0
    assert {p.stem for p in out.glob("*.parquet")} == TABLES
    u1, a2 = profile_of(out, "user_id", "u1"), profile_of(out, "anonymous_id", "a2")
    assert profile_of(out, "email", "u1@x.com") == u1 == profile_of(out, "anonymous_id", "a1")
    assert members(out, "viewed_expensive_no_order") == {a2}
    assert members(out, "spenders") == {u1}
    assert members(out, "view_then_order") == {u1}
    assert members(out, "ios_buyers") == {u1}
    assert members(out, "biz_accounts") == {"g1"}
    traits = pl.read_parquet(out / "user_traits.parquet").filter(pl.col("profile_id") == u1)
    assert traits["total_revenue"][0] == pytest.approx(60.5)  # "50.5" (a numeric string) + 10
    assert traits["email"][0] == "U1@X.com"  # custom traits keep the raw value
    assert traits["spenders"][0] is True
    quarantine = pl.read_parquet(out / "quarantine.parquet")
    assert quarantine.select("line", "reason").rows() == [(7, "invalid json")]
    aum = pl.read_parquet(out / "account_user_memberships.parquet")
    assert aum.rows() == [("biz_accounts", "g1", u1)]


def test_a_rerun_diffs_against_the_previous_run(tmp_path: Path) -> None:
    out = tmp_path / "warehouse"
    early = tmp_path / "early.jsonl"
    lines = (FIXTURE / "events.jsonl").read_text().splitlines()
    early.write_text("\n".join(line for line in lines if "2026-01-05" not in line))
    assert compute(out, early, "2026-01-10T00:00:00Z") == 0
    assert members(out, "spenders") == {profile_of(out, "user_id", "u1")}  # 50.5 > 50
    assert compute(out, FIXTURE / "events.jsonl", "2026-01-20T00:00:00Z") == 0
    changes = pl.read_parquet(out / "membership_changes.parquet")
    entered = changes.filter(pl.col("change") == "entered")["audience_key"].to_list()
    assert "biz_accounts" in entered  # the second order makes account_orders 2
    history = pl.read_parquet(out / "membership_history.parquet")
    open_rows = history.filter(pl.col("valid_to").is_null())
    current = pl.read_parquet(out / "memberships.parquet")
    assert sorted(open_rows.select("audience_key", "entity_id").rows()) == sorted(
        current.select("audience_key", "entity_id").rows()
    )


def test_invalid_definitions_exit_one_and_bad_events_do_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    defs = tmp_path / "definitions"
    shutil.copytree(FIXTURE / "definitions", defs)
    (defs / "audiences" / "broken.yaml").write_text(
        "key: broken\nname: b\ncondition: {traits: 'plan = = 1'}\n"
    )
    code = main(["compute", "--definitions", str(defs), "--events", str(FIXTURE / "events.jsonl"),
                 "--as-of", "2026-01-10T00:00:00Z", "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 1
    assert "broken.yaml: broken: condition.traits" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n[1]\n" + json.dumps({"type": "track", "event": "X"}) + "\n")
    assert compute(tmp_path / "o2", bad, "2026-01-10T00:00:00Z") == 0


def test_preview_and_sql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["preview", "spenders", "--definitions", str(FIXTURE / "definitions"),
                 "--events", str(FIXTURE / "events.jsonl"), "--as-of", "2026-01-10T00:00:00Z"])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "spenders (user): 1 of 2" in text
    assert "user_id:u1" in text
    out = tmp_path / "warehouse"
    compute(out, FIXTURE / "events.jsonl", "2026-01-10T00:00:00Z")
    capsys.readouterr()
    assert main(["sql", "SELECT audience_key, count(*) AS n FROM memberships GROUP BY 1 ORDER BY 1",
                 "--warehouse", str(out)]) == 0  # fmt: skip
    assert "biz_accounts" in capsys.readouterr().out


def test_compute_with_the_duckdb_engine_writes_the_same_tables(tmp_path: Path) -> None:
    polars_out, duckdb_out = tmp_path / "polars", tmp_path / "duckdb"
    assert compute(polars_out, FIXTURE / "events.jsonl", "2026-01-10T00:00:00Z") == 0
    code = main([
        "compute", "--definitions", str(FIXTURE / "definitions"), "--events",
        str(FIXTURE / "events.jsonl"), "--as-of", "2026-01-10T00:00:00Z", "--out",
        str(duckdb_out), "--engine", "duckdb",
    ])  # fmt: skip
    assert code == 0
    for table in ("memberships", "identities", "account_user_memberships"):
        a = pl.read_parquet(polars_out / f"{table}.parquet")
        b = pl.read_parquet(duckdb_out / f"{table}.parquet")
        assert sorted(a.rows()) == sorted(b.select(a.columns).rows()), table


def test_compile_prints_sql_for_each_dialect(capsys: pytest.CaptureFixture[str]) -> None:
    for dialect in ("duckdb", "postgres", "snowflake", "bigquery", "spark"):
        code = main(["compile", "spenders", "--dialect", dialect,
                     "--definitions", str(FIXTURE / "definitions")])  # fmt: skip
        assert code == 0
        assert "SELECT" in capsys.readouterr().out.upper()
    assert main(["compile", "no_such_audience", "--definitions", str(FIXTURE / "definitions")]) != 0
    assert "no_such_audience" in capsys.readouterr().err


def test_generate_takes_its_own_options_as_the_readme_writes_them(tmp_path: Path) -> None:
    # `audience-pipeline generate --events N --out DIR`: the options after the word belong to the
    # generator; the lines it writes are Segment-spec JSON that compute then reads.
    out = tmp_path / "events"
    assert main(["generate", "--events", "300", "--no-gzip", "--out", str(out)]) == 0
    files = sorted(out.glob("*.jsonl"))
    assert files
    lines = [line for f in files for line in f.read_text().splitlines() if line.strip()]
    assert len(lines) >= 300
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the generator writes a few bad lines on purpose
    assert {"track", "identify"} <= {m.get("type") for m in parsed if isinstance(m, dict)}


def test_normalized_inputs_are_written_once_and_staging_is_cleaned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Event files are ingested straight into the run's own `_normalized` folder (no second
    write); a failed run leaves no run folder behind."""
    import audience_pipeline.service as service
    from audience_pipeline.ingest import read_normalized

    def no_second_write(*args: object, **kwargs: object) -> None:
        raise AssertionError("the normalized tables were written a second time")

    monkeypatch.setattr(service, "write_normalized", no_second_write)
    out = tmp_path / "warehouse"
    assert compute(out, FIXTURE / "events.jsonl", "2026-01-10T00:00:00Z") == 0
    normalized = out / "_normalized"
    assert sorted(p.name for p in normalized.iterdir()) == [
        "events.parquet", "message_profiles.parquet", "quarantine.parquet", "trait_updates.parquet",
    ]  # fmt: skip
    assert read_normalized(normalized).quarantine.height == 1
    run = json.loads((out / "current" / "run.json").read_text())
    assert run["layout"] == "normalized" and run["messages"] > 0
    runs_before = sorted(p.name for p in (out / "runs").iterdir())

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("engine failed")

    monkeypatch.setattr(service, "compute_tables", broken)
    with pytest.raises(RuntimeError):
        service.run_compute(
            FIXTURE / "events.jsonl", FIXTURE / "definitions",
            service.parse_as_of("2026-01-11T00:00:00Z"), out,
        )  # fmt: skip
    assert not [p for p in normalized.iterdir() if p.name.startswith(".")]
    assert sorted(p.name for p in (out / "runs").iterdir()) == runs_before
