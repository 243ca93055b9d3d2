"""Parts of the incremental recompute (`audience_pipeline.incremental` is the entry point).

- `reads`: which events each level's results read (names, windows, cuts), hence which events
  can change a result when the as-of moves, and which events an account pass needs.
- `known`: run the engine over messages whose profiles are already known (no identity graph).
- `merge`: replace some entities' rows in the previous tables, as a full run would lay them out.
- `keys`: which messages at the new as-of the previous state held (by source and line).
- `state`: what a run leaves for the next one, and how it is kept on disk.
"""
