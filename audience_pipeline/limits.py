"""The memory a compute run may use: one setting that every engine reads (a neutral place).

The CLI and Dagster set it for the process (`set_memory_limit`, from ``--memory-limit`` or the
engine resource) or pass a value; without either the engines take
`AUDIENCE_PIPELINE_MEMORY_LIMIT`, else `DEFAULT_MEMORY_LIMIT`, which leaves room under 8 GiB for
what a process holds outside the engine's own budget (Python, the output frames).
"""

from __future__ import annotations

import os
import re

MEMORY_LIMIT_ENV = "AUDIENCE_PIPELINE_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "6GiB"

_DECIMAL = {"kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_BINARY = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_UNITS = {
    "": 1,
    "b": 1,
    **_DECIMAL,
    **_BINARY,
    **{f"{unit}ib": size for unit, size in _BINARY.items()},
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, *, binary: bool = False) -> int:
    """``6GiB``, ``6GB``, ``6144MiB``, ``512M`` or a number of bytes -> bytes.

    `binary`: read ``GB``/``MB``/... as powers of 1024 as well (the ``--memory-limit`` option's
    reading); otherwise they are powers of 1000 and ``GiB``/``MiB``/... are binary.

    Raises:
        ValueError: not a size (the message names the text).
    """
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if binary and unit in _DECIMAL:
        unit = unit[0]
    if match is None or unit not in _UNITS:
        msg = f"not a memory size: {text!r} (e.g. 6GiB, 6GB, 6144MiB)"
        raise ValueError(msg)
    return int(float(match.group(1)) * _UNITS[unit])


_process_limit: int | None = None


def set_memory_limit(value: str | int | None) -> None:
    """The process's limit for every later run (None: back to the environment or default)."""
    global _process_limit
    _process_limit = parse_size(value) if isinstance(value, str) else value


def memory_limit_bytes(value: str | int | None = None) -> int:
    """The memory limit in bytes: `value`, else the process's (`set_memory_limit`), else the
    environment's setting, else the default."""
    if isinstance(value, int):
        return value
    if value is None and _process_limit is not None:
        return _process_limit
    text = value or os.environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT
    return parse_size(text)
