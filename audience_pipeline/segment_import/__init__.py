"""`import-segment`: Segment's audience query language into our definitions."""

from __future__ import annotations

from audience_pipeline.segment_import.importer import ImportReport, import_segment
from audience_pipeline.segment_import.parser import QuerySyntaxError, parse_query

__all__ = ["ImportReport", "QuerySyntaxError", "import_segment", "parse_query"]
