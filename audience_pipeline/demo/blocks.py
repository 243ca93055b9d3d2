"""One block of one file (about 4,000 lines), generated in a worker process or in-process.

Each block is seeded by (seed, file, block), so the output is the same bytes whatever the number
of workers.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from dataclasses import dataclass, field

from audience_pipeline.demo.bad_lines import bad_line
from audience_pipeline.demo.catalog import BAD_LINE_MARKER, HOUR, HOUR_WEIGHT
from audience_pipeline.demo.clock import Clock, uuid
from audience_pipeline.demo.sessions import birth_session, regular_session
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


@dataclass(frozen=True)
class Job:
    """One block of one file: its time slice, its number of lines, its bad lines."""

    seed: int
    profiles: int
    accounts: int
    start: int
    end: int
    file: int
    block: int
    lo: int
    hi: int
    goal: int
    bad_kinds: tuple[str, ...]
    compress: bool


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


_WORLDS: dict[tuple[int, int, int, int, int], World] = {}


def _world(job: Job) -> World:
    """The job's world, kept while the jobs of one run follow each other in a process."""
    key = (job.seed, job.profiles, job.accounts, job.start, job.end)
    world = _WORLDS.get(key)
    if world is None:
        _WORLDS.clear()
        world = _WORLDS[key] = World(*key)
    return world


def run_job(job: Job) -> tuple[bytes, Tally]:
    """Generate one block (in a worker process or in-process): its lines and its counters."""
    world = _world(job)
    gen = BlockGen(world, random.Random((job.seed * 1_000_003 + job.file) * 1_000_003 + job.block))
    for kind in job.bad_kinds:
        gen.bad(kind, gen.rnd.randrange(job.lo, max(job.lo + 1, job.hi)))
    gen.budget = job.goal  # the last session is cut short: every block has exactly its lines
    for i in world.births_in(job.lo, job.hi):
        if gen.tally.lines >= job.goal:
            break  # more people than lines asked for: the rest never show up
        p = Person(world, i)
        birth_session(
            gen, p, p.birth + gen.rnd.randrange(max(1, world.span // max(1, world.newcomers)))
        )
    while gen.tally.lines < job.goal:
        t = gen.session_start(job.lo, job.hi)
        regular_session(gen, gen.pick(t), t)
    return _pack(gen, compress=job.compress), gen.tally


def _pack(gen: BlockGen, *, compress: bool) -> bytes:
    gen.sessions.sort(key=lambda item: item[0])
    chunk = [line for _, lines in gen.sessions for line in lines]
    data = b"\n".join(chunk) + b"\n" if chunk else b""
    if compress:
        # One gzip member per block, compressed where it was generated: a file is the members
        # one after another, which gzip readers (Python, zcat, polars, DuckDB) read as one stream.
        packer = zlib.compressobj(1, zlib.DEFLATED, 31)
        data = packer.compress(data) + packer.flush()
    return data
