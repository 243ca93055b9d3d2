"""`audience-pipeline diff [KEY ...] --warehouse DIR [--json] [--format text|markdown]`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from audience_pipeline.impact.evaluate import edit_impact
from audience_pipeline.impact.render import render_json, render_markdown, render_text

FORMATS = ("text", "markdown")


def diff_command(keys: Sequence[str], definitions: str | Path, warehouse: str | Path, *,
                 as_json: bool = False, fmt: str = "text", sample: int = 5) -> int:  # fmt: skip
    """Print the impact of the definitions on disk; 0 once printed (it never writes anything).

    Raises:
        DefinitionsError: invalid definitions or an unknown key (the CLI exits 1).
        FileNotFoundError: no computed warehouse or no kept inputs (the CLI exits 2).
    """
    report = edit_impact(definitions, warehouse, keys, sample=sample)
    as_of = report.as_of.isoformat()
    if as_json:
        print(render_json(report.audiences))
    elif fmt == "markdown":
        print(render_markdown(report.audiences, as_of))
    else:
        print(render_text(report.audiences, as_of))
    return 0


__all__ = ["FORMATS", "diff_command"]
