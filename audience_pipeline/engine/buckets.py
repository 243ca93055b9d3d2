"""One level evaluated a bucket of entities at a time, so memory follows a bucket, not the data.

Every trait, event condition and funnel of a level is per entity, so the entities can be split
into buckets and each bucket evaluated alone over its own events by the same `evaluate_level`;
the per-entity rows are then concatenated. The one thing that crosses entities is a score's rank
(SPEC 7: a score ranks every entity of its level), so with scores a first round takes each
bucket's raw score values, ranks them all together, and hands the ranked scores to every bucket's
evaluation as given values (conditions and funnels may read them).

Where a bucket's events come from (`BucketedEvents`): filters of a plan over frames in memory,
or, when the plan reads the normalized events from disk, one streaming write of the plan into
Arrow IPC files per bucket (a spill), read back one bucket at a time.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from audience_pipeline.engine.columns import ENTITY
from audience_pipeline.engine.level import LevelResult, evaluate_level
from audience_pipeline.engine.scores import score_from_raw
from audience_pipeline.engine.traitvalues import computed_column
from audience_pipeline.ir import nodes as ir

log = logging.getLogger(__name__)

BUCKET = "_bucket"
# Bytes a level's evaluation holds per event of its bucket while it runs: the event columns
# it reads, the staged masks and values, and the group-by state (measured at 2M and 10M events
# of the benchmark space: about 230 bytes an event for the loaded columns and 300 more at the
# fused group-by's peak). Generous on purpose: a bucket too many costs a little time, a bucket
# too few can cost the machine.
LEVEL_BYTES_PER_EVENT = 700
# Bytes per message held through a run whatever the buckets (the thin message columns, the
# identity resolution's transient tables, the profile codes): the rest of the limit is the
# levels' share.
HELD_BYTES_PER_MESSAGE = 450
MIN_LEVEL_SHARE = 0.25  # of the limit, however many messages there are
MAX_BUCKETS = 256


def choose_buckets(events: int, messages: int, memory_limit: int | None) -> int:
    """How many buckets keep one bucket's level evaluation within what `memory_limit` leaves.

    None (no limit) gives one bucket: everything at once, as fast as memory allows.
    """
    if memory_limit is None or events == 0:
        return 1
    share = max(memory_limit - messages * HELD_BYTES_PER_MESSAGE, memory_limit * MIN_LEVEL_SHARE)
    return max(1, min(MAX_BUCKETS, math.ceil(events * LEVEL_BYTES_PER_EVENT / share)))


def profile_bucket(count: int, profiles: int | None = None) -> pl.Expr:
    """The bucket of a profile (its dense integer code in `entity_id`).

    With `profiles` (codes are 0..profiles-1): contiguous ranges of codes, so the buckets' rows
    in bucket order are already in code order (no sort of every entity's row at the end);
    else code % count.
    """
    if profiles is None:
        return (pl.col(ENTITY) % count).cast(pl.Int32)
    size = max(1, -(-profiles // count))
    return (pl.col(ENTITY) // size).cast(pl.Int32)


def account_bucket(count: int) -> pl.Expr:
    """The bucket of an account (its groupId text in `entity_id`); a fixed seed keeps it stable
    between the spill written and the entities filtered in one run."""
    return (pl.col(ENTITY).hash(seed=20261205) % count).cast(pl.Int32)


@dataclass
class BucketedEvents:
    """A level's events, `frame(b)` giving those of bucket `b`'s entities.

    `plan`: the level's events (an `entity_id` column). `spill`: a folder to write the plan into,
    one file set per bucket, with Polars' streaming sink (one pass over the plan's input, which
    then never needs to be in memory at once); None filters the plan per bucket (its frames are
    in memory already).
    """

    plan: pl.LazyFrame
    count: int
    key: pl.Expr
    spill: Path | None = None
    _schema: pl.Schema | None = None

    def __post_init__(self) -> None:
        self._schema = self.plan.collect_schema()
        if self.spill is not None and self.count > 1:
            started = time.perf_counter()
            # Arrow IPC: written and read back at about the cost of copying the columns (a
            # Parquet spill cost twice as much to write); it also keeps the event-name Enum.
            self.plan.with_columns(self.key.alias(BUCKET)).sink_ipc(
                pl.PartitionBy(self.spill, key=BUCKET, include_key=False),
                mkdir=True,
                engine="streaming",
                compression="lz4",
            )
            log.debug("spill %s: %.2fs", self.spill.name, time.perf_counter() - started)
            # Read from the spill from now on: the plan's inputs (lookup arrays, frames) go.
            self.plan = pl.LazyFrame(schema=self._schema)

    def frame(self, bucket: int) -> pl.DataFrame:
        if self.count == 1:
            return self.plan.collect(engine="streaming" if self.spill is not None else "auto")
        if self.spill is None:
            return self.plan.filter(self.key == bucket).collect()
        folder = self.spill / f"{BUCKET}={bucket}"
        if not folder.exists():  # no entity of this bucket has an event
            return pl.DataFrame(schema=self._schema)
        return pl.scan_ipc(folder / "*.ipc").collect()

    def scan(self) -> pl.LazyFrame:
        """Every bucket's events as one lazy scan (the spill when written, else the plan)."""
        if self.spill is not None and self.count > 1:
            files = sorted(self.spill.glob(f"{BUCKET}=*/*.ipc"))
            if not files:
                return pl.LazyFrame(schema=self._schema)
            return pl.scan_ipc(files)
        return self.plan


