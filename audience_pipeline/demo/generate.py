"""A realistic Segment-spec event generator for the demo space and the benchmarks.

It simulates a web + mobile shop with B2B accounts: anonymous visitors who later sign up
(identify with userId + anonymousId + email), an e-commerce funnel, sign-ins, page and screen
calls, email campaigns, group calls with account traits, aliases, retried messages (duplicate
messageIds) and a few unusable lines. Every person and account is a pure function of
(seed, index), so memory stays flat however many events are asked for: nothing is kept per
profile. The period is cut into blocks of about 4,000 lines, each seeded by (seed, file, block):
blocks are generated (and gzip-compressed, one gzip member each) in worker processes and written
in order, so the output is the same bytes whatever the number of workers.

Intentionally unusable lines all carry the marker ``bad-line-<reason>-`` in their text (the
start of their messageId), so tests and users can find them; ``GenerateStats.bad_lines`` counts
them by reason.

Run it as ``python -m audience_pipeline.demo.generate --events 1000000 --out data/events``.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import random
import time
import zlib
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import IO, Any

import orjson

logger = logging.getLogger(__name__)


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(word.strip() for word in text.split(sep))


DEFAULT_AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
BAD_LINE_MARKER = "bad-line-"  # "l", "i", "n" are not hex: no random id contains it
BAD_REASONS = _words(
    "not_json not_an_object unknown_type no_identifier bad_timestamp track_without_event "
    "group_without_group_id"
)

_MASK = (1 << 64) - 1
_DAY = 86_400_000
_HOUR = 3_600_000
_MIN = 60_000
_SEC = 1_000
_BLOCK_LINES = 4_000  # lines per write block: bounds memory and the disorder inside a file

# Traffic by UTC hour (busy evenings, quiet nights); rejection sampling keeps the peak at 1.
_HOUR_WEIGHT = tuple(
    w / 100
    for w in (
        35,
        30,
        25,
        25,
        30,
        35,
        45,
        55,
        65,
        70,
        75,
        80,
        80,
        80,
        80,
        80,
        85,
        90,
        95,
        100,
        100,
        90,
        70,
        50,
    )
)

FIRST_NAMES = _words(
    "james mary robert patricia john jennifer michael linda david elizabeth william barbara richard "
    "susan joseph jessica thomas sarah carlos maria lukas emma hugo lea yuki aiko ravi priya chen "
    "mei omar fatima noah olivia liam sofia"
)
LAST_NAMES = _words(
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez "
    "gonzalez wilson anderson thomas taylor moore jackson martin lee muller schmidt dubois rossi "
    "tanaka sato kumar patel wang li haddad nguyen kowalski"
)
EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "proton.me", "gmx.de")
# country, city, currency; repeated by weight into a 20-slot table
_COUNTRIES = (
    ("US", "New York", "USD", 6),
    ("US", "San Francisco", "USD", 2),
    ("GB", "London", "GBP", 2),
    ("DE", "Berlin", "EUR", 2),
    ("FR", "Paris", "EUR", 2),
    ("CA", "Toronto", "USD", 1),
    ("ES", "Madrid", "EUR", 1),
    ("IT", "Milan", "EUR", 1),
    ("NL", "Amsterdam", "EUR", 1),
    ("JP", "Tokyo", "USD", 1),
    ("IN", "Bangalore", "USD", 1),
)
COUNTRY_TABLE = tuple(c[:3] for c in _COUNTRIES for _ in range(c[3]))
DEVICE_TABLE = ("desktop",) * 9 + ("ios",) * 5 + ("android",) * 4 + ("mobile",) + ("tablet",)
USER_PLANS = ("free",) * 6 + ("pro",) * 3 + ("business",)
ACCOUNT_PLANS = ("free",) * 10 + ("pro",) * 7 + ("business",) * 3
INDUSTRIES = ("retail", "software", "finance", "healthcare", "education", "logistics", "media")
COMPANY_WORDS = ("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay")
CATEGORIES = _words(
    "Electronics Shoes Apparel Home Kitchen Books Toys Beauty Sports Garden Outdoors Jewelry"
)
BRANDS = ("Northwind", "Contoso", "Fabrikam", "Tailspin", "Adventure Works", "Litware", "Proseware")
FEATURES = _words(
    "dashboard reports exports alerts api integrations sso audit_log segments workflows"
)
CAMPAIGNS = (  # source, medium, name
    ("google", "cpc", "brand_search"),
    ("google", "organic", "seo"),
    ("facebook", "social", "spring_sale"),
    ("instagram", "social", "influencers"),
    ("tiktok", "social", "creators"),
    ("bing", "cpc", "generic_search"),
    ("newsletter", "email", "weekly_digest"),
    ("partner", "referral", "affiliates"),
)
EMAIL_CAMPAIGNS = ("weekly_digest", "cart_reminder", "spring_sale", "new_arrivals", "winback")
WEB_PAGES = (  # name, path
    ("Home", "/"),
    ("Category", "/c/"),
    ("Product", "/p/"),
    ("Search", "/search"),
    ("Pricing", "/pricing"),
    ("Blog", "/blog"),
    ("Docs", "/docs"),
    ("Cart", "/cart"),
)
APP_SCREENS = ("Home", "Category", "Product Detail", "Search", "Cart", "Account", "Orders")
SAAS_PAGES = (("Dashboard", "/app"), ("Settings", "/app/settings"), ("Reports", "/app/reports"))
PAYMENT_METHODS = ("card", "paypal", "apple_pay", "klarna")
SIGNUP_METHODS = ("email", "google", "apple", "facebook")
COUPONS = ("WELCOME10", "SPRING20", "FREESHIP", "VIP15")
SITE = "https://shop.example.com"

# Event names the generator emits (track events, plus page/screen calls seen as these names).
EVENT_NAMES = _words(
    "Page Viewed, Screen Viewed, Application Installed, Application Opened, Products Searched, "
    "Product List Viewed, Product Viewed, Product Added, Product Removed, Cart Viewed, "
    "Checkout Started, Payment Info Entered, Coupon Applied, Order Completed, Order Refunded, "
    "Signed Up, Signed In, Logged In, Signed Out, Email Opened, Email Link Clicked, "
    "Feature Used, Report Created, Invite Sent",
    ",",
)


@dataclass
class GenerateStats:
    """What a `generate` run wrote.

    Attributes:
        files: the files written, in time order (file k covers the k-th slice of the period).
        lines: every line written (messages, retried duplicates and bad lines).
        messages: lines that are valid messages, duplicates included.
        duplicates: retried copies of an earlier message (same messageId, later receivedAt).
        bad_lines: intentionally unusable lines by reason (see BAD_REASONS).
        by_type: valid messages by `type`.
        by_event: valid track/page/screen messages by event name (page -> Page Viewed ...).
        future: valid messages whose timestamp is after as-of (a device clock ahead).
        profiles, accounts: the population simulated (not all of them need appear).
        start, as_of: the period covered, (start, as_of].
        seconds: wall time of the run.
    """

    files: list[Path] = field(default_factory=list)
    lines: int = 0
    messages: int = 0
    duplicates: int = 0
    bad_lines: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    by_event: Counter[str] = field(default_factory=Counter)
    future: int = 0
    profiles: int = 0
    accounts: int = 0
    start: datetime = DEFAULT_AS_OF
    as_of: datetime = DEFAULT_AS_OF
    seconds: float = 0.0


def _mix(x: int) -> int:
    """splitmix64 finalizer: a cheap, well-spread hash so people need no stored state."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _uuid(h: int) -> str:
    s = f"{h:016x}{_mix(h):016x}"
    return f"{s[:8]}-{s[8:12]}-4{s[13:16]}-a{s[17:20]}-{s[20:32]}"


