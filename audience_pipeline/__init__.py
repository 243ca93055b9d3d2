"""audience_pipeline: audiences and traits from Segment-style events (see README.md)."""

from audience_pipeline.engine.memory import configure_allocator

# Before anything imports Polars: its allocator reads this setting once, at load.
configure_allocator()
