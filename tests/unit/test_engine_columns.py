"""The engine reads only the event columns `needed_flat_columns` names.

The benchmark (and any caller) may load just those columns and leave the JSON text of properties
and context null when every path a space reads has a flattened column; the outputs must not
change. Checked on generated demo data against a run over the complete events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from audience_pipeline.demo.generate import generate
from audience_pipeline.engine.columns import needed_flat_columns
from audience_pipeline.engine.compute import compute
from audience_pipeline.ingest import ingest
from audience_pipeline.ir import nodes as ir
from audience_pipeline.spec.compile import load_space_ir

ROOT = Path(__file__).resolve().parents[2]
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module", params=["definitions", "benchmarks/definitions"])
def space_and_events(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    definitions, space = load_space_ir(str(ROOT / request.param), AS_OF)
    data = tmp_path_factory.mktemp("events")
    generate(data, events=6_000, accounts=40, as_of=AS_OF, seed=3)
    ingested = ingest(data, definitions.space, workers=1)
    return definitions, space, ingested


def test_needed_columns_cover_every_path(space_and_events) -> None:
    _, space, ingested = space_and_events
    flat = needed_flat_columns(space, set(ingested.events.columns))
    assert flat.columns <= set(ingested.events.columns)
    # The demo data flattens every key, so no path needs the JSON text.
    assert not flat.needs_properties and not flat.needs_context
    assert any(c.startswith("p.") for c in flat.columns)


def test_projected_events_give_the_same_tables(space_and_events) -> None:
    definitions, space, ingested = space_and_events
    full = compute(ingested.events, ingested.trait_updates, definitions.space, space, AS_OF)
    flat = needed_flat_columns(space, set(ingested.events.columns))
    base = [c for c in ingested.events.columns if not c.startswith(("p.", "c."))]
    projected = ingested.events.select(*base, *sorted(flat.columns)).with_columns(
        pl.lit(None, dtype=pl.String).alias("properties"),
        pl.lit(None, dtype=pl.String).alias("context"),
    )
    lean = compute(projected, ingested.trait_updates, definitions.space, space, AS_OF)
    assert full.tables().keys() == lean.tables().keys()
    for name, table in full.tables().items():
        assert table.height > 0 or name == "account_user_memberships", name
        assert table.equals(lean.tables()[name]), name


def test_json_path_without_flat_column_still_read(space_and_events) -> None:
    """A path with no flattened column falls back to the JSON text (and needs it loaded)."""
    definitions, space, ingested = space_and_events
    price = ir.Ref("prop", ("price",))
    trait = ir.Trait("t_max_price", "user", "max", ("Product Viewed",), price, None, None, 1)
    one = ir.Space((trait,), ())
    events = ingested.events
    assert needed_flat_columns(one, set(events.columns)).columns == {"p.price"}
    without = events.drop("p.price")
    assert needed_flat_columns(one, set(without.columns)).needs_properties
    a = compute(events, ingested.trait_updates, definitions.space, one, AS_OF).user_traits
    b = compute(without, ingested.trait_updates, definitions.space, one, AS_OF).user_traits
    assert a["t_max_price"].drop_nulls().len() > 0
    assert a.equals(b)
