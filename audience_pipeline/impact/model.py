"""Per-audience impact: size now and after, who enters and who exits."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

KEYS = ["audience_key", "level", "entity_id"]


@dataclass(frozen=True)
class AudienceImpact:
    """One audience's move from the last run (``now``) to the definitions on disk (``after``).

    ``status``: ``new`` (not in the last run), ``deleted`` (no longer defined) or ``existing``.
    Samples are the first entity ids in text order, each with a readable label (the profile's
    highest-priority identifier, ``user_id:u1``; an account's groupId).
    """

    audience_key: str
    level: str
    status: str
    size_now: int
    size_after: int
    entering: int
    exiting: int
    entering_sample: list[dict[str, str]] = field(default_factory=list)
    exiting_sample: list[dict[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.entering or self.exiting) or self.status != "existing"

    def as_dict(self) -> dict[str, object]:
        return {
            "audience_key": self.audience_key,
            "level": self.level,
            "status": self.status,
            "size_now": self.size_now,
            "size_after": self.size_after,
            "entering": self.entering,
            "exiting": self.exiting,
            "entering_sample": self.entering_sample,
            "exiting_sample": self.exiting_sample,
        }


# (entity ids, level) -> entity id -> label; only ever asked about a sample's few ids.
Labeler = Callable[[list[str], str], Mapping[str, str]]


def _no_labels(ids: list[str], level: str) -> Mapping[str, str]:
    return {}


def _sample(ids: pl.DataFrame, size: int, level: str, label: Labeler) -> list[dict[str, str]]:
    chosen = ids["entity_id"].sort().head(size).to_list()
    labels = label(chosen, level) if chosen else {}
    return [{"entity_id": e, "label": labels.get(e, e)} for e in chosen]


def compare_memberships(
    now: pl.DataFrame,
    after: pl.DataFrame,
    audiences: Sequence[tuple[str, str, str]],
    *,
    sample: int = 5,
    now_labels: Labeler = _no_labels,
    after_labels: Labeler = _no_labels,
) -> list[AudienceImpact]:
    """Impact of each audience in ``audiences`` (key, level, status), in that order.

    Args:
        now: memberships of the last run (audience_key, level, entity_id).
        after: memberships the definitions on disk give (same columns).
        audiences: which audiences to report, with their level and status.
        sample: how many entering and exiting entities to list.
        now_labels / after_labels: label sampled ids (exiting ones from the last run's identities,
            entering ones from the recomputed ones).
    """
    wanted = [key for key, _, _ in audiences]
    now = now.select(KEYS).filter(pl.col("audience_key").is_in(wanted))
    after = after.select(KEYS).filter(pl.col("audience_key").is_in(wanted))
    entering = after.join(now, on=KEYS, how="anti")
    exiting = now.join(after, on=KEYS, how="anti")
    out = []
    for key, level, status in audiences:

        def rows(frame: pl.DataFrame, key: str = key) -> pl.DataFrame:
            return frame.filter(pl.col("audience_key") == key)

        enter, leave = rows(entering), rows(exiting)
        out.append(AudienceImpact(
            audience_key=key, level=level, status=status,
            size_now=rows(now).height, size_after=rows(after).height,
            entering=enter.height, exiting=leave.height,
            entering_sample=_sample(enter, sample, level, after_labels),
            exiting_sample=_sample(leave, sample, level, now_labels),
        ))  # fmt: skip
    return out


__all__ = ["AudienceImpact", "compare_memberships"]
