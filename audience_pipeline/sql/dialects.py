"""What differs between the SQL engines we render for, as class-level flags and small tables.

Everything else (comparisons, CASE, joins, window functions, interval arithmetic) is one sqlglot
AST rendered per dialect by sqlglot itself. The few constructs sqlglot cannot translate alike
(sorted distinct lists, empty typed arrays, JSON extraction from a text column) are written here
once per dialect as small templates, parsed with that dialect's reader, whose placeholders
``_1``, ``_2`` are replaced by AST nodes: no definition text ever enters SQL as text.
"""

from __future__ import annotations

from functools import cache
from typing import ClassVar

import sqlglot
from sqlglot import exp

PLACEHOLDER_NAMES = ("_1", "_2")


class SqlDialect:
    """One target engine. Subclasses only set flags and templates."""

    name: ClassVar[str] = "duckdb"
    sqlglot_dialect: ClassVar[str] = "duckdb"
    # ESCAPE '\' after LIKE (BigQuery's LIKE always escapes with a backslash and has no clause).
    like_escape_clause: ClassVar[bool] = True
    # A JSON path lookup on a text column; `_1` the text, `_2` the key (a string literal).
    json_text_template: ClassVar[str | None] = None
    # Sorted distinct non-null texts of a group (unique_list); `_1` the value.
    sorted_set_template: ClassVar[str] = (
        "LIST_SORT(ARRAY_AGG(DISTINCT _1) FILTER (WHERE _1 IS NOT NULL))"
    )
    empty_list_template: ClassVar[str] = "CAST([] AS VARCHAR[])"
    double_type: ClassVar[str] = "DOUBLE"
    text_type: ClassVar[str] = "VARCHAR"
    timestamp_type: ClassVar[str] = "TIMESTAMPTZ"
    # Largest magnitude whose integral doubles print through BIGINT (exact below 2**53).
    integral_text_limit: ClassVar[float] = 1e15
    # SHA-256 of a text's UTF-8 bytes as lower-case hex (sample buckets); `_1` the text.
    sha256_hex_template: ClassVar[str] = "SHA256(_1)"
    # The UTC calendar date of a timestamp (frequency scores); `_1` the timestamp.
    utc_date_template: ClassVar[str] = "CAST(TIMEZONE('UTC', _1) AS DATE)"
    # A collation that orders text by code point, where the default may not (sample anchors).
    code_point_collation: ClassVar[str | None] = None

    def template(self, text: str, *args: exp.Expr) -> exp.Expr:
        """Instantiate a template of this dialect with AST arguments."""
        parsed = _parse(text, self.sqlglot_dialect)
        values = dict(zip(PLACEHOLDER_NAMES, args, strict=False))

        def swap(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Column) and not node.table and node.name in values:
                return values[node.name].copy()
            return node

        return parsed.copy().transform(swap)

    def json_text(self, document: exp.Expr, key: str) -> exp.Expr:
        """The text at one top-level key of a JSON object held as text (SQL NULL if absent)."""
        if self.json_text_template is not None:
            return self.template(self.json_text_template, document, exp.Literal.string(key))
        path = exp.JSONPath(expressions=[exp.JSONPathRoot(), exp.JSONPathKey(this=key)])
        return exp.JSONExtractScalar(this=document, expression=path)

    def sorted_set(self, value: exp.Expr) -> exp.Expr:
        return self.template(self.sorted_set_template, value)

    def empty_list(self) -> exp.Expr:
        return self.template(self.empty_list_template)

    def cast(self, value: exp.Expr, type_name: str) -> exp.Expr:
        return exp.Cast(this=value, to=exp.DataType.build(type_name, dialect=self.sqlglot_dialect))

    def to_double(self, value: exp.Expr) -> exp.Expr:
        return self.cast(value, self.double_type)

    def to_text(self, value: exp.Expr) -> exp.Expr:
        return self.cast(value, self.text_type)

    def timestamp(self, iso: str) -> exp.Expr:
        return self.cast(exp.Literal.string(iso), self.timestamp_type)

    def sha256_hex(self, text: exp.Expr) -> exp.Expr:
        return self.template(self.sha256_hex_template, text)

    def utc_date(self, ts: exp.Expr) -> exp.Expr:
        return self.template(self.utc_date_template, ts)

    def code_point_order(self, value: exp.Expr) -> exp.Expr:
        if self.code_point_collation is None:
            return value
        return exp.Collate(
            this=value, expression=exp.to_identifier(self.code_point_collation, quoted=True)
        )

    def render(self, tree: exp.Expr, *, pretty: bool = True) -> str:
        return tree.sql(dialect=self.sqlglot_dialect, pretty=pretty)


