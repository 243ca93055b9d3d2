"""`audience-pipeline compute --engine spark`: the command's body."""

from __future__ import annotations

import importlib.util
from datetime import datetime


def spark_compute_command(events: str, definitions: str, as_of: datetime, out: str, *,
                          master: str | None, schema: str | None, tables_database: str | None,
                          allow_empty: bool = False) -> int:  # fmt: skip
    """Run `spark.compute.compute_spark` and print a summary; user mistakes raise ValueError."""
    if importlib.util.find_spec("pyspark") is None:
        raise ValueError("--engine spark needs pyspark (pip install pyspark) and Java 17")
    from audience_pipeline.spark.compute import compute_spark

    run = compute_spark(events, definitions, as_of, out, master=master, schema=schema,
                        tables_database=tables_database, allow_empty=allow_empty)  # fmt: skip
    print(f"as of {run.as_of.isoformat()} -> {run.out} (spark)")
    for name, rows in run.tables.items():
        print(f"  {name}: {rows} rows")
    print("  time: " + ", ".join(f"{k} {v:.2f}s" for k, v in run.seconds.items()))
    return 0
