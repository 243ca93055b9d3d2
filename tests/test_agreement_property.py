"""The engine agrees exactly with the brute-force reference evaluator on random scenarios."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from tests.agreement import Scenario, differences
from tests.reference.strategies import scenario


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenario())
def test_engine_agrees_with_reference(drawn: tuple) -> None:
    files, space, traits, audiences, as_of = drawn
    case = Scenario(files, space, traits, audiences, as_of)
    with tempfile.TemporaryDirectory() as tmp:
        problems = differences(case, Path(tmp))
    assert not problems, "\n".join(problems[:20])
