"""Where ingestion's CPU goes: each step of the readers (per-line, vectorized, native), per 100k lines.

    python benchmarks/ingest_steps.py benchmarks/data/events-10000000/events-0000.jsonl \
        --lines 100000 [--repeat 3] [--write-parts [--readers per_line native]] [--skip-steps]

Reads the first --lines lines of one JSON-lines file (those that are JSON objects) and times,
in this process, the steps the readers are made of and the DuckDB / Polars primitives a
vectorized reader could be built from. Prints one `step_cpu_s_per_100k: value` a line: CPU seconds (user + system of the whole
process, DuckDB's and Polars' threads included; the median of --repeat runs) scaled to 100k
lines, so figures taken on a loaded machine compare with each other. `--write-parts` also times
`write_parts` of the whole file with each reader of --readers (one run each; parts go to a
temporary folder); `--skip-steps` leaves the steps out.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import resource
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import polars as pl

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from audience_pipeline.ingest.fast import FastReader, block_frame  # noqa: E402
from audience_pipeline.ingest.native import NativeReader  # noqa: E402
from audience_pipeline.ingest.normalize import Columns, Normalizer  # noqa: E402
from audience_pipeline.ingest.parts import write_parts  # noqa: E402
from audience_pipeline.ingest.reader import READER_ENV, READERS  # noqa: E402
from audience_pipeline.spec.compile import load_space_ir  # noqa: E402
from audience_pipeline.spec.models import SpaceConfig  # noqa: E402

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
# Top-level and nested paths a reader of the benchmark's messages needs (one json_extract).
PATHS = [
    "/type", "/userId", "/anonymousId", "/event", "/messageId", "/timestamp", "/receivedAt",
    "/previousId", "/name", "/groupId", "/sentAt", "/properties", "/context", "/traits",
    "/context/page/url", "/context/page/path", "/traits/email", "/context/traits/email",
    "/integrations", "/channel",
]  # fmt: skip
_STRING = r'"(?:[^"\\]|\\.)*"'
# A key skeleton by regex: keys kept, every value erased (what shapes could be keyed on).
SKELETON = rf"({_STRING}\s*:)|{_STRING}|-?[0-9][0-9.eE+-]*|true|false|null"
TYPED_COLUMNS = {
    name: "VARCHAR"
    for name in ("type", "userId", "anonymousId", "event", "messageId", "timestamp", "receivedAt")
} | {name: "JSON" for name in ("properties", "context", "traits")}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(run: Callable[[], object], repeat: int) -> float:
    """Median CPU seconds of ``repeat`` runs, cyclic GC off (as the readers run)."""
    times = []
    gc.disable()
    try:
        for _ in range(repeat):
            start = cpu_seconds()
            run()
            times.append(cpu_seconds() - start)
    finally:
        gc.enable()
    return statistics.median(times)


class _TimedReader(FastReader):
    """The vectorized reader, recording the CPU seconds of its Polars half (``_build``)."""

    def __init__(self, space: SpaceConfig, source: str, build: list[float]) -> None:
        super().__init__(space, source)
        self._build_seconds = build

    def _build(self, *args: Any, **kwargs: Any) -> pl.DataFrame:
        start = cpu_seconds()
        try:
            return super()._build(*args, **kwargs)
        finally:
            self._build_seconds.append(cpu_seconds() - start)


def _is_object(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None) -> None:
    con.sql(sql, params=params).fetchall()


def per_line_normalizer(lines: list[bytes], space: SpaceConfig) -> None:
    """orjson.loads + Normalizer.add of every line (the per-line reader's inner loop)."""
    normalizer = Normalizer(space)
    normalizer.cache_texts = True
    cols = Columns()
    for seq, text in enumerate(lines):
        normalizer.add(orjson.loads(text), seq, seq + 1, cols)


def sql_steps(con: duckdb.DuckDBPyConnection, sample: Path) -> dict[str, str]:
    """DuckDB primitives over the registered ``lines`` (column text), by step name."""
    typed = ", ".join(f"{name}: '{kind}'" for name, kind in TYPED_COLUMNS.items())
    return {
        "duckdb_json_structure": "SELECT count(try(json_structure(text))) FROM lines",
        "duckdb_json_keys_top_level": "SELECT count(try(json_keys(text))) FROM lines",
        "duckdb_json_valid": "SELECT count(*) FILTER (json_valid(text)) FROM lines",
        "duckdb_json_extract_20_paths": "SELECT count(json_extract(text, $paths)) FROM lines",
        "duckdb_json_structure_distinct_context": (
            "WITH c AS (SELECT DISTINCT json_extract(text, '/context') AS c FROM lines) "
            "SELECT count(json_structure(c)) FROM c"
        ),
        # The sample path is this script's own temporary file, not user input.
        "duckdb_typed_read_json": (
            f"SELECT count(*) FROM read_json('{sample}', format = 'newline_delimited', "
            f"columns = {{{typed}}})"
        ),
    }


def step_figures(lines: list[bytes], space: SpaceConfig, repeat: int) -> dict[str, float]:
    """CPU seconds of each step over ``lines`` (medians of ``repeat`` runs), by step name."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        sample = Path(scratch) / "sample.jsonl"
        sample.write_bytes(b"\n".join(lines) + b"\n")
        figures["orjson_loads"] = timed(lambda: all(map(orjson.loads, lines)), repeat)
        figures["per_line_normalizer"] = timed(lambda: per_line_normalizer(lines, space), repeat)
        frame = block_frame(lines, first_line=1, first_seq=0)
        figures["fast_block_frame"] = timed(
            lambda: block_frame(lines, first_line=1, first_seq=0), repeat
        )

        build: list[float] = []

        def fast_read() -> None:
            reader = _TimedReader(space, "sample", build)
            reader.read(frame.filter(pl.col("text").is_not_null()))
            reader.close()

        figures["fast_reader_read"] = timed(fast_read, repeat)
        figures["fast_reader_build_of_which"] = statistics.median(build)

        def native_read() -> None:
            normalizer = Normalizer(space)
            normalizer.cache_texts = True
            reader = NativeReader(space, "sample", normalizer)
            reader.read(frame.filter(pl.col("text").is_not_null()))
            reader.close()

        figures["native_reader_read"] = timed(native_read, repeat)
        con = duckdb.connect()
        con.register("lines", frame.select("text"))
        for name, sql in sql_steps(con, sample).items():
            params = {"paths": PATHS} if "$paths" in sql else None
            figures[name] = timed(functools.partial(_fetch, con, sql, params), 1)
        text = pl.col("text")
        figures["polars_regex_key_skeleton"] = timed(
            lambda: frame.select(text.str.replace_all(SKELETON, "${1}")), 1
        )
        con.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a JSON-lines file")
    parser.add_argument("--lines", type=int, default=100_000, help="lines of the file's head")
    parser.add_argument("--repeat", type=int, default=3, help="runs per step (median)")
    parser.add_argument("--write-parts", action="store_true", help="time write_parts too")
    parser.add_argument("--readers", nargs="+", choices=READERS, default=list(READERS),
                        help="the readers --write-parts times")  # fmt: skip
    parser.add_argument("--skip-steps", action="store_true", help="only --write-parts")
    parser.add_argument("--definitions", type=Path, default=ROOT / "definitions")
    args = parser.parse_args(argv)
    definitions, _ = load_space_ir(args.definitions, AS_OF)
    space = definitions.space
    try:
        with args.file.open("rb") as handle:
            head = [line.rstrip(b"\n") for _, line in zip(range(args.lines), handle, strict=False)]
    except OSError as exc:
        parser.error(f"file: cannot read {args.file}: {exc.strerror}")
    # The steps time the common case: lines that are JSON objects (all of the benchmark's).
    lines = [line for line in head if _is_object(line)]
    if not lines:
        parser.error(f"file: no line of {args.file} is a JSON object")
    if not args.skip_steps:
        figures = step_figures(lines, space, args.repeat)
        scale = 100_000 / len(lines)
        for name, seconds in figures.items():
            print(f"{name}_cpu_s_per_100k: {seconds * scale:.3f}")
    if args.write_parts:
        write_parts_figures(args.file, space, args.readers)
    return 0


# Figure names per reader (the vectorized reader's figures kept their first name, "fast").
LABELS = {"per_line": "per_line", "native": "native", "vectorized": "fast"}


def write_parts_figures(path: Path, space: SpaceConfig, readers: list[str]) -> None:
    """CPU seconds of write_parts over the whole file with each reader, one run each."""
    before = os.environ.get(READER_ENV)
    for reader in readers:
        os.environ[READER_ENV] = reader
        label = LABELS[reader]
        directory = Path(tempfile.mkdtemp(prefix="ingest-steps-"))
        try:
            start = cpu_seconds()
            parts = write_parts(path, space, directory / "parts")
            seconds = cpu_seconds() - start
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        print(f"write_parts_{label}_events: {parts.events}")
        print(f"write_parts_{label}_cpu_s: {seconds:.2f}")
        print(f"write_parts_{label}_cpu_s_per_100k: {seconds * 100_000 / parts.lines:.3f}")
    if before is None:
        os.environ.pop(READER_ENV, None)
    else:
        os.environ[READER_ENV] = before


if __name__ == "__main__":
    raise SystemExit(main())
