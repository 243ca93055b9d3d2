"""Finding input files and reading their records (JSON lines, gzip, Parquet)."""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable, Iterator, Sequence
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
_GZIP_READ_BYTES = 1 << 16
_PARQUET_BATCH_ROWS = 65_536
_BOM = b"\xef\xbb\xbf"

BytesRead = Callable[[int], None]
"""Hears how far into a file reading got: bytes of the file on disk (compressed for .gz)."""


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


class DamagedFileError(Exception):
    """A compressed stream broke after some whole lines were read (they were handed out).

    Attributes:
        description: what broke.
        rest: the bytes of the incomplete line before the damage (may be empty).
    """

    def __init__(self, description: str, rest: bytes) -> None:
        super().__init__(description)
        self.description = description
        self.rest = rest


def _gunzip(stream: io.BufferedIOBase, on_bytes: BytesRead | None = None) -> Iterator[bytes]:
    """Decompressed pieces of a gzip stream (several members allowed), as they come.

    Compressed input is fed in small reads, so a damaged stream gives every byte before the
    damage (``gzip.GzipFile`` drops what the failing read decompressed).
    """
    decompressor = zlib.decompressobj(31)
    started = False
    while data := stream.read(_GZIP_READ_BYTES):
        if on_bytes is not None:
            on_bytes(stream.tell())
        while data:
            started = True
            out = decompressor.decompress(data)
            if out:
                yield out
            if not decompressor.eof:
                break
            data = decompressor.unused_data.lstrip(b"\0")  # gzip allows zero padding
            decompressor = zlib.decompressobj(31)
            started = False
    if started and not decompressor.eof:
        msg = "Compressed file ended before the end-of-stream marker was reached"
        raise EOFError(msg)


def _pieces(path: Path, on_bytes: BytesRead | None = None) -> Iterator[bytes]:
    with path.open("rb") as stream:
        if path.name.endswith(".gz"):
            yield from _gunzip(stream, on_bytes)
        else:
            while data := stream.read(_BLOCK_BYTES):
                if on_bytes is not None:
                    on_bytes(stream.tell())
                yield data


def line_blocks(
    path: Path, *, block_bytes: int | None = None, on_bytes: BytesRead | None = None
) -> Iterator[list[bytes]]:
    """Lines of a JSON-lines file (gzip when named ``*.gz``) in blocks; blank lines included.

    Line terminators are removed; the i-th line over all blocks is line i + 1 of the file.
    ``block_bytes``: about this many bytes of lines a block (default 16 MB). ``on_bytes`` hears
    the file's bytes (compressed bytes for gzip) behind each block once the caller is done with
    it (asks for the next), so progress counts what was processed, not what was read ahead.

    Raises:
        UnreadableFileError: the file (or its compression) is broken before its first line.
        DamagedFileError: it broke later; every whole line before the damage was handed out.
    """
    block_bytes = _BLOCK_BYTES if block_bytes is None else block_bytes
    rest = b""
    pending: list[bytes] = []
    size = 0
    first = True
    handed = False
    position = [0]  # the file's bytes behind what was read so far

    def read(where: int) -> None:
        position[0] = where

    try:
        for data in _pieces(path, read):
            if first:
                first = False
                if data.startswith(_BOM):
                    data = data[len(_BOM) :]
            pending.append(data)
            size += len(data)
            if size >= block_bytes:
                lines = (rest + b"".join(pending)).split(b"\n")
                pending, size = [], 0
                rest = lines.pop()
                handed = True
                behind = position[0]
                yield lines
                if on_bytes is not None:
                    on_bytes(behind)
    except Exception as exc:  # OSError, EOFError, zlib.error...: one file never fails the run
        lines = (rest + b"".join(pending)).split(b"\n")
        rest = lines.pop()
        if not handed and not lines:
            raise UnreadableFileError(_describe(exc)) from exc
        if lines:
            yield lines
        raise DamagedFileError(_describe(exc), rest) from exc
    lines = (rest + b"".join(pending)).split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    if lines:
        yield lines


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


def parquet_rows(path: Path, on_bytes: BytesRead | None = None) -> Iterator[list[dict[str, Any]]]:
    """Rows of a Parquet file as message dicts, in batches.

    Nested fields stored as JSON text are parsed, so a row looks like the same message read
    from JSON lines. ``on_bytes`` hears the file's size times the share of rows read so far.

    Raises:
        UnreadableFileError: the file is not readable Parquet.
    """
    try:
        parquet = pq.ParquetFile(path)
        batches = parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS)
        total, done, size = parquet.metadata.num_rows, 0, path.stat().st_size
        for batch in batches:
            done += batch.num_rows
            if on_bytes is not None and total:
                on_bytes(size * done // total)
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
