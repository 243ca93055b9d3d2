"""Progress moves within a file: readers report the bytes they have read (compressed bytes for
gzip) a block at a time, in process and from reader processes; plain lines stay few."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import orjson
import pytest

from audience_pipeline.ingest import files, ingest
from audience_pipeline.ingest import progress as ingest_progress
from audience_pipeline.ingest.progress import Progress
from audience_pipeline.spec.models import SpaceConfig

SPACE = SpaceConfig()


def _lines(count: int, seed: int) -> bytes:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        message = {
            "type": "track",
            "event": rng.choice(["Signed In", "Order Completed"]),
            "userId": f"u{rng.getrandbits(40):x}",
            "messageId": f"m{seed}-{n}-{rng.getrandbits(64):x}",
            "timestamp": "2026-01-01T00:00:00Z",
            "properties": {"revenue": rng.random(), "sku": f"{rng.getrandbits(48):x}"},
        }
        out.append(orjson.dumps(message) + b"\n")
    return b"".join(out)


def _check(reports: list[Progress], total: int) -> list[Progress]:
    """Bytes never go back; the end is every byte; returns the reports made within files."""
    done = [r.bytes_done for r in reports]
    assert done == sorted(done)
    assert all(r.bytes_total == total for r in reports)
    reading = [r for r in reports if r.stage == "read"]
    assert reading[-1].bytes_done == total
    assert reports[-1].stage == "done" and reports[-1].bytes_done == total
    return [r for r in reading if r.files_done < r.files_total and 0 < r.bytes_done < total]


def test_one_large_file_reports_bytes_within_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(_lines(3_000, seed=1))
    monkeypatch.setattr(files, "_BLOCK_BYTES", 8_192)  # about 60 blocks
    reports: list[Progress] = []
    ingest(path, SPACE, workers=1, progress=reports.append)
    within = _check(reports, path.stat().st_size)
    assert within, "no report within the file"
    assert all(r.files_done == 0 for r in within)
    # Nothing draws a bar: a line per tenth of the bytes (or per 5 s), not one per block.
    assert len([r for r in reports if r.stage == "read"]) <= 12


def test_a_gzip_file_reports_its_compressed_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress(_lines(3_000, seed=2)))
    monkeypatch.setattr(files, "_GZIP_READ_BYTES", 4_096)
    monkeypatch.setattr(files, "_BLOCK_BYTES", 16_384)
    reports: list[Progress] = []
    ingest(path, SPACE, workers=1, progress=reports.append)
    within = _check(reports, path.stat().st_size)
    assert within and all(r.bytes_done % 4_096 == 0 for r in within)


def test_a_bar_hears_more_often(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(_lines(3_000, seed=3))
    monkeypatch.setattr(files, "_BLOCK_BYTES", 8_192)
    monkeypatch.setattr(ingest_progress, "drawing", lambda: True)
    monkeypatch.setattr(ingest_progress, "BAR_SECONDS", 0.0)
    reports: list[Progress] = []
    ingest(path, SPACE, workers=1, progress=reports.append)
    within = _check(reports, path.stat().st_size)
    assert len(within) > 12


def test_reader_processes_report_bytes_within_their_files(tmp_path: Path) -> None:
    # Reader processes take 16 MB blocks (module defaults: spawned, they see no monkeypatch)
    # and send their position after each, now and then.
    folder = tmp_path / "events"
    folder.mkdir()
    for index in range(2):
        (folder / f"{index}.jsonl").write_bytes(_lines(90_000, seed=10 + index))
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert all(p.stat().st_size > 17 << 20 for p in folder.iterdir())
    reports: list[Progress] = []
    ingest(folder, SPACE, workers=2, progress=reports.append)
    within = _check(reports, total)
    assert within, "no report from the reader processes"
    assert [r.files_done for r in reports if r.stage == "read"][-1] == 2


def test_the_cli_in_a_pipe_prints_a_few_plain_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from audience_pipeline.cli import main

    events = tmp_path / "events.jsonl"
    events.write_bytes(_lines(3_000, seed=4))
    monkeypatch.setattr(files, "_BLOCK_BYTES", 8_192)
    definitions = tmp_path / "definitions"
    (definitions / "audiences").mkdir(parents=True)
    (definitions / "space.yaml").write_text("name: p\n")
    (definitions / "audiences" / "buyers.yaml").write_text(
        "key: buyers\nname: Buyers\ncondition: {event: Order Completed}\n"
    )
    code = main(["compute", "--definitions", str(definitions), "--events", str(events),
                 "--as-of", "2026-02-01T00:00:00Z", "--out", str(tmp_path / "out")])  # fmt: skip
    err = capfd.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("ingest read:")]
    size_mb = f"/{events.stat().st_size / 1e6:,.1f} MB"
    assert any(line.startswith("ingest read: 0/1 files") and size_mb in line
               and not line.startswith(f"ingest read: 0/1 files, 0.0{size_mb}")
               for line in lines), err  # fmt: skip
    assert 2 < len(lines) <= 12, err
    assert all("\r" not in line and "\x1b" not in line for line in err.splitlines())
