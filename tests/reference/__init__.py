"""An independent, brute-force reference evaluator of SPEC sections 1-6 (see DECISIONS.md)."""

from __future__ import annotations

from tests.reference.evaluator import RefResult, evaluate

__all__ = ["RefResult", "evaluate"]
