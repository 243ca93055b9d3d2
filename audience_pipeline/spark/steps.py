"""Running a script's steps (`sql.script.program`) through ``spark.sql``."""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from audience_pipeline.spark.linking import owners_on_spark
from audience_pipeline.sql.script.identity import SEQUENTIAL_LOOP
from audience_pipeline.sql.script.program import Check, Loop, Script, render_step

MAX_ROUNDS = 10_000


def run_steps(spark: Any, script: Script, limits: dict[int, int]) -> int:
    """Run the script's steps through ``spark.sql``; loops are driven from here (one count per
    round), SPEC's rule where a limit bites runs per component (`linking`). Returns the rounds."""
    rounds = 0
    for step in script.steps:
        if isinstance(step, Check):
            continue  # DuckDB's unrolled loops only
        if isinstance(step, Loop) and step.name == SEQUENTIAL_LOOP:
            owners_on_spark(spark, limits).write.mode("overwrite").saveAsTable("ap_sq_owner")
            continue
        if not isinstance(step, Loop):
            for line in render_step(step, "spark"):
                spark.sql(line.removesuffix(";"))
            continue
        done = exp.select(step.done.copy()).sql(dialect="spark")
        for _ in range(MAX_ROUNDS):
            if spark.sql(done).collect()[0][0]:
                break
            rounds += 1
            for inner in step.body:
                for line in render_step(inner, "spark"):
                    spark.sql(line.removesuffix(";"))
        else:
            msg = f"{step.name}: did not finish in {MAX_ROUNDS} rounds"
            raise RuntimeError(msg)
    return rounds
