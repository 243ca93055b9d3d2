"""Edit impact (`audience-pipeline diff`): the definitions on disk against the last run."""

from __future__ import annotations

from audience_pipeline.impact.evaluate import edit_impact
from audience_pipeline.impact.model import AudienceImpact, compare_memberships

__all__ = ["AudienceImpact", "compare_memberships", "edit_impact"]
