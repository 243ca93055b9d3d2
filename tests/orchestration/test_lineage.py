"""Dagster lineage from the IR: an audience depends on the computed traits and audiences its
condition names, wherever they stand (inside `users:`, funnels, section 7's nodes)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import dagster as dg

from audience_pipeline.orchestration.assets import audience_assets, trait_assets
from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.spec.models import AudienceDef, Definitions

ROOT = Path(__file__).resolve().parents[2]
TABLES = {dg.AssetKey("memberships"), dg.AssetKey("membership_changes")}


def _lineage(definitions: Definitions) -> dict[str, set[str]]:
    """Per audience key: its upstream assets other than the membership tables."""
    (views,) = audience_assets(list(definitions.audiences), definitions, 0.5)
    return {
        key.path[-1]: {d.to_user_string() for d in deps - TABLES}
        for key, deps in views.asset_deps.items()
    }


def _by_text(audience: AudienceDef, definitions: Definitions) -> set[str]:
    """The lineage as it was found before the IR: trait keys as words of the condition's text,
    audiences under an `audience:` key anywhere in it."""
    text = str(audience.raw.get("condition"))

    def names(raw: object) -> set[str]:
        if isinstance(raw, dict):
            found = {raw["audience"]} if isinstance(raw.get("audience"), str) else set()
            return found.union(*(names(v) for v in raw.values()))
        if isinstance(raw, list):
            return set().union(*(names(v) for v in raw))
        return set()

    traits = {t.key for t in definitions.traits if re.search(rf"\b{re.escape(t.key)}\b", text)}
    audiences = {a.key for a in definitions.audiences} & names(audience.raw.get("condition"))
    return {f"traits/{k}" for k in traits} | {f"audiences/{k}" for k in audiences - {audience.key}}


def _load(folder: Path) -> Definitions:
    definitions, issues = load_definitions(str(folder))
    assert not issues
    return definitions


def test_demo_space_lineage_is_what_the_text_search_found() -> None:
    definitions = _load(ROOT / "definitions")
    lineage = _lineage(definitions)
    assert lineage == {a.key: _by_text(a, definitions) for a in definitions.audiences}
    # The demo has references through users:, SQL trait fields and score traits.
    assert lineage["accounts_with_big_spender"] == {"audiences/big_spenders"}
    assert lineage["crm_pro_without_recent_orders"] == {"traits/crm"}
    assert lineage["rising_occasional_users"] == {
        "traits/engagement_momentum",
        "traits/engagement_frequency",
    }


SPACE = {
    "space.yaml": """
        space: lineage
        identifiers:
          - {type: user_id, from: userId, limit: 1}
        custom_traits: [plan]
    """,
    "traits/revenue.yaml": """
        key: revenue
        kind: sum
        event: Order Completed
        property: revenue
    """,
    "traits/orders.yaml": """
        key: orders
        kind: count
        event: Order Completed
        where: "currency = 'USD'"
    """,
    "traits/big_orders.yaml": """
        key: big_orders
        kind: count
        event: Order Completed
        where: "trait.orders > 1"
    """,
    "traits/acct_revenue.yaml": """
        key: acct_revenue
        level: account
        kind: sum
        event: Order Completed
        property: revenue
    """,
    "audiences/big.yaml": """
        key: big
        name: Big
        condition:
          traits: "revenue > 100 AND plan = 'pro'"
    """,
    "audiences/event_where_trait.yaml": """
        key: event_where_trait
        name: Event where naming a trait
        condition:
          event: Order Completed
          where: "trait.orders > 2"
    """,
    "audiences/first_timers.yaml": """
        key: first_timers
        name: First time, a trait in where
        condition:
          first_time:
            event: Order Completed
            where: "trait.revenue > 5"
            within: 7d
    """,
    "audiences/funnel_trait.yaml": """
        key: funnel_trait
        name: Funnel step naming a trait
        condition:
          funnel:
            within: 7d
            steps:
              - event: Product Viewed
              - event: Order Completed
                where: "trait.revenue > 1"
    """,
    "audiences/accounts_nested.yaml": """
        key: accounts_nested
        name: Accounts through users
        level: account
        condition:
          all:
            - traits: "acct_revenue > 10"
            - users: all
              condition:
                any:
                  - audience: big
                  - traits: "orders > 1"
                  - stopped:
                      event: Order Completed
                      where: "trait.revenue >= 1"
                      within: 30d
                      before: 60d
    """,
    "audiences/accounts_of_accounts.yaml": """
        key: accounts_of_accounts
        name: Accounts naming an account audience
        level: account
        condition:
          not:
            audience: accounts_nested
    """,
    "audiences/trait_of_trait.yaml": """
        key: trait_of_trait
        name: A trait whose where names a trait
        condition:
          traits: "big_orders >= 1"
    """,
    "audiences/sampled.yaml": """
        key: sampled
        name: A sample of big
        condition:
          all:
            - audience: big
            - sample: {salt: s, from: 0, to: 50}
    """,
}

EXPECTED = {
    "big": {"traits/revenue"},
    "event_where_trait": {"traits/orders"},
    "first_timers": {"traits/revenue"},
    "funnel_trait": {"traits/revenue"},
    "accounts_nested": {
        "traits/acct_revenue",
        "audiences/big",
        "traits/orders",
        "traits/revenue",
    },
    "accounts_of_accounts": {"audiences/accounts_nested"},
    "sampled": {"audiences/big"},
    "trait_of_trait": {"traits/big_orders"},
}


def _write_space(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def test_references_through_users_funnels_and_section_7_nodes(tmp_path: Path) -> None:
    definitions = _load(_write_space(tmp_path, SPACE))
    lineage = _lineage(definitions)
    assert lineage == EXPECTED
    assert lineage == {a.key: _by_text(a, definitions) for a in definitions.audiences}


def test_a_trait_depends_on_its_table_only(tmp_path: Path) -> None:
    """As before: trait views read their traits table; a trait naming another trait in its
    `where` is computed in the same engine pass, not after that trait's view."""
    definitions = _load(_write_space(tmp_path, SPACE))
    (views,) = trait_assets(list(definitions.traits))
    deps = {key.path[-1]: {d.to_user_string() for d in up} for key, up in views.asset_deps.items()}
    assert deps == {
        "revenue": {"user_traits"},
        "orders": {"user_traits"},
        "big_orders": {"user_traits"},
        "acct_revenue": {"account_traits"},
    }


def test_a_property_named_like_a_trait_is_no_reference(tmp_path: Path) -> None:
    """The text search took `orders` here for the trait; the IR knows it is the event's
    property."""
    files = {
        **SPACE,
        "audiences/by_property.yaml": """
            key: by_property
            name: A property named like a trait
            condition:
              event: Order Completed
              where: "orders > 1"
        """,
    }
    definitions = _load(_write_space(tmp_path, files))
    by_property = next(a for a in definitions.audiences if a.key == "by_property")
    assert _by_text(by_property, definitions) == {"traits/orders"}
    assert _lineage(definitions)["by_property"] == set()
