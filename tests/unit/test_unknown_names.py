"""Unknown trait names: an error with a suggestion when custom traits are declared, a warning
otherwise; YAML syntax errors carry their line and column."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from audience_pipeline.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def definitions(tmp_path: Path) -> Path:
    target = tmp_path / "definitions"
    shutil.copytree(ROOT / "definitions", target)
    return target


def _typo(definitions: Path) -> None:
    path = definitions / "audiences" / "big_spenders.yaml"
    path.write_text(path.read_text().replace("total_revenue_90d > 500", "total_revenue_9Od > 500"))


def test_the_demo_space_declares_its_custom_traits_and_validates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate", "--definitions", str(ROOT / "definitions")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_mistyped_trait_fails_with_a_suggestion(
    definitions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _typo(definitions)
    assert main(["validate", "--definitions", str(definitions)]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "big_spenders.yaml" in line)
    assert "condition.traits" in line and "'total_revenue_9Od'" in line
    assert "did you mean 'total_revenue_90d'?" in line


def test_without_declared_custom_traits_unknown_names_are_warnings(
    definitions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _typo(definitions)
    space = definitions / "space.yaml"
    space.write_text(space.read_text().split("# The custom traits")[0])
    assert main(["validate", "--definitions", str(definitions)]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    typo = [w for w in warnings if "total_revenue_9Od" in w]
    assert len(typo) == 1 and "did you mean 'total_revenue_90d'?" in typo[0]
    assert any("'plan'" in w for w in warnings)  # a custom trait nothing declares
    assert len(warnings) == len(set(warnings))


def test_yaml_errors_carry_line_and_column(
    definitions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = definitions / "audiences" / "big_spenders.yaml"
    path.write_text(path.read_text().replace("name: Big spenders", "name: Big: spenders"))
    assert main(["validate", "--definitions", str(definitions)]) == 1
    out = capsys.readouterr().out
    assert "big_spenders.yaml: invalid YAML: line 2, column 10: mapping values" in out
