"""Dagster orchestration: the only package that imports dagster.

`audience_pipeline.orchestration.definitions.defs` is the code location (see workspace.yaml).
"""
