"""Identity components where a limit bites: SPEC's sequential rule over just their messages
(shared by the DuckDB and PostgreSQL resolvers, which label the components themselves)."""

from __future__ import annotations

import polars as pl

from audience_pipeline.identity.prepare import Prepared
from audience_pipeline.identity.result import (
    IDENTITIES_SCHEMA,
    MESSAGE_PROFILES_SCHEMA,
    type_limits,
)
from audience_pipeline.identity.sequential import Identifier, link_in_order
from audience_pipeline.spec.models import SpaceConfig


def sequential_rule(prepared: Prepared, messages: pl.DataFrame,
                space: SpaceConfig) -> tuple[pl.DataFrame, pl.DataFrame, int]:  # fmt: skip
    """The rule over the messages of bitten components (one Python step per distinct message)."""
    lists = (
        prepared.links.join(messages.select("rank"), on="rank", how="semi")
        .unique()
        .sort("rank", "node")
        .group_by("rank", maintain_order=True)
        .agg("node")
        .unique(subset="node", keep="first", maintain_order=True)
    )
    ident: dict[int, Identifier] = {
        node: (t, v)
        for node, t, v in prepared.nodes.select("node", "id_type", "id_value").iter_rows()
    }
    ordered = [[ident[node] for node in nodes] for nodes in lists["node"].to_list()]
    outcome = link_in_order(ordered, type_limits(space))
    identities = pl.DataFrame(outcome.identities, schema=IDENTITIES_SCHEMA, orient="row")
    owners = identities.join(prepared.nodes, on=["id_type", "id_value"]).select(
        first="node", profile_id="profile_id"
    )
    message_profiles = messages.join(owners, on="first", how="left").select(
        MESSAGE_PROFILES_SCHEMA.names()
    )
    return message_profiles, identities, outcome.profiles