class DuckDB(SqlDialect):
    name = "duckdb"
    sqlglot_dialect = "duckdb"


class Postgres(SqlDialect):
    name = "postgres"
    sqlglot_dialect = "postgres"
    # json ->> text; the column holds JSON as text, so it is cast first.
    json_text_template = "CAST(_1 AS JSON) ->> _2"
    sorted_set_template = "ARRAY_AGG(DISTINCT _1 ORDER BY _1) FILTER (WHERE _1 IS NOT NULL)"
    empty_list_template = "CAST(ARRAY[] AS TEXT[])"
    double_type = "DOUBLE PRECISION"
    text_type = "TEXT"
    sha256_hex_template = "ENCODE(SHA256(CONVERT_TO(_1, 'UTF8')), 'hex')"
    utc_date_template = "CAST((_1 AT TIME ZONE 'UTC') AS DATE)"
    code_point_collation = "C"


class Snowflake(SqlDialect):
    name = "snowflake"
    sqlglot_dialect = "snowflake"
    sorted_set_template = "ARRAY_AGG(DISTINCT _1) WITHIN GROUP (ORDER BY _1)"
    empty_list_template = "ARRAY_CONSTRUCT()"
    timestamp_type = "TIMESTAMP_TZ"
    sha256_hex_template = "SHA2(_1, 256)"
    utc_date_template = "CAST(CONVERT_TIMEZONE('UTC', _1) AS DATE)"


class BigQuery(SqlDialect):
    name = "bigquery"
    sqlglot_dialect = "bigquery"
    like_escape_clause = False
    sorted_set_template = "ARRAY_AGG(DISTINCT _1 IGNORE NULLS ORDER BY _1)"
    empty_list_template = "CAST([] AS ARRAY<STRING>)"
    double_type = "FLOAT64"
    text_type = "STRING"
    timestamp_type = "TIMESTAMP"
    sha256_hex_template = "TO_HEX(SHA256(_1))"
    utc_date_template = "DATE(_1, 'UTC')"


class Spark(SqlDialect):
    name = "spark"
    sqlglot_dialect = "spark"
    sorted_set_template = "ARRAY_SORT(COLLECT_SET(_1))"
    empty_list_template = "CAST(ARRAY() AS ARRAY<STRING>)"
    text_type = "STRING"
    timestamp_type = "TIMESTAMP"
    sha256_hex_template = "SHA2(_1, 256)"
    # Spark's TIMESTAMP is read in the session time zone, which the Spark engine sets to UTC.
    utc_date_template = "TO_DATE(_1)"


DIALECTS: dict[str, type[SqlDialect]] = {
    cls.name: cls for cls in (DuckDB, Postgres, Snowflake, BigQuery, Spark)
}


def get_dialect(name: str | SqlDialect) -> SqlDialect:
    """A dialect by name (duckdb, postgres, snowflake, bigquery, spark)."""
    if isinstance(name, SqlDialect):
        return name
    try:
        return DIALECTS[name]()
    except KeyError:
        msg = f"unknown SQL dialect {name!r}; choose one of {', '.join(DIALECTS)}"
        raise ValueError(msg) from None


@cache
def _parse(text: str, dialect: str) -> exp.Expr:
    return sqlglot.parse_one(text, read=dialect)
