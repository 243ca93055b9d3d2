"""Explain: an audience's condition tree with each node's value for one profile or account."""

from __future__ import annotations

from audience_pipeline.explain.explainer import (
    Explainer,
    LevelMismatch,
    UnknownAudience,
    UnknownEntity,
    compile_for_run,
)

__all__ = ["Explainer", "LevelMismatch", "UnknownAudience", "UnknownEntity", "compile_for_run"]
