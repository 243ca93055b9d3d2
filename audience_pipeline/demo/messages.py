"""One visit on one device: its context, and the messages it sends (track, page, screen)."""

from __future__ import annotations

from typing import Any

import orjson

from audience_pipeline.demo.blocks import BlockGen
from audience_pipeline.demo.catalog import (
    CAMPAIGNS,
    COUNTRY_TABLE,
    DAY,
    EMAIL_CAMPAIGNS,
    MIN,
    SEC,
    SITE,
)
from audience_pipeline.demo.world import Person, Product


class Visit:
    """Builds a session's messages, serializes them, hands them to the block when closed.

    The behaviours (shopping, signing in, accounts) are subclasses; every random draw happens in
    a fixed order, which is what makes the output the same bytes for the same seed.
    """

    def __init__(
        self,
        gen: BlockGen,
        p: Person,
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
        self.cart: list[tuple[Product, int]] = []
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

    # --- context -------------------------------------------------------------------------------

    def _context(self, campaign: bool, newsletter: bool) -> dict[str, Any]:
        rnd, p = self.rnd, self.p
        country, city, _ = p.country
        if rnd.random() < 0.03:  # travelling: geo-IP says elsewhere
            country, city, _ = COUNTRY_TABLE[rnd.randrange(len(COUNTRY_TABLE))]
        ctx = self._app_context() if self.mobile else self._web_context()
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

    def _app_context(self) -> dict[str, Any]:
        ios = self.dtype == "ios"
        return {
            "library": {
                "name": "analytics-ios" if ios else "analytics-android",
                "version": "4.1.8" if ios else "4.10.4",
            },
            "app": {"name": "Shop", "version": "5.2.0", "build": "520"},
            "device": {
                "type": self.dtype,
                "manufacturer": "Apple" if ios else "Samsung",
                "model": "iPhone15,2" if ios else "SM-S918B",
                "id": self.anon[:18],
            },
            "os": {"name": "iOS" if ios else "Android", "version": "17.4" if ios else "14"},
            "network": {"wifi": self.rnd.random() < 0.6},
        }

    def _web_context(self) -> dict[str, Any]:
        return {
            "library": {"name": "analytics.js", "version": "next-1.64.0"},
            "device": {"type": self.dtype},
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/122.0",
        }

    # --- emission ------------------------------------------------------------------------------

    def step(self, lo: int = 3, hi: int = 90) -> None:
        self.t += int((lo + self.rnd.random() * (hi - lo)) * SEC)

    def _emit(self, m: dict[str, Any], event: str | None, *, server: bool = False) -> None:
        room = self.gen.budget - self.gen.tally.lines - len(self.out)
        if room <= 0:
            return
        rand = self.rnd.random
        t = self.t
        roll = rand()
        if self.mobile and roll < 0.0005:
            t += int(DAY * (1 + 2 * rand()))  # device clock ahead
        m["messageId"] = self._message_id()
        sent, received = self._delivery(t, server)
        self._stamp(m, t, sent, received, roll=roll, server=server)
        n = self._write(m, received, roll=roll, room=room)
        self._count(m, event, n, t)

    def _message_id(self) -> str:
        mid = f"{self.rnd.getrandbits(128):032x}"
        if self.mobile:
            return f"{mid[:8]}-{mid[8:12]}-{mid[12:16]}-{mid[16:20]}-{mid[20:]}"
        return "ajs-next-" + mid

    def _delivery(self, t: int, server: bool) -> tuple[int, int]:
        """(sentAt, receivedAt) of a message made at t."""
        rand = self.rnd.random
        if server:
            sent = t + 5 + int(195 * rand())
        elif self.mobile:
            sent = t + 200 + int(29_800 * rand())  # mobile libraries batch
        else:
            sent = t + 5 + int(795 * rand())
        return sent, sent + 20 + int(580 * rand())

    def _stamp(
        self, m: dict[str, Any], t: int, sent: int, received: int, *, roll: float, server: bool
    ) -> None:
        clock = self.gen.clock
        sent_text = clock.iso(sent)
        if roll < 0.001:
            pass  # no timestamp: the pipeline falls back to receivedAt
        elif server and roll < 0.3:
            m["timestamp"] = clock.iso_offset(t, 60)
        else:
            m["timestamp"] = clock.iso_after(sent, sent_text, t)
        m["sentAt"] = sent_text
        m["receivedAt"] = clock.iso_after(sent, sent_text, received)
        if roll > 0.9985:
            del m["messageId"]  # some server-side sources send none: never deduped

    def _write(self, m: dict[str, Any], received: int, *, roll: float, room: int) -> int:
        """Serialize the message, maybe twice (a retry); returns the lines written."""
        self.out.append(orjson.dumps(m))
        if 0.997 < roll <= 0.9985 and room > 1:
            m["receivedAt"] = self.gen.clock.iso(received + self.rnd.randrange(SEC, 10 * MIN))
            self.out.append(orjson.dumps(m))  # a retry of the same message
            self.gen.tally.duplicates += 1
            return 2
        return 1

    def _count(self, m: dict[str, Any], event: str | None, n: int, t: int) -> None:
        stats = self.gen.tally
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

    # --- message builders ----------------------------------------------------------------------

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
            self._emit(self._page(name, path, props), "Page Viewed")
        self.step()

    def _page(self, name: str, path: str, props: dict[str, Any] | None) -> dict[str, Any]:
        page = {
            "path": path,
            "url": SITE + path,
            "title": f"{name} | Shop",
            "referrer": "https://www.google.com/" if self.rnd.random() < 0.2 else "",
        }
        # Some clients put url/path only in context.page: the pipeline fills them in.
        properties = dict(page, **(props or {})) if self.rnd.random() < 0.8 else dict(props or {})
        return {
            "type": "page",
            **self.ids,
            "name": name,
            "properties": properties,
            "context": {**self.ctx, "page": page},
        }

    def _money(self, value: float) -> float | str:
        # Some sources send numbers as numeric strings ("12.50").
        return f"{value:.2f}" if self.rnd.random() < 0.04 else round(value, 2)

    def product(self) -> Product:
        w, rand = self.gen.w, self.rnd.random
        if rand() < 0.5:
            own = w.by_category[self.p.favorite]
            return own[int(len(own) * rand())]
        return w.products[int(len(w.products) * rand() ** 2)]

    def _product_props(self, prod: Product) -> dict[str, Any]:
        return {
            "product_id": prod.product_id,
            "sku": prod.sku,
            "name": prod.name,
            "category": prod.category,
            "brand": prod.brand,
            "price": self._money(prod.price),
            "currency": self.p.country[2],
        }

    def _line(self, prod: Product, qty: int) -> dict[str, Any]:
        return {
            "product_id": prod.product_id,
            "sku": prod.sku,
            "name": prod.name,
            "category": prod.category,
            "price": prod.price,
            "quantity": qty,
        }
