"""Who a visit says it is: identify calls with traits, sign-up, sign-in, aliases, group calls."""

from __future__ import annotations

from typing import Any

from audience_pipeline.demo.catalog import SIGNUP_METHODS
from audience_pipeline.demo.messages import Visit


class Identity(Visit):
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
        acct = self.gen.account(a)
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