def evaluate_bucketed(
    events: BucketedEvents,
    *,
    entities: pl.DataFrame,
    custom: pl.DataFrame,
    custom_keys: set[str],
    traits: list[ir.Trait],
    conditions: dict[ir.EventCond, str],
    funnels: dict[ir.Funnel, str],
    as_of: datetime,
    overrides: pl.DataFrame | None = None,
) -> LevelResult:
    """`evaluate_level` over every entity, one bucket of `events.count` at a time.

    `overrides`: entity_id and score columns to take as given (explain takes the run's scores);
    without them, scores are ranked over every bucket's raw values.
    """
    common = {"custom_keys": custom_keys, "as_of": as_of}
    if events.count == 1:
        return evaluate_level(events=events.frame(0).lazy(), entities=entities.lazy(),
                              custom=custom.lazy(), traits=traits, conditions=conditions,
                              funnels=funnels, overrides=overrides, **common)  # type: ignore[arg-type]  # fmt: skip

    def part(bucket: int) -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame]:
        mine = events.key == bucket
        return events.frame(bucket).lazy(), entities.filter(mine).lazy(), custom.filter(mine).lazy()

    scores = [t for t in traits if t.kind == "score"]
    ranked = overrides
    if scores and ranked is None:
        columns = [computed_column(t.key) for t in scores]
        raw = []
        for bucket in range(events.count):
            bucket_events, bucket_entities, bucket_custom = part(bucket)
            level = evaluate_level(events=bucket_events, entities=bucket_entities,
                                   custom=bucket_custom, traits=scores, conditions={},
                                   funnels={}, rank_scores=False, **common)  # type: ignore[arg-type]  # fmt: skip
            raw.append(level.frame.select(ENTITY, *columns))
        ranked = pl.concat(raw).with_columns(score_from_raw(c).alias(c) for c in columns)
    frames = _Frames(
        None if events.spill is None else events.spill.with_name(f"{events.spill.name}-rows")
    )
    result: LevelResult | None = None
    for bucket in range(events.count):
        started = time.perf_counter()
        bucket_events, bucket_entities, bucket_custom = part(bucket)
        given = None if ranked is None else ranked.filter(events.key == bucket)
        result = evaluate_level(events=bucket_events, entities=bucket_entities,
                                custom=bucket_custom, traits=traits, conditions=conditions,
                                funnels=funnels, overrides=given, **common)  # type: ignore[arg-type]  # fmt: skip
        del bucket_events
        frames.add(result.frame.sort(ENTITY))
        result = LevelResult(result.frame.clear(), result.traits)
        log.debug("bucket %d/%d: %.2fs", bucket + 1, events.count, time.perf_counter() - started)
    assert result is not None
    whole = frames.whole()
    # Buckets of contiguous entity ranges come in order already (`profile_bucket`).
    if not whole.get_column(ENTITY).is_sorted():
        whole = whole.sort(ENTITY)
    return LevelResult(whole, result.traits)


class _Frames:
    """Each bucket's per-entity rows: kept in memory, or, with a folder, written there as the
    bucket ends and read back once every bucket is done (the rows of the buckets before do not
    sit beside the next bucket's evaluation)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.frames: list[pl.DataFrame] = []
        self.files: list[Path] = []
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def add(self, frame: pl.DataFrame) -> None:
        if self.folder is None:
            self.frames.append(frame)
            return
        path = self.folder / f"{len(self.files)}.ipc"
        frame.write_ipc(path, compression="lz4")
        self.files.append(path)

    def whole(self) -> pl.DataFrame:
        """Every bucket's rows (columns a bucket left all null take the others' types)."""
        frames = self.frames or [pl.read_ipc(path) for path in self.files]
        for path in self.files:
            path.unlink()
        return pl.concat(frames, how="vertical_relaxed")


__all__ = [
    "BucketedEvents",
    "account_bucket",
    "choose_buckets",
    "evaluate_bucketed",
    "profile_bucket",
]
