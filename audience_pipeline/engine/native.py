"""Trait columns as analysts read them: moved to `audience_pipeline.tables.native` (shared by
every engine); imported here for the Polars engine's callers."""

from audience_pipeline.tables.native import is_mixed, native_column, native_traits

__all__ = ["is_mixed", "native_column", "native_traits"]
