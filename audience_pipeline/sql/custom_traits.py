"""Latest custom traits as the SQL backend's trait relations read them (DuckDB and PostgreSQL)."""

from __future__ import annotations

import polars as pl

from audience_pipeline.values import flat_tag, loads


def flattened(latest: pl.DataFrame, owner: str) -> pl.DataFrame:
    """Latest custom traits, plus the dotted keys of object values (`trait.address.city`).

    `latest`: ``<owner>, key, tagged`` (flat-tagged; objects as ``o`` + JSON text).
    """
    rows = [
        (entity, f"{key}.{path}", value)
        for entity, key, tagged in latest.filter(pl.col("tagged").str.starts_with("o"))
        .select(owner, "key", "tagged")
        .iter_rows()
        for path, value in flat_tag(loads(tagged[1:])).items()
    ]
    base = latest.select(owner, "key", "tagged")
    if not rows:
        return base
    extra = pl.DataFrame(rows, schema=base.schema, orient="row")
    return pl.concat([base, extra])
