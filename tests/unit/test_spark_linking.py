"""The per-component rule the Spark engine runs (`spark.linking`) against SPEC's reference
(`identity.sequential.link_in_order`) on random messages."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from audience_pipeline.identity.result import profile_id
from audience_pipeline.identity.sequential import link_in_order
from audience_pipeline.spark.linking import link_component

TYPES = ("user_id", "email", "anonymous_id")
LIMITS = {"user_id": 1, "email": 2, "anonymous_id": 3}

identifier = st.tuples(st.sampled_from(range(3)), st.sampled_from("abcde"))
messages = st.lists(st.lists(identifier, min_size=1, max_size=4, unique=True), min_size=1,
                    max_size=25)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(messages)
def test_link_component_is_the_reference_rule(drawn: list[list[tuple[int, str]]]) -> None:
    ordered = [sorted(set(ids)) for ids in drawn]
    nodes = {ident: n for n, ident in enumerate(sorted({i for ids in ordered for i in ids}), 1)}
    reference = link_in_order([[(TYPES[t], v) for t, v in ids] for ids in ordered], LIMITS)
    want = {(TYPES[t], v): pid for pid, t, v in
            ((p, TYPES.index(t), v) for p, t, v in reference.identities)}  # fmt: skip
    rows = [(step, pos, nodes[ident], ident[0]) for step, ids in enumerate(ordered, 1)
            for pos, ident in enumerate(ids, 1)]  # fmt: skip
    limits = {TYPES.index(t): n for t, n in LIMITS.items()}
    by_node = {n: ident for ident, n in nodes.items()}
    creator = {step: ids[0] for step, ids in enumerate(ordered, 1)}
    got = {}
    for node, trank, prof in link_component(rows, limits):
        t, v = by_node[node]
        assert trank == t
        got[(TYPES[t], v)] = profile_id(TYPES[creator[prof][0]], creator[prof][1])
    assert got == want
