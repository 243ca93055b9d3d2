"""Finding input files and reading their records (JSON lines, gzip, Parquet)."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from audience_pipeline.values import loads

INPUT_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".ndjson", ".parquet")
# Fields that Parquet writers often store as JSON text instead of structs.
NESTED_FIELDS = ("properties", "context", "traits")

_BLOCK_BYTES = 1 << 24
_PARQUET_BATCH_ROWS = 65_536
_BOM = b"\xef\xbb\xbf"


class UnreadableFileError(Exception):
    """A file that cannot be read at all (corrupt gzip, bad Parquet, I/O error)."""


def _is_input(path: Path) -> bool:
    return path.name.endswith(INPUT_SUFFIXES)


def discover(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """The input files under ``paths``, in sorted path order.

    A folder is searched recursively for the input suffixes; a file given by name is read
    whatever its suffix. The same file reached twice is read once.

    Raises:
        FileNotFoundError: a given path does not exist.
    """
    roots = [paths] if isinstance(paths, str | Path) else list(paths)
    found: dict[Path, Path] = {}
    for root in roots:
        path = Path(root)
        if path.is_dir():
            candidates = [p for p in path.rglob("*") if p.is_file() and _is_input(p)]
        elif path.is_file():
            candidates = [path]
        else:
            msg = f"events path not found: {root}"
            raise FileNotFoundError(msg)
        for candidate in candidates:
            found.setdefault(candidate.resolve(), candidate)
    return sorted(found.values())


def is_parquet(path: Path) -> bool:
    """Whether the file is read as Parquet (by its suffix)."""
    return path.name.endswith(".parquet")


def _open_lines(path: Path) -> io.BufferedIOBase:
    if path.name.endswith(".gz"):
        return gzip.GzipFile(path, "rb")
    return path.open("rb")


def line_blocks(path: Path) -> Iterator[list[bytes]]:
    """Lines of a JSON-lines file (gzip when named ``*.gz``) in blocks; blank lines included.

    Line terminators are removed; the i-th line over all blocks is line i + 1 of the file.

    Raises:
        UnreadableFileError: the file (or its compression) is broken.
    """
    try:
        with _open_lines(path) as stream:
            rest = b""
            first = True
            while True:
                data = stream.read(_BLOCK_BYTES)
                if not data:
                    break
                if first:
                    first = False
                    if data.startswith(_BOM):
                        data = data[len(_BOM) :]
                lines = (rest + data).split(b"\n")
                rest = lines.pop()
                yield lines
            if rest:
                yield [rest]
    except Exception as exc:  # OSError, EOFError, zlib.error...: one file never fails the run
        raise UnreadableFileError(_describe(exc)) from exc


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _ns_to_us(table: pa.RecordBatch) -> pa.RecordBatch:
    # pyarrow will not turn nanosecond timestamps into datetime objects without pandas.
    columns = []
    changed = False
    for column in table.columns:
        column_type = column.type
        if pa.types.is_timestamp(column_type) and column_type.unit == "ns":
            column = column.cast(pa.timestamp("us", column_type.tz), safe=False)
            changed = True
        columns.append(column)
    if not changed:
        return table
    return pa.RecordBatch.from_arrays(columns, names=table.schema.names)


def parquet_rows(path: Path) -> Iterator[list[dict[str, Any]]]:
    """Rows of a Parquet file as message dicts, in batches.

    Nested fields stored as JSON text are parsed, so a row looks like the same message read
    from JSON lines.

    Raises:
        UnreadableFileError: the file is not readable Parquet.
    """
    try:
        parquet = pq.ParquetFile(path)
        batches = parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS)
        for batch in batches:
            rows = _ns_to_us(batch).to_pylist()
            for row in rows:
                for field in NESTED_FIELDS:
                    value = row.get(field)
                    if type(value) is str:
                        row[field] = _parse_nested(value)
            yield rows
    except Exception as exc:  # pyarrow raises many kinds; a bad file must not fail the run
        raise UnreadableFileError(_describe(exc)) from exc


def _parse_nested(text: str) -> Any:
    try:
        return loads(text)
    except ValueError:
        return text  # not JSON: stays a string, which normalization treats as "not an object"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def row_json(row: dict[str, Any]) -> str:
    """JSON text of a Parquet row (its raw text in the quarantine)."""
    try:
        return orjson.dumps(row, default=_json_default).decode()
    except TypeError:  # integers beyond 64 bits
        return json.dumps(row, default=_json_default, ensure_ascii=False, separators=(",", ":"))
