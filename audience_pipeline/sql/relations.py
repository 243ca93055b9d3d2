"""The input tables the SQL backend reads, and small AST helpers shared by its builders.

The compiled SQL reads six relations (names configurable through `Inputs`):

- events: ``profile_id, timestamp, message_id, seq, event, properties, context``: the event
  calls (track, page as ``Page Viewed``, screen as ``Screen Viewed``) with flat-tagged
  properties and context (see `audience_pipeline.values.flat_tag`);
- profiles: ``profile_id, known`` (holds a user_id or email identifier);
- user_traits: ``profile_id, key, tagged``: the latest custom trait values, flat-tagged; an
  object-valued trait also appears flattened under its dotted keys (``address.city``);
- accounts: ``account_id``; account_members: ``account_id, profile_id``;
- account_traits: ``account_id, key, tagged`` (as user_traits);
- identities: ``profile_id, id_type, id_value`` (normalized; read by `sample` nodes only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlglot import exp

AS_OF = "as_of"
ENTITY = "entity_id"


@dataclass(frozen=True)
class Inputs:
    """Names of the input relations."""

    events: str = "ap_events"
    profiles: str = "ap_profiles"
    user_traits: str = "ap_user_traits"
    accounts: str = "ap_accounts"
    account_members: str = "ap_account_members"
    account_traits: str = "ap_account_traits"
    identities: str = "ap_identities"


def as_of_param() -> exp.Expr:
    """The as-of timestamp: a named parameter, bound by `bind_as_of` before running."""
    return exp.Placeholder(this=AS_OF)


def bind_as_of(tree: exp.Expr, literal: exp.Expr) -> exp.Expr:
    """Replace the as-of parameter with a literal (for engines run without bind parameters)."""

    def swap(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Placeholder) and node.name == AS_OF:
            return literal.copy()
        return node

    return tree.transform(swap)


def iso(moment: datetime) -> str:
    return moment.isoformat(sep=" ")


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table)


def star(table_name: str) -> exp.Column:
    """table.*"""
    return exp.Column(this=exp.Star(), table=exp.to_identifier(table_name))


def alias(expr: exp.Expr, name: str) -> exp.Expr:
    return exp.alias_(expr, name)


def eq(a: exp.Expr, b: exp.Expr) -> exp.EQ:
    return exp.EQ(this=a, expression=b)


def table(name: str, alias_name: str | None = None) -> exp.Table:
    return exp.table_(name, alias=alias_name)


def seconds(n: int) -> exp.Interval:
    return exp.Interval(this=exp.Literal.string(str(n)), unit=exp.Var(this="SECOND"))


def count_if(condition: exp.Expr) -> exp.Expr:
    """SUM(CASE WHEN c THEN 1 ELSE 0 END): a count every engine spells alike."""
    return exp.Sum(
        this=exp.Case().when(condition, exp.Literal.number(1)).else_(exp.Literal.number(0))
    )


def coalesce(value: exp.Expr, fill: exp.Expr) -> exp.Expr:
    return exp.Coalesce(this=value, expressions=[fill])


def with_ctes(ctes: list[tuple[str, exp.Select]], final: exp.Select) -> exp.Select:
    """WITH name AS (...), ... final."""
    result = final
    for name, select in ctes:
        result = result.with_(name, as_=select, copy=False)
    return result
