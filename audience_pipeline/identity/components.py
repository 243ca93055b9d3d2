"""Connected components of an integer edge list, in Polars.

Each round every endpoint hooks onto its smallest neighbour, pointer jumping flattens the hooks
into a forest of depth one, and the edge list is contracted to those roots. Every edge forces a
hook, so the number of roots drops each round; on real identity graphs (stars around devices and
users) a handful of rounds suffice, and pointer jumping keeps long chains to O(log n) gathers.
"""

from __future__ import annotations

import logging

import polars as pl

log = logging.getLogger(__name__)


def _compress(label: pl.Series) -> pl.Series:
    """Follow parent pointers until every node points at its root (parent < child always)."""
    while True:
        jumped = label.gather(label)
        if (jumped == label).all():
            return label
        label = jumped


def connected_components(n_nodes: int, edges: pl.DataFrame) -> pl.Series:
    """Label each node 0..n_nodes-1 with the smallest node id of its connected component.

    Args:
        n_nodes: number of nodes; node ids are 0..n_nodes-1.
        edges: columns ``a`` and ``b`` (integer node ids), undirected; duplicates and
            self-loops are fine.

    Returns:
        An Int64 Series of length ``n_nodes``: the component label of each node.
    """
    # Int32 node ids where they fit: the edge list is one row per identifier occurrence.
    dtype = pl.Int32 if n_nodes < 2**31 else pl.Int64
    label = pl.int_range(0, n_nodes, dtype=dtype, eager=True).alias("label")
    current = (
        edges.select(pl.col("a").cast(dtype), pl.col("b").cast(dtype))
        .filter(pl.col("a") != pl.col("b"))
        .unique()
    )
    rounds = 0
    while current.height:
        rounds += 1
        both = pl.concat(
            [
                current.select(x=pl.col("a"), y=pl.col("b")),
                current.select(x=pl.col("b"), y=pl.col("a")),
            ]
        )
        hooks = both.group_by("x").agg(pl.col("y").min()).filter(pl.col("y") < pl.col("x"))
        # Every endpoint is a root here, so hooking it moves its whole tree.
        label = label.scatter(hooks["x"], hooks["y"])
        label = _compress(label)
        current = (
            current.select(a=label.gather(current["a"]), b=label.gather(current["b"]))
            .filter(pl.col("a") != pl.col("b"))
            .unique()
        )
    log.debug("connected components: %d nodes, %d rounds", n_nodes, rounds)
    return label.cast(pl.Int64)
