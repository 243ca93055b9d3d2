"""Option types whose failures name the option (Click prints "Invalid value for '--as-of'")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from audience_pipeline.spec.loader import parse_timestamp


class Timestamp(click.ParamType):
    """ISO-8601; naive times are UTC."""

    name = "ISO-8601"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            return parse_timestamp(str(value))
        except ValueError as error:
            self.fail(f"{value!r} is not an ISO-8601 timestamp ({error})", param, ctx)


TIMESTAMP = Timestamp()

# An output folder: may not exist yet (it is created), must not be a file.
OUTPUT_DIR = click.Path(file_okay=False, dir_okay=True, writable=True)
# An output file: its folder is created; it must not be a folder.
OUTPUT_FILE = click.Path(file_okay=True, dir_okay=False, writable=True)

__all__ = ["OUTPUT_DIR", "OUTPUT_FILE", "TIMESTAMP", "Timestamp"]
