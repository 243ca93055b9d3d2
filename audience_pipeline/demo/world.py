"""The simulated population and catalog: every person and account is a pure function of
(seed, index), so memory stays flat however many events are asked for."""

from __future__ import annotations

from dataclasses import dataclass

from audience_pipeline.demo.catalog import (
    ACCOUNT_PLANS,
    BRANDS,
    CATEGORIES,
    COMPANY_WORDS,
    COUNTRY_TABLE,
    DAY,
    DEVICE_TABLE,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    INDUSTRIES,
    LAST_NAMES,
    USER_PLANS,
)
from audience_pipeline.demo.clock import mix, uuid

NEVER = 1 << 62  # a time after any period: "does not happen"


@dataclass(frozen=True)
class Product:
    product_id: str
    sku: str
    name: str
    category: str
    brand: str
    price: float


class World:
    """The fixed population and catalog; shared read-only by every file."""

    def __init__(self, seed: int, profiles: int, accounts: int, start: int, end: int) -> None:
        self.key = mix(seed * 0x100000001B3 + 0x1234567)
        self.n_profiles = max(1, profiles)
        self.n_accounts = max(0, accounts)
        self.start, self.end, self.span = start, end, max(1, end - start)
        self.pre_existing = max(1, int(self.n_profiles * 0.35))  # known before the period
        self.newcomers = self.n_profiles - self.pre_existing
        self.products = self._catalog()
        self.by_category = tuple(
            tuple(p for p in self.products if p.category == c) or self.products for c in CATEGORIES
        )

    def _catalog(self) -> tuple[Product, ...]:
        return tuple(self._product(j) for j in range(400))

    def _product(self, j: int) -> Product:
        h = mix(self.key ^ 0xCA7A10 ^ (j << 12))
        cents = int(5 * (300 ** (((h >> 8) & 0xFFFF) / 65535.0))) * 100 + 99
        category = CATEGORIES[h % len(CATEGORIES)]
        return Product(
            f"prod_{j:04d}",
            f"SKU-{(h >> 30) % 100000:05d}",
            f"{BRANDS[(h >> 24) % len(BRANDS)]} {category} {j}",
            category,
            BRANDS[(h >> 24) % len(BRANDS)],
            cents / 100,
        )

    def birth(self, i: int, h: int) -> int:
        if i < self.pre_existing:
            return self.start - (1 + h % 365) * DAY - (h >> 20) % DAY
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
            return (h2 >> 8) % 14 * DAY + DAY
        if h2 % 100 < 35:
            return NEVER  # loyal: never churns
        return (5 + (h2 >> 8) % 150) * DAY

    def churn(self, i: int) -> int:
        """When profile i stops coming back (the same as Person(i).churn, cheaper)."""
        h1 = mix(self.key ^ (i << 1))
        h2 = mix(h1 ^ 0x5EED)
        return self.birth(i, h2) + self.lifetime(h1 % 100 >= 28, h2)

    def person_known(self, i: int) -> bool:
        return mix(self.key ^ (i << 1)) % 100 >= 28


class Account:
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

    def __init__(self, world: World, a: int) -> None:
        h = mix(world.key ^ 0xACC0 ^ (a << 20))
        self.index = a
        # A few accounts are keyed by an integer groupId (its text is the account id).
        self.group_id: str | int = 50_000 + a if a % 50 == 7 else f"acct_{a:06d}"
        self.name = (
            f"{COMPANY_WORDS[h % len(COMPANY_WORDS)]} {a} {('Inc', 'GmbH', 'Ltd')[(h >> 8) % 3]}"
        )
        plan = ACCOUNT_PLANS[(h >> 12) % len(ACCOUNT_PLANS)]
        upgraded = {"free": "pro", "pro": "business", "business": "business"}[plan]
        self.plans = (plan, upgraded)
        self.upgrade_at = world.start + (h >> 20) % world.span if (h >> 40) % 100 < 20 else NEVER
        self.employees = (5, 12, 40, 80, 250, 1200)[(h >> 48) % 6]
        self.industry = INDUSTRIES[(h >> 52) % len(INDUSTRIES)]
        self.created = world.start - (1 + (h >> 56) % 200) * DAY

    def plan(self, t: int) -> str:
        return self.plans[1] if t >= self.upgrade_at else self.plans[0]


class Person:
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

    def __init__(self, world: World, i: int) -> None:
        h1 = mix(world.key ^ (i << 1))
        h2 = mix(h1 ^ 0x5EED)
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
        self.upgrade_at = self.birth + (h1 >> 36) % (60 * DAY) if (h1 >> 40) % 100 < 20 else NEVER
        self.age = 18 + (h1 >> 44) % 55
        self.vip = (h1 >> 50) % 100 < 5
        self.favorite = (h2 >> 4) % len(CATEGORIES)  # half of their product views are in it
        self.accounts = self._memberships(world, h2)

    def _memberships(self, world: World, h2: int) -> tuple[int, ...]:
        if not (self.known and world.n_accounts and (h2 >> 20) % 100 < 45):
            return ()
        # Skewed: low account indexes get many members, high ones few or none.
        u = ((h2 >> 28) & 0xFFFF) / 65536.0
        first_acct = int(world.n_accounts * u * u)
        if (h2 >> 44) % 100 < 6:
            return (first_acct, (first_acct + 1 + self.i) % world.n_accounts)
        return (first_acct,)

    @staticmethod
    def _email(world: World, owner: int) -> str:
        h = mix(world.key ^ (owner << 1))
        first = FIRST_NAMES[(h >> 8) % len(FIRST_NAMES)]
        last = LAST_NAMES[(h >> 16) % len(LAST_NAMES)]
        return f"{first}.{last}{owner}@{EMAIL_DOMAINS[(h >> 4) % len(EMAIL_DOMAINS)]}"

    def plan(self, t: int) -> str:
        return self.plans[1] if t >= self.upgrade_at else self.plans[0]

    def device(self, world: World, k: int) -> tuple[str, str]:
        """(device type, anonymousId) of device k; k >= n_devices is a new, unseen device."""
        h = mix(world.key ^ (self.i << 8) ^ k ^ 0xDE71CE)
        return DEVICE_TABLE[h % len(DEVICE_TABLE)], uuid(h)
