"""A small demo space: generated landing files (one per day) and the repository's definitions."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audience_pipeline.demo.generate import generate
from audience_pipeline.orchestration.resources import PipelineSettings

ROOT = Path(__file__).resolve().parents[2]
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 4


def make_landing(landing: Path, *, events: int = 3000) -> None:
    raw = landing.parent / "_generated"
    generate(raw, events=events, as_of=AS_OF, days=DAYS, files=DAYS, gzip=False)
    for k, path in enumerate(sorted(raw.glob("events-*"))):
        day = (AS_OF - timedelta(days=DAYS - k)).date().isoformat()
        (landing / day).mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), landing / day / path.name)
    shutil.rmtree(raw)


@pytest.fixture
def space(tmp_path: Path) -> PipelineSettings:
    definitions = tmp_path / "definitions"
    shutil.copytree(ROOT / "definitions", definitions)
    landing = tmp_path / "landing"
    make_landing(landing)
    return PipelineSettings(
        definitions_dir=str(definitions),
        landing_dir=str(landing),
        warehouse_dir=str(tmp_path / "warehouse"),
    )
