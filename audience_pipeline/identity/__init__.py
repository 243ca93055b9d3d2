"""Identity resolution: messages -> profiles (SPEC sections 2 and 5a).

`resolve_identities` is the engine's entry point (vectorized); `resolve_sequential` applies the
rule one message at a time and is the reference the tests hold the engine to.
"""

from __future__ import annotations

from audience_pipeline.identity.graph import resolve_identities
from audience_pipeline.identity.result import IdentityResult, profile_id
from audience_pipeline.identity.sequential import resolve_sequential

__all__ = ["IdentityResult", "profile_id", "resolve_identities", "resolve_sequential"]
