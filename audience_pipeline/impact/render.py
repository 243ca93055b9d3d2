"""`diff` output: a text table for people, Markdown for a pull request, JSON for machines."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from audience_pipeline.impact.model import AudienceImpact

HEADER = ("audience", "level", "now", "after", "change", "entering", "exiting")


def _change(impact: AudienceImpact) -> str:
    delta = impact.size_after - impact.size_now
    if impact.size_now == 0:
        return f"{delta:+d}"
    return f"{delta:+d} ({100 * delta / impact.size_now:+.1f}%)"


def _key(impact: AudienceImpact) -> str:
    return impact.audience_key + ("" if impact.status == "existing" else f" ({impact.status})")


def _row(impact: AudienceImpact) -> tuple[str, ...]:
    return (_key(impact), impact.level, str(impact.size_now), str(impact.size_after),
            _change(impact), str(impact.entering), str(impact.exiting))  # fmt: skip


def _names(sample: list[dict[str, str]], total: int) -> str:
    shown = ", ".join(s["label"] for s in sample)
    more = total - len(sample)
    if not shown:
        return f"{total} (no sample asked for)"
    return shown + (f", ... ({more} more)" if more > 0 else "")


def render_json(impacts: Sequence[AudienceImpact]) -> str:
    return orjson.dumps([i.as_dict() for i in impacts], option=orjson.OPT_INDENT_2).decode()


def render_text(impacts: Sequence[AudienceImpact], as_of: str) -> str:
    rows = [HEADER, *(_row(i) for i in impacts)]
    widths = [max(len(r[c]) for r in rows) for c in range(len(HEADER))]
    lines = [f"impact of the definitions on disk against the run as of {as_of}"]
    for n, row in enumerate(rows):
        cells = [cell.ljust(w) if c < 2 else cell.rjust(w) for c, (cell, w) in
                 enumerate(zip(row, widths, strict=True))]  # fmt: skip
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    for impact in impacts:
        if impact.entering:
            lines.append(
                f"{impact.audience_key} entering: {_names(impact.entering_sample, impact.entering)}"
            )
        if impact.exiting:
            lines.append(
                f"{impact.audience_key} exiting: {_names(impact.exiting_sample, impact.exiting)}"
            )
    if not impacts:
        lines.append("no audience selected")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(impacts: Sequence[AudienceImpact], as_of: str) -> str:
    """GitHub-flavoured Markdown: a summary table, then the samples folded per audience."""
    changed = [i for i in impacts if i.changed]
    lines = [
        "### Audience impact",
        "",
        f"Definitions in this change evaluated over the last run (as of `{as_of}`): "
        f"{len(changed)} of {len(impacts)} audiences change.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "| " + " | ".join(["---"] * 2 + ["---:"] * 5) + " |",
    ]
    for impact in impacts:
        cells = list(_row(impact))
        cells[0] = f"`{impact.audience_key}`" + ("" if impact.status == "existing"
                                                  else f" ({impact.status})")  # fmt: skip
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    for impact in changed:
        if not (impact.entering or impact.exiting):
            continue
        lines += ["", f"<details><summary><code>{impact.audience_key}</code>: "
                  f"+{impact.entering} / -{impact.exiting}</summary>", ""]  # fmt: skip
        if impact.entering:
            lines.append(f"- entering: {_md(_names(impact.entering_sample, impact.entering))}")
        if impact.exiting:
            lines.append(f"- exiting: {_md(_names(impact.exiting_sample, impact.exiting))}")
        lines += ["", "</details>"]
    return "\n".join(lines)


__all__ = ["render_json", "render_markdown", "render_text"]
