"""Stateless ids and fast timestamps: people need no stored state, text needs no datetime per line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from audience_pipeline.demo.catalog import HOUR, MIN

_MASK = (1 << 64) - 1


def mix(x: int) -> int:
    """splitmix64 finalizer: a cheap, well-spread hash so people need no stored state."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def uuid(h: int) -> str:
    s = f"{h:016x}{mix(h):016x}"
    return f"{s[:8]}-{s[8:12]}-4{s[13:16]}-a{s[17:20]}-{s[20:32]}"


class Clock:
    """ISO-8601 text for epoch milliseconds from cached pieces ("date and hour", "minute",
    "seconds.millis"): formatting a datetime per message was the generator's hot spot."""

    _minutes = tuple(f"{m:02d}:" for m in range(60))
    _tails: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._hours: dict[int, str] = {}
        if not Clock._tails:
            Clock._tails = tuple(f"{s:02d}.{ms:03d}Z" for s in range(60) for ms in range(1000))

    def iso(self, ms: int) -> str:
        hour, rest = divmod(ms, HOUR)
        head = self._hours.get(hour)
        if head is None:
            head = datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%dT%H:")
            self._hours[hour] = head
        minute, rest = divmod(rest, MIN)
        return head + self._minutes[minute] + self._tails[rest]

    def iso_after(self, ms: int, text: str, later: int) -> str:
        """iso(later), reusing the hour head of `text` = iso(ms) when both share the hour."""
        if later // HOUR != ms // HOUR:
            return self.iso(later)
        minute, rest = divmod(later % HOUR, MIN)
        return text[:14] + self._minutes[minute] + self._tails[rest]

    @staticmethod
    def iso_offset(ms: int, minutes: int) -> str:
        """The same instant written in a local time with an explicit offset (server libraries)."""
        zone = timezone(timedelta(minutes=minutes))
        when = datetime.fromtimestamp(ms // 1000, zone).replace(microsecond=ms % 1000 * 1000)
        return when.isoformat(timespec="milliseconds")
