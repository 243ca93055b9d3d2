"""Every user mistake is one line on stderr naming the option, file or field; never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from audience_pipeline.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "smoke"
DEFINITIONS = str(FIXTURE / "definitions")
EVENTS = str(FIXTURE / "events.jsonl")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "warehouse"
    code = main(["-q", "compute", "--definitions", DEFINITIONS, "--events", EVENTS,
                 "--as-of", "2026-01-10T00:00:00Z", "--out", str(out)])  # fmt: skip
    assert code == 0
    return out


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_invalid_sql_names_the_query_not_a_class(
    warehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, "sql", "SELEC 1", "--warehouse", str(warehouse))
    line = one_line(err)
    assert code == 2
    assert line.startswith("error: sql: ") and "SELEC" in line
    code, err = run(capsys, "sql", "SELECT * FROM no_such_table", "--warehouse", str(warehouse))
    assert code == 2 and "no_such_table" in one_line(err)


def test_options_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "compute", "--as-of", "2026-13-45", "--definitions", DEFINITIONS,
                    "--events", EVENTS, "--out", str(tmp_path / "w"))  # fmt: skip
    line = one_line(err)
    assert code == 2 and "'--as-of'" in line and "2026-13-45" in line
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    code, err = run(capsys, "generate", "--events", "10", "--out", str(a_file))
    line = one_line(err)
    assert code == 2 and "'--out'" in line and str(a_file) in line
    code, err = run(capsys, "compute", "--engine", "spark-ish", "--definitions", DEFINITIONS)
    assert code == 2 and "'--engine'" in one_line(err)
    code, err = run(capsys, "export", "spenders", "--format", "single", "--out", str(tmp_path))
    assert code == 2 and "'--out'" in one_line(err)
    code, err = run(capsys, "no-such-command")
    assert code == 2 and "no-such-command" in one_line(err)


def test_missing_files_and_unknown_keys_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.jsonl"
    code, err = run(capsys, "-q", "compute", "--definitions", DEFINITIONS, "--events",
                    str(missing), "--out", str(tmp_path / "w"))  # fmt: skip
    assert code == 2 and str(missing) in one_line(err)
    code, err = run(capsys, "compile", "no_such_audience", "--definitions", DEFINITIONS)
    assert code == 2 and "no_such_audience" in one_line(err)


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "no_such_audience", "--definitions", DEFINITIONS, "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("error: ")


def test_compute_shows_its_stages_and_verbose_shows_the_engine_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["compute", "--definitions", DEFINITIONS, "--events", EVENTS,
            "--as-of", "2026-01-10T00:00:00Z", "--out", str(tmp_path / "w")]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    for stage in ("ingest", "compute", "write"):
        assert f"{stage} ..." in err and f"{stage} done in" in err
    assert "INFO" not in err
    assert main(["-v", *args]) == 0
    assert "INFO audience_pipeline.ingest" in capsys.readouterr().err
    assert main([*args, "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_preview_prints_whole_identifiers(capsys: pytest.CaptureFixture[str]) -> None:
    long_ids = "anonymous_id:a1, email:u1@x.com, user_id:u1"
    assert main(["-q", "preview", "spenders", "--definitions", DEFINITIONS, "--events", EVENTS,
                 "--as-of", "2026-01-10T00:00:00Z"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert long_ids in out and "…" not in out


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "audience_pipeline.cli", *args], cwd=ROOT, env=environment,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_serve_on_a_busy_port_is_one_line(warehouse: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = _cli("serve", "--warehouse", str(warehouse), "--definitions", DEFINITIONS,
                    "--port", str(port), env={"AUDIENCE_PIPELINE_API_TOKEN": "t" * 24})  # fmt: skip
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert f"--port {port}" in line and "in use" in line
    assert "leaked" not in done.stderr


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("plan = = 1", "invalid SQL at column 8: '=' needs a value on its right"),
        ("tags[1] = 'x'", "indexing with [...] is not allowed"),
        ("first_name || last_name = 'ab'", "|| (string concatenation) is not allowed"),
        ("plan::int > 1", "a cast is not allowed"),
        ("foo(plan) = 1", "function foo() is not allowed"),
    ],
)
def test_invalid_definition_sql_speaks_sql_not_sqlglot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], condition: str, expected: str
) -> None:
    import shutil

    defs = tmp_path / "definitions"
    shutil.copytree(FIXTURE / "definitions", defs)
    (defs / "audiences" / "broken.yaml").write_text(
        f"key: broken\nname: b\ncondition: {{traits: {condition!r}}}\n"
    )
    assert main(["validate", "--definitions", str(defs)]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "broken.yaml" in line)
    assert "broken.yaml: broken: condition.traits: " + expected in line
    assert "<class" not in out and "sqlglot" not in out
