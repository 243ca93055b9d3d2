"""Messages keyed across runs: which of the messages at the new as-of the previous state held.

The state knows messages by (source, line): seq numbers are given afresh by every ingestion.
Both sides are coded as one Int64 each (the source's code in the high bits, the line below) and
joined; a repeated key cannot be told apart and sends the run to a full recompute.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from audience_pipeline.delta.merge import NeedsFull

MESSAGE_KEY = ["source", "line"]


def in_time(as_of: datetime) -> pl.Expr:
    """Messages at or before the as-of (SPEC section 5's cut)."""
    return pl.col("timestamp") <= as_of


def _sorted_seqs(seqs: pl.Series) -> pl.Series:
    return seqs.unique().sort()


def rows_of(events: pl.DataFrame, seqs: pl.Series, columns: list[str]) -> pl.DataFrame:
    """These columns of the rows of `events` (sorted by seq) with these seqs, found by binary
    search, not a scan; narrow, as a row of every flattened column costs far more."""
    wanted = _sorted_seqs(seqs)
    return events.select(columns)[events["seq"].search_sorted(wanted)]


@dataclass
class Current:
    """The messages at or before the new as-of, keyed to the previous state (seq order)."""

    frame: pl.DataFrame  # seq, source, line, type, event, timestamp, profile_id, group_id
    fresh: pl.Series  # seqs of messages the previous state did not hold
    removed: pl.DataFrame  # state rows whose message is gone
    key: pl.Series  # each row's message key (`_message_keys`)
    codes: dict[str, int]  # the source codes of those keys

    def locate(self, rows: pl.DataFrame) -> pl.DataFrame:
        """`rows` (source, line, ...) with the seq of their message instead of its key; rows
        whose message is not here are left out. For a few rows: one membership test over the
        keys, no join of every message."""
        known = rows.filter(pl.col("source").is_in(list(self.codes)))
        code = known["source"].replace_strict(self.codes, return_dtype=pl.Int64)
        keyed = known.drop(MESSAGE_KEY).with_columns(key=code * (1 << 32) + known["line"])
        here = pl.DataFrame({"key": self.key, "seq": self.frame["seq"]}).filter(
            pl.col("key").is_in(keyed["key"].implode())
        )
        return here.join(keyed, on="key", how="inner").drop("key").sort("seq")


def _runs(source: pl.Series) -> tuple[list[str], np.ndarray]:
    """The values and lengths of the runs of equal sources (no nulls). Sources come in long
    runs (a file's lines are read together), so the runs are enough and no row is hashed."""
    runs = source.rle()
    return runs.struct.field("value").to_list(), runs.struct.field("len").to_numpy()


def _message_keys(
    runs: tuple[list[str], np.ndarray], line: pl.Series, codes: dict[str, int]
) -> pl.Series:
    """One Int64 per (source, line): the source's code in the high bits, the line below."""
    values, lengths = runs
    run_codes = np.array([codes[v] for v in values], dtype=np.int64)
    # Each run's code repeated over its rows.
    return pl.Series("key", np.repeat(run_codes << 32, lengths) + line.to_numpy())


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _in_time(frame: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """The rows at or before as-of, one chunk per column.

    Column by column, two at a time: a DataFrame filter leaves each column in ~100 chunks,
    and every later select of some columns beside a one-chunk column would realign them."""
    mask = frame.select(in_time(as_of).fill_null(False)).to_series()
    if mask.all():  # the usual case: nothing after as-of
        return frame.rechunk()
    with ThreadPoolExecutor(max_workers=2) as pool:
        return pl.DataFrame(pool.map(lambda column: column.filter(mask).rechunk(), frame))


def current_messages(events: pl.DataFrame, as_of: datetime, old: pl.DataFrame) -> Current:
    frame = _in_time(
        events.select(
            "seq",
            *MESSAGE_KEY,
            "type",
            "event",
            "timestamp",
            pl.when(pl.col("type") == "group").then(pl.col("group_id")).alias("group_id"),
        ),
        as_of,
    )
    if not frame["seq"].is_sorted():  # the input contract; binary searches rely on it
        raise NeedsFull("events not sorted by seq")
    unique = NeedsFull("messages without a unique (source, line)")
    lines = pl.concat([frame["line"], old["line"]])
    if lines.null_count() or frame["source"].null_count() or old["source"].null_count():
        raise unique
    if lines.len() and not (_int(lines.min()) >= 0 and _int(lines.max()) < 1 << 32):
        raise NeedsFull("line numbers outside a message key's range")
    runs, old_runs = _runs(frame["source"]), _runs(old["source"])
    codes = {name: code for code, name in enumerate(sorted({*runs[0], *old_runs[0]}))}
    key = _message_keys(runs, frame["line"], codes)
    old_key = _message_keys(old_runs, old["line"], codes)
    # Files are read in name order and lines in order, so keys usually come sorted; then the
    # join merges instead of hashing (and a repeat shows as two equal neighbours).
    if key.is_sorted() and old_key.is_sorted():
        if (key.diff() == 0).any():
            raise unique
        key, old_key = key.set_sorted(), old_key.set_sorted()
    elif key.is_duplicated().any():
        raise unique
    old_rows = _old_rows(key, old_key)
    matched = old_rows.drop_nulls()
    if matched.len() == old.height:
        removed = old.clear()
    else:
        kept = pl.zeros(old.height, dtype=pl.Boolean, eager=True).scatter(matched, True)
        removed = old.filter(~kept)
    fresh = frame["seq"].filter(old_rows.is_null())
    profiles = frame.with_columns(old["profile_id"].gather(old_rows))
    return Current(profiles, fresh, removed, key, codes)


def _old_rows(key: pl.Series, old_key: pl.Series) -> pl.Series:
    """For each key, the row of `old_key` holding it (null: none), as UInt32.

    Both sorted (the usual case): a binary search of every key in the old ones, in numpy
    (about a tenth of a hash join's time at 10M keys). Otherwise a join of the keys alone
    (row for row with `key`; joining the frame itself would copy every column again)."""
    if key.flags["SORTED_ASC"] and old_key.flags["SORTED_ASC"]:
        keys, olds = key.to_numpy(), old_key.to_numpy()
        if olds.size == 0:
            return pl.Series("_old", [None] * keys.size, dtype=pl.UInt32)
        at = np.minimum(np.searchsorted(olds, keys), olds.size - 1)
        hit = olds[at] == keys
        rows = pl.Series("_old", at.astype(np.uint32))
        return pl.select(pl.when(pl.Series(hit)).then(rows)).to_series().alias("_old")
    joined = key.to_frame().join(
        old_key.to_frame().with_row_index("_old"), on="key", how="left", maintain_order="left"
    )
    return joined["_old"]


__all__ = ["MESSAGE_KEY", "Current", "current_messages", "in_time", "rows_of"]
