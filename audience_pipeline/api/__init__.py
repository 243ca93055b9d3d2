"""The Profile API: Segment-compatible HTTP reads of profiles, traits and memberships."""

from __future__ import annotations
