"""Section 7's computed-trait kinds (`kind: score`, `kind: sql`) and space.yaml `sources:`."""

from __future__ import annotations

import re
from typing import Any

from audience_pipeline.ir.nodes import Window
from audience_pipeline.spec.fields import check_key, event_names, parse_duration
from audience_pipeline.spec.issues import Issue
from audience_pipeline.spec.models import SourceSpec, TraitDef

SCORES = ("quantity", "frequency", "recency", "momentum", "consistency")
SCORE_FIELDS = {"key", "name", "description", "level", "kind", "score", "event", "where", "within"}
DEFAULT_SCORE_WINDOW = 90 * 86400


def load_score_trait(raw: dict[str, Any], file: str, issues: list[Issue]) -> TraitDef | None:
    """`kind: score`: score required; event optional (every event); where; within (90d)."""
    key = check_key(raw, file, issues)
    before = len(issues)
    for extra in sorted(set(raw) - SCORE_FIELDS, key=str):
        why = "not a field of a score trait" if extra in ("property", "between", "min_frequency") else "unknown field"  # fmt: skip
        issues.append(Issue(file, key, str(extra), why, str(extra)))
    level = raw.get("level", "user")
    if level not in ("user", "account"):
        issues.append(Issue(file, key, "level", "level is user or account", str(level)))
    score = raw.get("score")
    if score not in SCORES:
        issues.append(Issue(file, key, "score", f"score is one of {', '.join(SCORES)}", str(score)))
    events: tuple[str, ...] | None = ()
    if raw.get("event") is not None:
        events = event_names(raw["event"])
        if events is None:
            issues.append(Issue(file, key, "event", "event is a name or a list of names",
                                str(raw["event"])))  # fmt: skip
    where = raw.get("where")
    if where is not None and not isinstance(where, str):
        issues.append(Issue(file, key, "where", "where is a SQL string", str(where)))
    window = DEFAULT_SCORE_WINDOW
    if raw.get("within") is not None:
        try:
            window = parse_duration(raw["within"])
        except ValueError as error:
            issues.append(Issue(file, key, "within", str(error), str(raw["within"])))
        else:
            if window <= 0:
                issues.append(Issue(file, key, "within", "within is greater than 0", str(raw["within"])))  # fmt: skip
    if key is None or len(issues) > before:
        return None
    return TraitDef(
        key=key, level=level, kind="score", events=events or (), property=None, where=where,
        window=Window(window), min_frequency=1, file=file,
        description=raw.get("description") or raw.get("name"), raw=raw, score=str(score),
    )  # fmt: skip


SQL_FIELDS = {"key", "name", "description", "level", "kind", "query"}
SOURCE_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def load_sql_trait(raw: dict[str, Any], file: str, issues: list[Issue]) -> TraitDef | None:
    """`kind: sql`: a `query` (checked against the space when compiled) and a level."""
    key = check_key(raw, file, issues)
    before = len(issues)
    for extra in sorted(set(raw) - SQL_FIELDS, key=str):
        issues.append(Issue(file, key, str(extra), "unknown field (a sql trait has query and level)", str(extra)))  # fmt: skip
    level = raw.get("level", "user")
    if level not in ("user", "account"):
        issues.append(Issue(file, key, "level", "level is user or account", str(level)))
    query = raw.get("query")
    if not isinstance(query, str) or not query.strip():
        issues.append(Issue(file, key, "query", "query is a SELECT statement (text)", str(query)))
    if key is None or len(issues) > before:
        return None
    return TraitDef(
        key=key, level=level, kind="sql", events=(), property=None, where=None, window=None,
        min_frequency=1, file=file, description=raw.get("description") or raw.get("name"),
        raw=raw, query=str(query),
    )  # fmt: skip


def load_section7_trait(raw: dict[str, Any], file: str, issues: list[Issue]) -> TraitDef | None:
    if raw.get("kind") == "sql":
        return load_sql_trait(raw, file, issues)
    return load_score_trait(raw, file, issues)


def load_sources(raw: Any, file: str, issues: list[Issue]) -> tuple[SourceSpec, ...]:
    """space.yaml `sources:`: [{name, path} | {name, dsn, table}]."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        issues.append(Issue(file, None, "sources", "sources is a list", str(raw)))
        return ()
    out: list[SourceSpec] = []
    for index, item in enumerate(raw):
        field = f"sources[{index}]"
        if not isinstance(item, dict):
            issues.append(Issue(file, None, field, "a source is {name, path} or {name, dsn, table}", str(item)))  # fmt: skip
            continue
        extra = set(item) - {"name", "path", "dsn", "table"}
        if extra:
            issues.append(Issue(file, None, f"{field}.{sorted(extra, key=str)[0]}", "unknown field", str(sorted(extra, key=str))))  # fmt: skip
            continue
        name = item.get("name")
        if not isinstance(name, str) or not SOURCE_NAME.fullmatch(name):
            issues.append(Issue(file, None, f"{field}.name", "a source name matches [a-z_][a-z0-9_]*", str(name)))  # fmt: skip
            continue
        if name in ("events", "identifies", "groups") or any(s.name == name for s in out):
            issues.append(Issue(file, None, f"{field}.name", "source name already taken", name))
            continue
        path, dsn, table = item.get("path"), item.get("dsn"), item.get("table")
        if isinstance(path, str) and path and dsn is None and table is None:
            if not path.lower().endswith((".parquet", ".csv")):
                issues.append(Issue(file, None, f"{field}.path", "a source file is .parquet or .csv", path))  # fmt: skip
                continue
            out.append(SourceSpec(name, path=path))
        elif isinstance(dsn, str) and isinstance(table, str) and path is None and TABLE_NAME.fullmatch(table):  # fmt: skip
            out.append(SourceSpec(name, dsn=dsn, table=table))
        else:
            issues.append(Issue(file, None, field, "a source is {name, path: x.parquet|x.csv} or {name, dsn: postgresql://..., table: schema.table}", str(item)))  # fmt: skip
    return tuple(out)


TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


__all__ = ["SCORES", "load_score_trait", "load_section7_trait", "load_sources", "load_sql_trait"]
