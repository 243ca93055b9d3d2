"""What commands print on stdout (results, not progress): plain text that pipes well."""

from __future__ import annotations

import click
import polars as pl

from audience_pipeline.ingest import accounting as ingest_accounting
from audience_pipeline.service import Preview, RunSummary


def print_frame(frame: pl.DataFrame) -> None:
    with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=60, tbl_width_chars=160):
        click.echo(str(frame))


def print_compute_summary(summary: RunSummary) -> None:
    click.echo(f"as of {summary.as_of.isoformat()} -> {summary.out}")
    for name, rows in summary.tables.items():
        click.echo(f"  {name}: {rows} rows")
    click.echo(f"  quarantined messages: {summary.quarantined}")
    click.echo(f"  {ingest_accounting(summary.stats)}")
    for key, size in summary.audience_sizes.items():
        click.echo(f"  audience {key}: {size} (+{summary.entered[key]} / -{summary.exited[key]})")
    timing = ", ".join(f"{k} {v:.2f}s" for k, v in summary.seconds.items())
    click.echo(f"  time: {timing}")


def print_preview(result: Preview) -> None:
    """The size, then one member a line with every identifier whole (paste one into explain)."""
    click.echo(f"{result.key} ({result.level}): {result.size} of {result.universe}")
    sample = result.sample
    if sample.height:
        click.echo("\t".join(sample.columns))
    for row in sample.iter_rows():
        click.echo("\t".join("" if value is None else str(value) for value in row))


__all__ = ["print_compute_summary", "print_frame", "print_preview"]
