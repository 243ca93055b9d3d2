"""Coming back: using the B2B product inside an account, and reading campaign emails."""

from __future__ import annotations

from typing import Any

from audience_pipeline.demo.catalog import EMAIL_CAMPAIGNS, FEATURES, SAAS_PAGES, SITE
from audience_pipeline.demo.identity import Identity


class Engagement(Identity):
    def saas(self) -> None:
        rnd = self.rnd
        if "userId" not in self.ids or self.ids.get("userId") != self.p.user_id:
            self.sign_in(identify=False)
        if rnd.random() < 0.3:
            self.group(self.p.accounts[rnd.randrange(len(self.p.accounts))])
        plan = self.gen.account(self.p.accounts[0]).plan(self.t)
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
            self._server_track("Email Opened", ids, props, esp)
            self.step(30, 600)
        if rnd.random() < 0.4:
            props = {**props, "link_url": SITE + "/?utm_source=newsletter"}
            self._server_track("Email Link Clicked", ids, props, esp)
            self.step()

    def _server_track(
        self, event: str, ids: dict[str, Any], props: dict[str, Any], ctx: dict[str, Any]
    ) -> None:
        m = {"type": "track", **ids, "event": event, "properties": props, "context": ctx}
        self._emit(m, event, server=True)
