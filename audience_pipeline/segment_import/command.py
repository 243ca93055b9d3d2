"""`audience-pipeline import-segment FILE --out DIR`: convert, then print what was not and why."""

from __future__ import annotations

from pathlib import Path

from audience_pipeline.segment_import.importer import REPORT_FILE, import_segment


def import_command(source: str | Path, out: str | Path) -> int:
    """0 when every item was converted, 3 when some were not (each listed with its reason).

    Raises:
        ValueError: the file cannot be read as one of the accepted shapes (the CLI exits 2).
    """
    report = import_segment(source, out)
    audiences = sum(o.kind == "audience" for o in report.converted)
    traits = len(report.converted) - audiences
    print(f"converted {audiences} audience(s) and {traits} computed trait(s) into {out}")
    for outcome in report.converted:
        notes = f" ({'; '.join(outcome.notes)})" if outcome.notes else ""
        print(f"  {outcome.file}{notes}")
    for note in report.notes:
        print(f"note: {note}")
    if report.not_converted:
        print(f"not converted: {len(report.not_converted)}")
        for outcome in report.not_converted:
            print(f"  {outcome.kind} {outcome.key} ({outcome.name}): {outcome.reason}")
            print(f"    query: {' '.join(outcome.query.split())}")
    print(f"report: {Path(out) / REPORT_FILE}")
    return 3 if report.not_converted else 0


__all__ = ["import_command"]
