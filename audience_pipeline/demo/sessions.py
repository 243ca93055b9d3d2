"""The visits people make: a newcomer's first session and the sessions of returning people."""

from __future__ import annotations

from audience_pipeline.demo.blocks import BlockGen
from audience_pipeline.demo.catalog import HOUR, MIN
from audience_pipeline.demo.engagement import Engagement
from audience_pipeline.demo.shopping import Shopping
from audience_pipeline.demo.world import Person


class Session(Shopping, Engagement):
    """One visit on one device, with every behaviour."""


def birth_session(gen: BlockGen, p: Person, t: int) -> None:
    """A newcomer's first visit: browsing, then a sign-up (or a guest purchase)."""
    rnd = gen.rnd
    dtype, anon = p.device(gen.w, 0)
    s = Session(gen, p, dtype, anon, t, known=False, campaign=rnd.random() < 0.45)
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


def regular_session(gen: BlockGen, p: Person, t: int) -> None:
    """A returning visit: opened on a new or known device, then SaaS use, shopping or browsing."""
    rnd = gen.rnd
    s = _open_session(gen, p, t)
    if s is None:
        return
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


def _open_session(gen: BlockGen, p: Person, t: int) -> Session | None:
    """The start of a returning visit; None when it was only an email read."""
    rnd = gen.rnd
    if p.known and rnd.random() < 0.07:
        k = p.n_devices + rnd.randrange(20)  # a new device: anonymous until they sign in
        dtype, anon = p.device(gen.w, k)
        s = Session(gen, p, dtype, anon, t, known=False, campaign=rnd.random() < 0.3)
        s.browse(rnd.randint(1, 3))
        s.sign_in(identify=True)
        return s
    dtype, anon = p.device(gen.w, rnd.randrange(p.n_devices))
    if p.known and rnd.random() < 0.12:
        s = Session(gen, p, dtype, anon, t, known=True, campaign=False)
        s.email_campaign()
        s.close()
        if rnd.random() < 0.6:
            return None
        later = s.t + rnd.randrange(MIN, 3 * HOUR)
        s = Session(gen, p, dtype, anon, later, known=True, campaign=False, newsletter=True)
    else:
        s = Session(gen, p, dtype, anon, t, known=p.known, campaign=rnd.random() < 0.15)
    if s.mobile:
        s.track("Application Opened", {"from_background": rnd.random() < 0.3})
    if p.known and rnd.random() < 0.25:
        s.sign_in(identify=rnd.random() < 0.3)
    elif p.known and rnd.random() < 0.1:
        s.identify()
    return s
