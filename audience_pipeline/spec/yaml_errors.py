"""A YAML syntax error as one line with its line and column (1-based, as editors count)."""

from __future__ import annotations

import yaml


def describe_yaml_error(error: yaml.YAMLError) -> str:
    """`line 3, column 7: mapping values are not allowed here` (PyYAML's problem, located)."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "invalid YAML"
        if mark is not None:
            return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
        return str(problem)
    return str(error).splitlines()[0] if str(error) else "invalid YAML"


__all__ = ["describe_yaml_error"]
