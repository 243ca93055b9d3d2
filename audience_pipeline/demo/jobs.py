"""One block of one file (about 4,000 lines), generated in a worker process or in-process.

Each block is seeded by (seed, file, block), so the output is the same bytes whatever the number
of workers.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

from audience_pipeline.demo.blocks import BlockGen, Tally
from audience_pipeline.demo.sessions import birth_session, regular_session
from audience_pipeline.demo.world import Person, World


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