class _Clock:
    """ISO-8601 text for epoch milliseconds from cached pieces ("date and hour", "minute",
    "seconds.millis"): formatting a datetime per message was the generator's hot spot."""

    _minutes = tuple(f"{m:02d}:" for m in range(60))
    _tails: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._hours: dict[int, str] = {}
        if not _Clock._tails:
            _Clock._tails = tuple(f"{s:02d}.{ms:03d}Z" for s in range(60) for ms in range(1000))

    def iso(self, ms: int) -> str:
        hour, rest = divmod(ms, _HOUR)
        head = self._hours.get(hour)
        if head is None:
            head = datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%dT%H:")
            self._hours[hour] = head
        minute, rest = divmod(rest, _MIN)
        return head + self._minutes[minute] + self._tails[rest]

    def iso_after(self, ms: int, text: str, later: int) -> str:
        """iso(later), reusing the hour head of `text` = iso(ms) when both share the hour."""
        if later // _HOUR != ms // _HOUR:
            return self.iso(later)
        minute, rest = divmod(later % _HOUR, _MIN)
        return text[:14] + self._minutes[minute] + self._tails[rest]

    @staticmethod
    def iso_offset(ms: int, minutes: int) -> str:
        """The same instant written in a local time with an explicit offset (server libraries)."""
        zone = timezone(timedelta(minutes=minutes))
        when = datetime.fromtimestamp(ms // 1000, zone).replace(microsecond=ms % 1000 * 1000)
        return when.isoformat(timespec="milliseconds")


class _Account:
    __slots__ = (
        "created",
        "employees",
        "group_id",
        "index",
        "industry",
        "name",
        "plans",
        "upgrade_at",
    )

    def __init__(self, world: _World, a: int) -> None:
        h = _mix(world.key ^ 0xACC0 ^ (a << 20))
        self.index = a
        # A few accounts are keyed by an integer groupId (its text is the account id).
        self.group_id: str | int = 50_000 + a if a % 50 == 7 else f"acct_{a:06d}"
        self.name = (
            f"{COMPANY_WORDS[h % len(COMPANY_WORDS)]} {a} {('Inc', 'GmbH', 'Ltd')[(h >> 8) % 3]}"
        )
        plan = ACCOUNT_PLANS[(h >> 12) % len(ACCOUNT_PLANS)]
        upgraded = {"free": "pro", "pro": "business", "business": "business"}[plan]
        self.plans = (plan, upgraded)
        self.upgrade_at = world.start + (h >> 20) % world.span if (h >> 40) % 100 < 20 else 1 << 62
        self.employees = (5, 12, 40, 80, 250, 1200)[(h >> 48) % 6]
        self.industry = INDUSTRIES[(h >> 52) % len(INDUSTRIES)]
        self.created = world.start - (1 + (h >> 56) % 200) * _DAY

    def plan(self, t: int) -> str:
        return self.plans[1] if t >= self.upgrade_at else self.plans[0]


class _Person:
    """Everything about profile i, derived from (seed, i)."""

    __slots__ = (
        "accounts",
        "age",
        "birth",
        "churn",
        "country",
        "email",
        "favorite",
        "first",
        "i",
        "known",
        "last",
        "n_devices",
        "plans",
        "upgrade_at",
        "user_id",
        "vip",
        "work_email",
    )

    def __init__(self, world: _World, i: int) -> None:
        h1 = _mix(world.key ^ (i << 1))
        h2 = _mix(h1 ^ 0x5EED)
        self.i = i
        self.known = h1 % 100 >= 28  # 28% are visitors who never sign up
        self.first = FIRST_NAMES[(h1 >> 8) % len(FIRST_NAMES)]
        self.last = LAST_NAMES[(h1 >> 16) % len(LAST_NAMES)]
        self.country = COUNTRY_TABLE[(h1 >> 24) % len(COUNTRY_TABLE)]
        d = (h1 >> 32) % 10
        self.n_devices = 1 + (d >= 6) + (d >= 9)
        self.birth = world.birth(i, h2)
        self.churn = self.birth + world.lifetime(self.known, h2)
        # A profile keyed by an integer userId (its decimal text is the identifier).
        self.user_id: str | int = 1_000_000 + i if (h1 >> 56) % 100 == 0 else f"u{i:07d}"
        family = i % 500
        owner = i - family if family in (1, 2) and world.person_known(i - family) else i
        self.email = self._email(world, owner)
        self.work_email = (
            f"{self.first}.{self.last}{i}@work{i % 97}.example" if i % 300 == 7 else None
        )
        plan = USER_PLANS[(h2 >> 48) % len(USER_PLANS)]
        self.plans = (plan, "pro" if plan == "free" else plan)
        self.upgrade_at = (
            self.birth + (h1 >> 36) % (60 * _DAY) if (h1 >> 40) % 100 < 20 else 1 << 62
        )
        self.age = 18 + (h1 >> 44) % 55
        self.vip = (h1 >> 50) % 100 < 5
        self.favorite = (h2 >> 4) % len(CATEGORIES)  # half of their product views are in it
        self.accounts: tuple[int, ...] = ()
        if self.known and world.n_accounts and (h2 >> 20) % 100 < 45:
            # Skewed: low account indexes get many members, high ones few or none.
            u = ((h2 >> 28) & 0xFFFF) / 65536.0
            first_acct = int(world.n_accounts * u * u)
            self.accounts = (first_acct,)
            if (h2 >> 44) % 100 < 6:
                self.accounts = (first_acct, (first_acct + 1 + i) % world.n_accounts)

    def _email(self, world: _World, owner: int) -> str:
        h = _mix(world.key ^ (owner << 1))
        first = FIRST_NAMES[(h >> 8) % len(FIRST_NAMES)]
        last = LAST_NAMES[(h >> 16) % len(LAST_NAMES)]
        return f"{first}.{last}{owner}@{EMAIL_DOMAINS[(h >> 4) % len(EMAIL_DOMAINS)]}"

    def plan(self, t: int) -> str:
        return self.plans[1] if t >= self.upgrade_at else self.plans[0]

    def device(self, world: _World, k: int) -> tuple[str, str]:
        """(device type, anonymousId) of device k; k >= n_devices is a new, unseen device."""
        h = _mix(world.key ^ (self.i << 8) ^ k ^ 0xDE71CE)
        return DEVICE_TABLE[h % len(DEVICE_TABLE)], _uuid(h)


@dataclass(frozen=True)
class _Product:
    product_id: str
    sku: str
    name: str
    category: str
    brand: str
    price: float


class _World:
    """The fixed population and catalog; shared read-only by every file."""

    def __init__(self, seed: int, profiles: int, accounts: int, start: int, end: int) -> None:
        self.key = _mix(seed * 0x100000001B3 + 0x1234567)
        self.n_profiles = max(1, profiles)
        self.n_accounts = max(0, accounts)
        self.start, self.end, self.span = start, end, max(1, end - start)
        self.pre_existing = max(1, int(self.n_profiles * 0.35))  # known before the period
        self.newcomers = self.n_profiles - self.pre_existing
        self.products = self._catalog()
        self.by_category = tuple(
            tuple(p for p in self.products if p.category == c) or self.products for c in CATEGORIES
        )

    def _catalog(self) -> tuple[_Product, ...]:
        products = []
        for j in range(400):
            h = _mix(self.key ^ 0xCA7A10 ^ (j << 12))
            cents = int(5 * (300 ** (((h >> 8) & 0xFFFF) / 65535.0))) * 100 + 99
            category = CATEGORIES[h % len(CATEGORIES)]
            products.append(
                _Product(
                    f"prod_{j:04d}",
                    f"SKU-{(h >> 30) % 100000:05d}",
                    f"{BRANDS[(h >> 24) % len(BRANDS)]} {category} {j}",
                    category,
                    BRANDS[(h >> 24) % len(BRANDS)],
                    cents / 100,
                )
            )
        return tuple(products)

    def birth(self, i: int, h: int) -> int:
        if i < self.pre_existing:
            return self.start - (1 + h % 365) * _DAY - (h >> 20) % _DAY
        return self.start + ((i - self.pre_existing) * self.span) // max(1, self.newcomers)

    def born_by(self, t: int) -> int:
        """How many profiles exist at time t (indexes below this)."""
        if t < self.start or not self.newcomers:
            return self.pre_existing
        n = (t - self.start) * self.newcomers // self.span + 1
        return self.pre_existing + min(n, self.newcomers)

    def births_in(self, lo: int, hi: int) -> range:
        """Indexes of newcomers whose birth falls in [lo, hi)."""
        if not self.newcomers:
            return range(0)

        def first_at(t: int) -> int:
            x = max(0, t - self.start)
            return min(self.newcomers, -(-(x * self.newcomers) // self.span))

        return range(self.pre_existing + first_at(lo), self.pre_existing + first_at(hi))

    @staticmethod
    def lifetime(known: bool, h2: int) -> int:
        if not known:
            return (h2 >> 8) % 14 * _DAY + _DAY
        if h2 % 100 < 35:
            return 1 << 62  # loyal: never churns
        return (5 + (h2 >> 8) % 150) * _DAY

    def churn(self, i: int) -> int:
        """When profile i stops coming back (the same as _Person(i).churn, cheaper)."""
        h1 = _mix(self.key ^ (i << 1))
        h2 = _mix(h1 ^ 0x5EED)
        return self.birth(i, h2) + self.lifetime(h1 % 100 >= 28, h2)

    def person_known(self, i: int) -> bool:
        return _mix(self.key ^ (i << 1)) % 100 >= 28


@dataclass
class _Tally:
    """Counters of one block, summed into GenerateStats by the parent process."""

    lines: int = 0
    messages: int = 0
    duplicates: int = 0
    future: int = 0
    bad_lines: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    by_event: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Job:
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


_WORLDS: dict[tuple[int, int, int, int, int], _World] = {}


def _run_job(job: _Job) -> tuple[bytes, _Tally]:
    """Generate one block (in a worker process or in-process): its lines and its counters."""
    key = (job.seed, job.profiles, job.accounts, job.start, job.end)
    world = _WORLDS.get(key)
    if world is None:
        _WORLDS.clear()
        world = _WORLDS[key] = _World(*key)
    gen = _BlockGen(world, random.Random((job.seed * 1_000_003 + job.file) * 1_000_003 + job.block))
    for kind in job.bad_kinds:
        gen._bad(kind, gen.rnd.randrange(job.lo, max(job.lo + 1, job.hi)))
    gen.budget = job.goal  # the last session is cut short: every block has exactly its lines
    for i in world.births_in(job.lo, job.hi):
        if gen.tally.lines >= job.goal:
            break  # more people than lines asked for: the rest never show up
        p = _Person(world, i)
        gen._birth_session(
            p, p.birth + gen.rnd.randrange(max(1, world.span // max(1, world.newcomers)))
        )
    while gen.tally.lines < job.goal:
        t = gen._session_start(job.lo, job.hi)
        gen._regular_session(gen._pick(t), t)
    gen.sessions.sort(key=lambda item: item[0])
    chunk = [line for _, lines in gen.sessions for line in lines]
    data = b"\n".join(chunk) + b"\n" if chunk else b""
    if job.compress:
        # One gzip member per block, compressed where it was generated: a file is the members
        # one after another, which gzip readers (Python, zcat, polars, DuckDB) read as one stream.
        packer = zlib.compressobj(1, zlib.DEFLATED, 31)
        data = packer.compress(data) + packer.flush()
    return data, gen.tally


class _BlockGen:
    """Generates the sessions of one block; sessions are sorted by start time when done."""

    def __init__(self, world: _World, rnd: random.Random) -> None:
        self.w = world
        self.rnd = rnd
        self.clock = _Clock()
        self.tally = _Tally()
        self.sessions: list[tuple[int, list[bytes]]] = []  # (session start, its lines)
        self.budget = 1 << 62  # lines this block may hold
        self.accounts: dict[int, _Account] = {}

    def _session_start(self, lo: int, hi: int) -> int:
        rand = self.rnd.random
        t = lo
        for _ in range(20):
            t = lo + int((hi - lo) * rand())
            if rand() < _HOUR_WEIGHT[(t // _HOUR) % 24]:
                return t
        return t

    def _pick(self, t: int) -> _Person:
        rand = self.rnd.random
        w = self.w
        born = w.born_by(t)
        i = int(born * rand() ** 1.5)
        for _ in range(4):  # churned people mostly stay away
            if t < w.churn(i):
                break
            i = int(born * rand() ** 1.5)
        return _Person(w, i)

    def _account(self, a: int) -> _Account:
        acct = self.accounts.get(a)
        if acct is None:
            acct = self.accounts[a] = _Account(self.w, a)
        return acct

    # --- bad lines -----------------------------------------------------------------------------

    def _bad(self, kind: str, t: int) -> None:
        mid = f"{BAD_LINE_MARKER}{kind}-{self.rnd.getrandbits(48):012x}"
        ts = self.clock.iso(t)
        anon = _uuid(self.rnd.getrandbits(64))
        base: dict[str, Any] = {
            "type": "track",
            "messageId": mid,
            "anonymousId": anon,
            "event": "Product Viewed",
            "properties": {"price": 10},
            "timestamp": ts,
        }
        if kind == "not_json":
            line = orjson.dumps(base)[:-25]  # a line cut short in transit
        elif kind == "not_an_object":
            line = orjson.dumps([mid, "track", ts])
        else:
            if kind == "unknown_type":
                base["type"] = "pageview"
            elif kind == "no_identifier":
                # Only blocked values: analytics.js before it has an id.
                base["anonymousId"] = ""
                base["userId"] = "undefined"
            elif kind == "bad_timestamp":
                base["timestamp"] = "yesterday at noon"
            elif kind == "track_without_event":
                del base["event"]
            elif kind == "group_without_group_id":
                base = {
                    "type": "group",
                    "messageId": mid,
                    "anonymousId": anon,
                    "traits": {"name": "Nobody Inc"},
                    "timestamp": ts,
                }
            line = orjson.dumps(base)
        self.sessions.append((t, [line]))
        self.tally.lines += 1
        self.tally.bad_lines[kind] += 1

    # --- sessions ------------------------------------------------------------------------------

    def _birth_session(self, p: _Person, t: int) -> None:
        rnd = self.rnd
        dtype, anon = p.device(self.w, 0)
        s = _Session(self, p, dtype, anon, t, known=False, campaign=rnd.random() < 0.45)
        if s.mobile:
            s.track("Application Installed", {"version": "5.2.0", "build": "520"})
        s.browse(rnd.randint(1, 4))
        if not p.known:
            if rnd.random() < 0.4:
                s.shop(guest=True)
            s.close()
            return
        s.signup()
        if rnd.random() < 0.5:
            s.shop()
        s.close()

    def _regular_session(self, p: _Person, t: int) -> None:
        rnd = self.rnd
        if p.known and rnd.random() < 0.07:
            k = p.n_devices + rnd.randrange(20)  # a new device: anonymous until they sign in
            dtype, anon = p.device(self.w, k)
            s = _Session(self, p, dtype, anon, t, known=False, campaign=rnd.random() < 0.3)
            s.browse(rnd.randint(1, 3))
            s.sign_in(identify=True)
        else:
            dtype, anon = p.device(self.w, rnd.randrange(p.n_devices))
            if p.known and rnd.random() < 0.12:
                s = _Session(self, p, dtype, anon, t, known=True, campaign=False)
                s.email_campaign()
                s.close()
                if rnd.random() < 0.6:
                    return
                s = _Session(
                    self,
                    p,
                    dtype,
                    anon,
                    s.t + rnd.randrange(_MIN, 3 * _HOUR),
                    known=True,
                    campaign=False,
                    newsletter=True,
                )
            else:
                s = _Session(self, p, dtype, anon, t, known=p.known, campaign=rnd.random() < 0.15)
            if s.mobile:
                s.track("Application Opened", {"from_background": rnd.random() < 0.3})
            if p.known and rnd.random() < 0.25:
                s.sign_in(identify=rnd.random() < 0.3)
            elif p.known and rnd.random() < 0.1:
                s.identify()
        roll = rnd.random()
        if p.accounts and roll < 0.6:
            s.saas()
        elif roll < 0.65:
            s.shop(guest=not p.known)
        else:
            s.browse(rnd.randint(1, 6))
        if p.known and rnd.random() < 0.03:
            s.track("Signed Out", {})
        s.close()


class _Session:
    """One visit on one device: builds the messages, serializes them, hands them to the file."""

    def __init__(
        self,
        gen: _BlockGen,
        p: _Person,
        dtype: str,
        anon: str,
        t: int,
        *,
        known: bool,
        campaign: bool,
        newsletter: bool = False,
    ) -> None:
        self.gen, self.p, self.rnd, self.t = gen, p, gen.rnd, t
        self.anon, self.dtype = anon, dtype
        self.mobile = dtype in ("ios", "android")
        self.start = t
        self.out: list[bytes] = []
        self.ids: dict[str, Any] = {}
        self.set_known(known)
        self.ctx = self._context(campaign, newsletter)
        self.cart: list[tuple[_Product, int]] = []
        self.cart_id = ""

    def set_known(self, known: bool) -> None:
        rnd = self.rnd
        if known:
            self.ids = {"userId": self.p.user_id, "anonymousId": self.anon}
        elif rnd.random() < 0.01:
            # analytics.js sending a blocked userId before login: only the anonymousId counts
            self.ids = {
                "userId": ("null", "undefined", "")[rnd.randrange(3)],
                "anonymousId": self.anon,
            }
        else:
            self.ids = {"anonymousId": self.anon}

    def _context(self, campaign: bool, newsletter: bool) -> dict[str, Any]:
        rnd, p = self.rnd, self.p
        country, city, _ = p.country
        if rnd.random() < 0.03:  # travelling: geo-IP says elsewhere
            country, city, _ = COUNTRY_TABLE[rnd.randrange(len(COUNTRY_TABLE))]
        ctx: dict[str, Any] = {}
        if self.mobile:
            ios = self.dtype == "ios"
            ctx["library"] = {
                "name": "analytics-ios" if ios else "analytics-android",
                "version": "4.1.8" if ios else "4.10.4",
            }
            ctx["app"] = {"name": "Shop", "version": "5.2.0", "build": "520"}
            ctx["device"] = {
                "type": self.dtype,
                "manufacturer": "Apple" if ios else "Samsung",
                "model": "iPhone15,2" if ios else "SM-S918B",
                "id": self.anon[:18],
            }
            ctx["os"] = {"name": "iOS" if ios else "Android", "version": "17.4" if ios else "14"}
            ctx["network"] = {"wifi": rnd.random() < 0.6}
        else:
            ctx["library"] = {"name": "analytics.js", "version": "next-1.64.0"}
            ctx["device"] = {"type": self.dtype}
            ctx["userAgent"] = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/122.0"
        ctx["ip"] = f"10.{p.i % 250}.{(p.i >> 8) % 250}.{rnd.randrange(1, 250)}"
        ctx["locale"] = "en-US" if country in ("US", "CA") else f"en-{country}"
        ctx["location"] = {"country": country, "city": city}
        if newsletter:
            ctx["campaign"] = {
                "source": "newsletter",
                "medium": "email",
                "name": EMAIL_CAMPAIGNS[rnd.randrange(len(EMAIL_CAMPAIGNS))],
            }
        elif campaign:
            source, medium, name = CAMPAIGNS[rnd.randrange(len(CAMPAIGNS))]
            ctx["campaign"] = {"source": source, "medium": medium, "name": name}
        if self.p.known and rnd.random() < 0.15:
            # RudderStack-style clients carry the user's traits on every call.
            ctx["traits"] = {"email": self.p.email}
        return ctx

    # --- emission ------------------------------------------------------------------------------

    def step(self, lo: int = 3, hi: int = 90) -> None:
        self.t += int((lo + self.rnd.random() * (hi - lo)) * _SEC)

    def _emit(self, m: dict[str, Any], event: str | None, *, server: bool = False) -> None:
        rnd, clock, stats = self.rnd, self.gen.clock, self.gen.tally
        room = self.gen.budget - stats.lines - len(self.out)
        if room <= 0:
            return
        rand = rnd.random
        t = self.t
        roll = rand()
        if self.mobile and roll < 0.0005:
            t += int(_DAY * (1 + 2 * rand()))  # device clock ahead
        mid = f"{rnd.getrandbits(128):032x}"
        if self.mobile:
            m["messageId"] = f"{mid[:8]}-{mid[8:12]}-{mid[12:16]}-{mid[16:20]}-{mid[20:]}"
        else:
            m["messageId"] = "ajs-next-" + mid
        if server:
            sent = t + 5 + int(195 * rand())
        elif self.mobile:
            sent = t + 200 + int(29_800 * rand())  # mobile libraries batch
        else:
            sent = t + 5 + int(795 * rand())
        received = sent + 20 + int(580 * rand())
        sent_text = clock.iso(sent)
        if roll < 0.001:
            pass  # no timestamp: the pipeline falls back to receivedAt
        elif server and roll < 0.3:
            m["timestamp"] = clock.iso_offset(t, 60)
        elif sent // _HOUR == t // _HOUR:
            minute, rest = divmod(t % _HOUR, _MIN)
            m["timestamp"] = sent_text[:14] + clock._minutes[minute] + clock._tails[rest]
        else:
            m["timestamp"] = clock.iso(t)
        m["sentAt"] = sent_text
        m["receivedAt"] = clock.iso_after(sent, sent_text, received)
        if roll > 0.9985:
            del m["messageId"]  # some server-side sources send none: never deduped
        self.out.append(orjson.dumps(m))
        n = 1
        if 0.997 < roll <= 0.9985 and room > 1:
            m["receivedAt"] = clock.iso(received + rnd.randrange(_SEC, 10 * _MIN))
            self.out.append(orjson.dumps(m))  # a retry of the same message
            stats.duplicates += 1
            n = 2
        stats.messages += n
        stats.by_type[m["type"]] += n
        if event is not None:
            stats.by_event[event] += n
        if t > self.gen.w.end:
            stats.future += n

    def close(self) -> None:
        gen = self.gen
        gen.sessions.append((self.start, self.out))
        gen.tally.lines += len(self.out)

    def track(
        self, event: str, props: dict[str, Any], *, ctx: dict[str, Any] | None = None
    ) -> None:
        m = {
            "type": "track",
            **self.ids,
            "event": event,
            "properties": props,
            "context": ctx if ctx is not None else self.ctx,
        }
        self._emit(m, event)
        self.step()

    def view(self, name: str, path: str, props: dict[str, Any] | None = None) -> None:
        """A page call on the web, a screen call in the apps."""
        if self.mobile:
            m = {
                "type": "screen",
                **self.ids,
                "name": name,
                "properties": props or {},
                "context": self.ctx,
            }
            self._emit(m, "Screen Viewed")
        else:
            page = {
                "path": path,
                "url": SITE + path,
                "title": f"{name} | Shop",
                "referrer": "https://www.google.com/" if self.rnd.random() < 0.2 else "",
            }
            # Some clients put url/path only in context.page: the pipeline fills them in.
            properties = (
                dict(page, **(props or {})) if self.rnd.random() < 0.8 else dict(props or {})
            )
            m = {
                "type": "page",
                **self.ids,
                "name": name,
                "properties": properties,
                "context": {**self.ctx, "page": page},
            }
            self._emit(m, "Page Viewed")
        self.step()

    def _money(self, value: float) -> float | str:
        # Some sources send numbers as numeric strings ("12.50").
        return f"{value:.2f}" if self.rnd.random() < 0.04 else round(value, 2)

    def product(self) -> _Product:
        w, rand = self.gen.w, self.rnd.random
        if rand() < 0.5:
            own = w.by_category[self.p.favorite]
            return own[int(len(own) * rand())]
        return w.products[int(len(w.products) * rand() ** 2)]

    def _product_props(self, prod: _Product) -> dict[str, Any]:
        return {
            "product_id": prod.product_id,
            "sku": prod.sku,
            "name": prod.name,
            "category": prod.category,
            "brand": prod.brand,
            "price": self._money(prod.price),
            "currency": self.p.country[2],
        }

    # --- behaviours ----------------------------------------------------------------------------

    def browse(self, pages: int) -> None:
        rnd = self.rnd
        for _ in range(pages):
            name, path = WEB_PAGES[rnd.randrange(len(WEB_PAGES))]
            if self.mobile:
                self.view(APP_SCREENS[rnd.randrange(len(APP_SCREENS))], path)
                continue
            if name == "Product":
                prod = self.product()
                self.view(name, path + prod.product_id)
                self.track("Product Viewed", self._product_props(prod))
            elif name == "Category":
                category = CATEGORIES[rnd.randrange(len(CATEGORIES))]
                self.view(name, path + category.lower(), {"category": category})
                self.track(
                    "Product List Viewed", {"list_id": category.lower(), "category": category}
                )
            elif name == "Search":
                query = f"{BRANDS[rnd.randrange(len(BRANDS))].lower()} {CATEGORIES[rnd.randrange(len(CATEGORIES))].lower()}"
                self.view(name, path)
                self.track("Products Searched", {"query": query})
            else:
                self.view(name, path)

    def shop(self, *, guest: bool = False) -> None:
        rnd = self.rnd
        if not self.mobile:
            self.view("Home", "/")
        for _ in range(rnd.randint(1, 4)):
            prod = self.product()
            if self.mobile:
                self.view("Product Detail", "/p/" + prod.product_id)
            self.track("Product Viewed", self._product_props(prod))
            if rnd.random() < 0.4:
                if not self.cart_id:
                    self.cart_id = f"cart_{rnd.getrandbits(40):010x}"
                qty = 1 if rnd.random() < 0.8 else rnd.randint(2, 3)
                props = self._product_props(prod)
                props["quantity"] = str(qty) if rnd.random() < 0.03 else qty
                props["cart_id"] = self.cart_id
                self.track("Product Added", props)
                self.cart.append((prod, qty))
        if self.cart and rnd.random() < 0.08:
            prod, _ = self.cart.pop()
            self.track("Product Removed", {"product_id": prod.product_id, "cart_id": self.cart_id})
        if not self.cart or rnd.random() < 0.25:
            return
        self.track(
            "Cart Viewed",
            {"cart_id": self.cart_id, "products": [self._line(p, q) for p, q in self.cart]},
        )
        if rnd.random() < 0.3:
            return
        self.checkout(guest)

    def _line(self, prod: _Product, qty: int) -> dict[str, Any]:
        return {
            "product_id": prod.product_id,
            "sku": prod.sku,
            "name": prod.name,
            "category": prod.category,
            "price": prod.price,
            "quantity": qty,
        }

    def checkout(self, guest: bool) -> None:
        rnd = self.rnd
        currency = self.p.country[2]
        order_id = f"ord_{rnd.getrandbits(40):010x}"
        subtotal = sum(prod.price * qty for prod, qty in self.cart)
        products = [self._line(p, q) for p, q in self.cart]
        self.track(
            "Checkout Started",
            {
                "cart_id": self.cart_id,
                "order_id": order_id,
                "value": round(subtotal, 2),
                "revenue": round(subtotal, 2),
                "currency": currency,
                "products": products,
            },
        )
        discount = 0.0
        coupon = None
        if rnd.random() < 0.15:
            coupon = COUPONS[rnd.randrange(len(COUPONS))]
            discount = round(subtotal * 0.1, 2)
            self.track(
                "Coupon Applied",
                {
                    "order_id": order_id,
                    "coupon_id": coupon,
                    "coupon_name": coupon,
                    "discount": discount,
                },
            )
        if rnd.random() < 0.25:
            return  # abandoned at payment
        self.track(
            "Payment Info Entered",
            {"order_id": order_id, "payment_method": PAYMENT_METHODS[rnd.randrange(4)]},
        )
        if rnd.random() < 0.1:
            return
        if rnd.random() < 0.12:
            self.t += rnd.randrange(2 * _HOUR, 30 * _HOUR)  # came back after a reminder
        revenue = round(subtotal - discount, 2)
        shipping = 0.0 if revenue > 50 else 4.99
        tax = round(revenue * 0.08, 2)
        props = {
            "order_id": order_id,
            "checkout_id": order_id,
            "cart_id": self.cart_id,
            "total": round(revenue + shipping + tax, 2),
            "revenue": self._money(revenue),
            "shipping": shipping,
            "tax": tax,
            "discount": discount,
            "coupon": coupon,
            "currency": currency,
            "products": products,
        }
        if guest and rnd.random() < 0.5:
            # guest checkout: the email typed at checkout rides in context.traits
            self.track(
                "Order Completed", props, ctx={**self.ctx, "traits": {"email": self.p.email}}
            )
        elif not guest and rnd.random() < 0.3:
            # sent by the order service: server library, userId only
            m = {
                "type": "track",
                "userId": self.p.user_id,
                "event": "Order Completed",
                "properties": props,
                "context": {"library": {"name": "analytics-node", "version": "2.1.0"}},
            }
            self._emit(m, "Order Completed", server=True)
            self.step()
        else:
            self.track("Order Completed", props)
        if rnd.random() < 0.03:
            self.t += rnd.randrange(_DAY, 5 * _DAY)
            self.track(
                "Order Refunded",
                {"order_id": order_id, "total": props["total"], "currency": currency},
            )
        self.cart = []
        self.cart_id = ""

    def _traits(self) -> dict[str, Any]:
        p, rnd = self.p, self.rnd
        email = p.email
        if p.work_email is not None and rnd.random() < 0.4:
            email = p.work_email
        elif rnd.random() < 0.08:
            email = f"  {email[0].upper()}{email[1:]} "  # identifiers are trimmed and lower-cased
        traits: dict[str, Any] = {
            "email": email,
            "first_name": p.first.title(),
            "last_name": p.last.title(),
            "name": f"{p.first.title()} {p.last.title()}",
            "plan": p.plan(self.t),
            "country": p.country[0],
            "age": str(p.age) if rnd.random() < 0.1 else p.age,
            "is_vip": p.vip,
            "created_at": self.gen.clock.iso(max(p.birth, 0)),
        }
        if rnd.random() < 0.02:
            traits["age"] = None  # a null never replaces the last known value
        return traits

    def identify(self) -> None:
        traits = self._traits()
        m: dict[str, Any] = {"type": "identify", "userId": self.p.user_id, "anonymousId": self.anon}
        roll = self.rnd.random()
        if roll < 0.2:
            # RudderStack: identify traits in context.traits
            m["context"] = {**self.ctx, "traits": traits}
        elif roll < 0.25:
            # both: `traits` wins over context.traits within the message
            m["traits"] = traits
            m["context"] = {**self.ctx, "traits": {"plan": "legacy", "email": traits["email"]}}
        else:
            m["traits"] = traits
            m["context"] = self.ctx
        self._emit(m, None)
        self.step()
        self.set_known(True)

    def sign_in(self, *, identify: bool) -> None:
        if identify:
            self.identify()
        self.set_known(True)
        # The web tracking plan says "Signed In", the apps' older one "Logged In".
        event = "Logged In" if self.mobile else "Signed In"
        self.track(event, {"method": SIGNUP_METHODS[self.rnd.randrange(4)]})

    def signup(self) -> None:
        rnd = self.rnd
        self.view("Sign Up", "/signup")
        self.identify()
        self.track(
            "Signed Up", {"method": SIGNUP_METHODS[rnd.randrange(4)], "plan": self.p.plan(self.t)}
        )
        if rnd.random() < 0.1:
            self._emit(
                {
                    "type": "alias",
                    "previousId": self.anon,
                    "userId": self.p.user_id,
                    "context": self.ctx,
                },
                None,
            )
            self.step()
        for a in self.p.accounts:
            self.group(a)

    def group(self, a: int) -> None:
        acct = self.gen._account(a)
        rnd = self.rnd
        traits: dict[str, Any] = {
            "name": acct.name,
            "plan": acct.plan(self.t),
            "employees": str(acct.employees) if rnd.random() < 0.2 else acct.employees,
            "industry": acct.industry,
            "created_at": self.gen.clock.iso(acct.created),
        }
        if a % 3 == 0:
            traits["email"] = f"billing@{acct.name.split()[0].lower()}{a}.example"  # not a user's
        m = {
            "type": "group",
            **self.ids,
            "groupId": acct.group_id,
            "traits": traits,
            "context": self.ctx,
        }
        self._emit(m, None)
        self.step()

    def saas(self) -> None:
        rnd = self.rnd
        if "userId" not in self.ids or self.ids.get("userId") != self.p.user_id:
            self.sign_in(identify=False)
        if rnd.random() < 0.3:
            self.group(self.p.accounts[rnd.randrange(len(self.p.accounts))])
        plan = self.gen._account(self.p.accounts[0]).plan(self.t)
        name, path = SAAS_PAGES[rnd.randrange(len(SAAS_PAGES))]
        self.view(name, path)
        for _ in range(rnd.randint(2, 10)):
            feature = FEATURES[int(len(FEATURES) * rnd.random() ** 1.5)]
            self.track("Feature Used", {"feature": feature, "plan": plan})
        if rnd.random() < 0.2:
            self.track(
                "Report Created", {"report_type": ("weekly", "funnel", "cohort")[rnd.randrange(3)]}
            )
        if rnd.random() < 0.08:
            self.track(
                "Invite Sent",
                {
                    "role": ("member", "admin")[rnd.random() < 0.2],
                    "invitee_email": f"colleague{rnd.randrange(10**6)}@example.com",
                },
            )

    def email_campaign(self) -> None:
        """Opens of one to three campaign emails (read in one sitting), maybe a click."""
        rnd = self.rnd
        esp = {
            "library": {"name": "esp-webhook", "version": "1.0"},
            "traits": {"email": self.p.email},
        }
        # Email-tool events often know only the address: an email alone identifies the profile.
        ids: dict[str, Any] = {} if rnd.random() < 0.5 else {"userId": self.p.user_id}
        props: dict[str, Any] = {}
        for _ in range(rnd.randint(1, 3)):
            name = EMAIL_CAMPAIGNS[rnd.randrange(len(EMAIL_CAMPAIGNS))]
            props = {
                "campaign_name": name,
                "email_subject": f"{name.replace('_', ' ').title()} for you",
            }
            self._emit(
                {
                    "type": "track",
                    **ids,
                    "event": "Email Opened",
                    "properties": props,
                    "context": esp,
                },
                "Email Opened",
                server=True,
            )
            self.step(30, 600)
        if rnd.random() < 0.4:
            self._emit(
                {
                    "type": "track",
                    **ids,
                    "event": "Email Link Clicked",
                    "properties": {**props, "link_url": SITE + "/?utm_source=newsletter"},
                    "context": esp,
                },
                "Email Link Clicked",
                server=True,
            )
            self.step()


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def generate(
    out_dir: Path,
    *,
    events: int = 10_000,
    profiles: int | None = None,
    accounts: int | None = None,
    seed: int = 0,
    as_of: datetime = DEFAULT_AS_OF,
    days: int = 120,
    files: int = 1,
    gzip: bool = True,
    bad_lines: bool = True,
    workers: int | None = None,
) -> GenerateStats:
    """Write about `events` lines of Segment-spec JSON to `files` files in `out_dir`.

    Args:
        out_dir: folder for the files (created); files are `events-NNNN.jsonl[.gz]`, file k
            holding the k-th slice of the period, so path order is time order.
        events: lines to write, exactly (valid messages, retried duplicates and bad lines; the
            last session of a block may be cut short).
        profiles: people simulated; default events // 10. Not all of them need appear.
        accounts: B2B accounts; default profiles // 20.
        seed: the same seed and arguments give byte-identical files, whatever `workers` is.
        as_of: end of the period; events fall in (as_of - days, as_of], except a few whose device
            clock runs ahead.
        days: length of the period.
        files: number of files the period is cut into (e.g. `days` for one file a day).
        gzip: write `.jsonl.gz` (level 1; one gzip member per block of about 4,000 lines)
            instead of `.jsonl`.
        bad_lines: add a few unusable lines: one of each BAD_REASONS kind (from 70 lines on),
            and one in 20,000 lines on big runs.
        workers: processes generating blocks; default: one per CPU (up to 4) from 200k events,
            else 1 (in-process).

    Returns:
        What was written.
    """
    began = time.perf_counter()
    if events < 0 or days < 1 or files < 1:
        msg = "events must be >= 0, days >= 1 and files >= 1"
        raise ValueError(msg)
    n_profiles = max(1, events // 10) if profiles is None else max(1, profiles)
    n_accounts = max(1, n_profiles // 20) if accounts is None else max(0, accounts)
    end_dt = _as_utc(as_of)
    end = int(end_dt.timestamp() * 1000)
    start = end - days * _DAY
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = GenerateStats(
        profiles=n_profiles, accounts=n_accounts, start=end_dt - timedelta(days=days), as_of=end_dt
    )
    jobs = _plan(seed, n_profiles, n_accounts, start, end, events, files, bad_lines, gzip)
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if events >= 200_000 else 1
    suffix = ".jsonl.gz" if gzip else ".jsonl"
    paths = [out_dir / f"events-{k:04d}{suffix}" for k in range(files)]
    handles: dict[int, IO[bytes]] = {}
    try:
        for job, (data, tally) in zip(jobs, _results(jobs, workers), strict=True):
            out = handles.get(job.file)
            if out is None:
                for done in [k for k in handles if k < job.file]:
                    handles.pop(done).close()
                out = handles[job.file] = paths[job.file].open("wb")
            out.write(data)
            _add(stats, tally)
    finally:
        for out in handles.values():
            out.close()
    stats.files = paths
    stats.seconds = time.perf_counter() - began
    logger.info(
        "generated %d lines (%d bad, %d duplicates) in %d files in %.1f s",
        stats.lines,
        sum(stats.bad_lines.values()),
        stats.duplicates,
        files,
        stats.seconds,
    )
    return stats


def _plan(
    seed: int,
    profiles: int,
    accounts: int,
    start: int,
    end: int,
    events: int,
    files: int,
    bad_lines: bool,
    compress: bool,
) -> list[_Job]:
    """Cut the run into blocks: each file's slice of time into pieces of about _BLOCK_LINES."""
    # at least one of each kind, one in 20,000 lines on big runs, never more than 10% of the lines
    n_bad = min(max(len(BAD_REASONS), events // 20_000), events // 10) if bad_lines else 0
    placer = random.Random(seed)  # which blocks get the bad lines
    jobs: list[_Job] = []
    for k in range(files):
        lo, hi = (
            start + (end - start) * k // files + 1,
            start + (end - start) * (k + 1) // files + 1,
        )
        target = events * (k + 1) // files - events * k // files
        kinds = [
            BAD_REASONS[j % len(BAD_REASONS)]
            for j in range(n_bad * k // files, n_bad * (k + 1) // files)
        ]
        blocks = max(1, target // _BLOCK_LINES)
        bad_in: list[list[str]] = [[] for _ in range(blocks)]
        for kind in kinds:
            bad_in[placer.randrange(blocks)].append(kind)
        for b in range(blocks):
            b_lo, b_hi = lo + (hi - lo) * b // blocks, lo + (hi - lo) * (b + 1) // blocks
            goal = target * (b + 1) // blocks - target * b // blocks
            jobs.append(
                _Job(
                    seed,
                    profiles,
                    accounts,
                    start,
                    end,
                    k,
                    b,
                    b_lo,
                    b_hi,
                    goal,
                    tuple(bad_in[b]),
                    compress,
                )
            )
    return jobs


def _results(jobs: list[_Job], workers: int) -> Iterator[tuple[bytes, _Tally]]:
    if workers <= 1 or len(jobs) < 2:
        yield from map(_run_job, jobs)
        return
    # fork: workers run only this module's pure-Python code (no polars/duckdb calls, so no
    # locks of the caller's threads are needed), and callers' scripts need no __main__ guard
    # as they would with spawn.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with context.Pool(min(workers, len(jobs))) as pool:
        # A bounded window of jobs in flight: results never pile up in memory when writing
        # (compressing) is slower than generating.
        pending: deque[AsyncResult[tuple[bytes, _Tally]]] = deque()
        for job in jobs:
            pending.append(pool.apply_async(_run_job, (job,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def _add(stats: GenerateStats, tally: _Tally) -> None:
    stats.lines += tally.lines
    stats.messages += tally.messages
    stats.duplicates += tally.duplicates
    stats.future += tally.future
    stats.bad_lines.update(tally.bad_lines)
    stats.by_type.update(tally.by_type)
    stats.by_event.update(tally.by_event)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `python -m audience_pipeline.demo.generate --events N --out DIR`."""
    parser = argparse.ArgumentParser(
        prog="audience-pipeline-generate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--events", type=int, default=10_000, help="lines to write (default 10000)")
    parser.add_argument("--profiles", type=int, default=None, help="people (default events // 10)")
    parser.add_argument(
        "--accounts", type=int, default=None, help="accounts (default profiles // 20)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--as-of", default=DEFAULT_AS_OF.isoformat(), help="end of the period (ISO-8601)"
    )
    parser.add_argument("--days", type=int, default=120, help="length of the period in days")
    parser.add_argument("--files", type=int, default=1, help="number of files (time slices)")
    parser.add_argument("--no-gzip", action="store_true", help="write plain .jsonl")
    parser.add_argument("--no-bad-lines", action="store_true", help="leave out the unusable lines")
    parser.add_argument("--out", type=Path, default=Path("data/events"), help="output folder")
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        as_of = datetime.fromisoformat(args.as_of.replace("Z", "+00:00"))
    except ValueError:
        parser.error(f"--as-of: not an ISO-8601 timestamp: {args.as_of!r}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        stats = generate(
            args.out,
            events=args.events,
            profiles=args.profiles,
            accounts=args.accounts,
            seed=args.seed,
            as_of=as_of,
            days=args.days,
            files=args.files,
            gzip=not args.no_gzip,
            bad_lines=not args.no_bad_lines,
        )
    except ValueError as error:
        parser.error(str(error))
    logger.info("wrote %s .. %s", stats.files[0], stats.files[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
