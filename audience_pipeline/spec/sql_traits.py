"""Validation of `kind: sql` traits against the space: the query (one read-only SELECT over
known relations), its first column's name when it can be told, and the declared sources."""

from __future__ import annotations

from pathlib import Path

from audience_pipeline.spec.issues import Issue
from audience_pipeline.spec.models import Definitions
from audience_pipeline.sqltraits.check import QueryError, check_query, first_column


def check_sql_traits(definitions: Definitions) -> list[Issue]:
    issues: list[Issue] = []
    sources = {s.name for s in definitions.space.sources}
    for source in definitions.space.sources:
        if source.path is not None and not (Path(definitions.root) / source.path).is_file():
            issues.append(Issue(definitions.space.file, None, f"sources.{source.name}.path",
                                "file not found (paths are relative to the definitions folder)",
                                source.path))  # fmt: skip
    for trait in definitions.traits:
        if trait.kind != "sql" or trait.query is None:
            continue
        try:
            tree = check_query(trait.query, sources)
        except QueryError as error:
            issues.append(Issue(trait.file, trait.key, "query", error.message, error.text))
            continue
        allowed = (
            ("group_id",) if trait.level == "account" else definitions.space.identifier_types()
        )
        first = first_column(tree)
        if first is not None and first not in allowed:
            issues.append(Issue(trait.file, trait.key, "query",
                                f"the first column names the entity: one of {', '.join(allowed)}",
                                first))  # fmt: skip
    return issues


__all__ = ["check_sql_traits"]
