"""The state of one block being generated: its random stream, clock, counters and sessions."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from audience_pipeline.demo.bad_lines import bad_line
from audience_pipeline.demo.catalog import BAD_LINE_MARKER, HOUR, HOUR_WEIGHT
from audience_pipeline.demo.clock import Clock, uuid
from audience_pipeline.demo.world import Account, Person, World


@dataclass
class Tally:
    """Counters of one block, summed into GenerateStats by the parent process."""

    lines: int = 0
    messages: int = 0
    duplicates: int = 0
    future: int = 0
    bad_lines: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    by_event: Counter[str] = field(default_factory=Counter)


class BlockGen:
    """Generates the sessions of one block; sessions are sorted by start time when done."""

    def __init__(self, world: World, rnd: random.Random) -> None:
        self.w = world
        self.rnd = rnd
        self.clock = Clock()
        self.tally = Tally()
        self.sessions: list[tuple[int, list[bytes]]] = []  # (session start, its lines)
        self.budget = 1 << 62  # lines this block may hold
        self.accounts: dict[int, Account] = {}

    def session_start(self, lo: int, hi: int) -> int:
        rand = self.rnd.random
        t = lo
        for _ in range(20):
            t = lo + int((hi - lo) * rand())
            if rand() < HOUR_WEIGHT[(t // HOUR) % 24]:
                return t
        return t

    def pick(self, t: int) -> Person:
        rand = self.rnd.random
        w = self.w
        born = w.born_by(t)
        i = int(born * rand() ** 1.5)
        for _ in range(4):  # churned people mostly stay away
            if t < w.churn(i):
                break
            i = int(born * rand() ** 1.5)
        return Person(w, i)

    def account(self, a: int) -> Account:
        acct = self.accounts.get(a)
        if acct is None:
            acct = self.accounts[a] = Account(self.w, a)
        return acct

    def bad(self, kind: str, t: int) -> None:
        mid = f"{BAD_LINE_MARKER}{kind}-{self.rnd.getrandbits(48):012x}"
        ts = self.clock.iso(t)
        anon = uuid(self.rnd.getrandbits(64))
        self.sessions.append((t, [bad_line(kind, mid, ts, anon)]))
        self.tally.lines += 1
        self.tally.bad_lines[kind] += 1
