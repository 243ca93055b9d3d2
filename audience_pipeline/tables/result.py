"""What one compute run returns: every table of SPEC section 6 as Polars frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

# Identifier types that make a profile "known" (SPEC: holds a user_id or an email).
KNOWN_TYPES = ["user_id", "email"]


@dataclass
class ComputeResult:
    """Every table of one as-of run (SPEC section 6), as Polars frames."""

    as_of: datetime
    identities: pl.DataFrame
    user_traits: pl.DataFrame
    account_traits: pl.DataFrame
    memberships: pl.DataFrame
    account_user_memberships: pl.DataFrame
    message_profiles: pl.DataFrame
    stats: dict[str, int] = field(default_factory=dict)
    json_columns: dict[str, set[str]] = field(default_factory=dict)  # table -> JSON-text columns

    def tables(self) -> dict[str, pl.DataFrame]:
        return {
            "identities": self.identities,
            "user_traits": self.user_traits,
            "account_traits": self.account_traits,
            "memberships": self.memberships,
            "account_user_memberships": self.account_user_memberships,
        }
