"""Lower bounds beside `compute_vs_floor`: what parts of any exact compute cost on their own.

    python benchmarks/floors.py --events 10000000 [--repeat 3]

Reads `benchmarks/data/normalized-<N>/events.parquet` (made by `benchmarks/run.py`) and times,
in this process, medians of --repeat runs, wall and CPU seconds:

- `floor`: `benchmarks/run.py`'s hand-written group-by of 10 traits (it groups messages by their
  first identifier value: no identity resolution);
- `pairs_numbered`: the distinct (type, value) identifier pairs of every message, alone;
- `identity_read`: the first step every exact identity resolution takes (SPEC 3: every identifier
  of a message joins its profile): every (message, identifier) pair read and each distinct
  (type, value) numbered, then one label-propagation round (each message takes the smallest
  code of its identifiers). The engine needs several rounds, ordering and limits on top;
  this is the part no implementation can skip.

It prints each figure and its ratio to the floor, so `compute_vs_floor`'s goal can be read
against what the first step of identity resolution costs by itself.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

# isort: off
import audience_pipeline  # noqa: E402, F401  (sets the allocator up before Polars loads)
import polars as pl  # noqa: E402

# isort: on

from audience_pipeline.spec.compile import load_space_ir  # noqa: E402
from benchmarks.run import AS_OF, floor_plan  # noqa: E402


def identifier_pairs(events: Path) -> pl.LazyFrame:
    """Every (message, identifier) pair: seq, id_type, id_value."""
    return (
        pl.scan_parquet(events)
        .select("seq", "ids")
        .explode("ids")
        .select(
            "seq", pl.col("ids").struct.field("id_type"), pl.col("ids").struct.field("id_value")
        )
    )


def pairs_numbered_plan(events: Path) -> pl.LazyFrame:
    """The distinct (type, value) pairs alone: the dictionary every identity needs."""
    return identifier_pairs(events).select("id_type", "id_value").unique().select(pl.len())


def identity_read_plan(events: Path) -> pl.LazyFrame:
    """Every (message, identifier) numbered, then one round of smallest-code labels."""
    pairs = identifier_pairs(events)
    codes = pairs.select("id_type", "id_value").unique().with_row_index("code")
    coded = pairs.join(codes, on=["id_type", "id_value"]).select("seq", "code")
    first = coded.group_by("seq").agg(pl.col("code").min().alias("label"))
    return coded.join(first, on="seq").group_by("code").agg(pl.col("label").min()).select(pl.len())


def timed(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    normalized = ROOT / "data" / f"normalized-{args.events}"
    _, space = load_space_ir(ROOT / "definitions", AS_OF)
    floor = floor_plan(normalized, space)
    plans = {
        "floor": floor,
        "pairs_numbered": pairs_numbered_plan(normalized / "events.parquet"),
        "identity_read": identity_read_plan(normalized / "events.parquet"),
    }
    figures = {name: timed(plan.collect, args.repeat) for name, plan in plans.items()}
    (floor_wall, floor_cpu), (id_wall, id_cpu) = figures["floor"], figures["identity_read"]
    figures["floor_plus_identity_read"] = (floor_wall + id_wall, floor_cpu + id_cpu)
    for name, (wall, cpu) in figures.items():
        print(f"{name}_s: {wall:.2f}")
        print(f"{name}_cpu_s: {cpu:.2f}")
        if name != "floor":
            print(f"{name}_vs_floor: {wall / floor_wall:.2f}")
            print(f"{name}_vs_floor_cpu: {cpu / floor_cpu:.2f}")


if __name__ == "__main__":
    main()
