"""A step that groups one table's rows by entity, run one entity-hash bucket at a time.

A level's aggregate step (``u_agg``: every trait's and condition's aggregate, distinct counts and
lists among them, in one GROUP BY entity_id) keeps a state per entity for each aggregate; DuckDB
cannot spill the states of distinct and list aggregates, so at 30M events (2.4M profiles, about
70 aggregates) the step ran out of a 3 GiB limit. Every group is one entity, so splitting the
rows by a hash of the entity splits the groups: the buckets' rows together are the step's rows
(same groups, same aggregates), whatever the order they are written in.

Only a plain ``SELECT ... FROM <one table> [WHERE ...] GROUP BY ..., entity_id, ...`` is split
(no join, no subquery or CTE, no window: nothing that reads across entities).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sqlglot import exp

from audience_pipeline.sql.relations import ENTITY
from audience_pipeline.sql.statements import create_as, relation

# Rows of the grouped table one bucket may take per byte of DuckDB's memory limit: at 10M events
# the user aggregate fit 3 GiB with 10M rows (320 bytes a row) and at 2M it did not fit 300 MiB
# (157 bytes a row); a bucket gets 512 bytes a row.
BYTES_PER_ROW = 512


def split_source(body: exp.Expr) -> str | None:
    """The one table a step groups by entity, or None if the step cannot be split."""
    if not isinstance(body, exp.Select) or body.args.get("with_") or body.args.get("joins"):
        return None
    group = body.args.get("group")
    if group is None or not any(
        isinstance(key, exp.Column) and key.name == ENTITY for key in group.expressions
    ):
        return None
    source = body.args.get("from_")
    table = source.this if source is not None else None
    if not isinstance(table, exp.Table) or table.args.get("db"):
        return None
    if any(body.find_all(exp.Window, exp.Subquery, exp.Limit, exp.Order)):
        return None
    return table.name


def bucket_count(rows: int, memory_limit_bytes: int) -> int:
    """How many buckets `rows` rows take under DuckDB's memory limit (at least one)."""
    per_bucket = max(1, memory_limit_bytes // BYTES_PER_ROW)
    return max(1, math.ceil(rows / per_bucket))


def in_bucket(body: exp.Select, index: int, count: int) -> exp.Select:
    """`body` over the rows whose entity hashes to bucket `index` of `count`."""
    hashed = exp.Anonymous(this="HASH", expressions=[exp.column(ENTITY)])
    bucket = exp.Mod(this=hashed, expression=exp.Literal.number(count))
    # A NULL entity (never expected) goes to bucket 0 rather than to none.
    keep = exp.EQ(
        this=exp.func("COALESCE", bucket, exp.Literal.number(0)),
        expression=exp.Literal.number(index),
    )
    return body.copy().where(keep)


def create_in_buckets(
    execute: Callable[[exp.Expr], None], name: str, body: exp.Select, count: int
) -> None:
    """CREATE TEMPORARY TABLE "name" AS `body`, one bucket at a time."""
    execute(create_as(name, in_bucket(body, 0, count)))
    for index in range(1, count):
        execute(exp.insert(in_bucket(body, index, count), relation(name)))
