"""Shop behaviour of a visit: browsing, the cart, checkout, orders and refunds."""

from __future__ import annotations

from typing import Any

from audience_pipeline.demo.catalog import (
    APP_SCREENS,
    BRANDS,
    CATEGORIES,
    COUPONS,
    DAY,
    HOUR,
    PAYMENT_METHODS,
    WEB_PAGES,
)
from audience_pipeline.demo.messages import Visit


class Shopping(Visit):
    def browse(self, pages: int) -> None:
        rnd = self.rnd
        for _ in range(pages):
            name, path = WEB_PAGES[rnd.randrange(len(WEB_PAGES))]
            if self.mobile:
                self.view(APP_SCREENS[rnd.randrange(len(APP_SCREENS))], path)
            else:
                self._browse_page(name, path)

    def _browse_page(self, name: str, path: str) -> None:
        rnd = self.rnd
        if name == "Product":
            prod = self.product()
            self.view(name, path + prod.product_id)
            self.track("Product Viewed", self._product_props(prod))
        elif name == "Category":
            category = CATEGORIES[rnd.randrange(len(CATEGORIES))]
            self.view(name, path + category.lower(), {"category": category})
            self.track("Product List Viewed", {"list_id": category.lower(), "category": category})
        elif name == "Search":
            brand = BRANDS[rnd.randrange(len(BRANDS))].lower()
            query = f"{brand} {CATEGORIES[rnd.randrange(len(CATEGORIES))].lower()}"
            self.view(name, path)
            self.track("Products Searched", {"query": query})
        else:
            self.view(name, path)

    def shop(self, *, guest: bool = False) -> None:
        rnd = self.rnd
        if not self.mobile:
            self.view("Home", "/")
        for _ in range(rnd.randint(1, 4)):
            self._look_at_product()
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

    def _look_at_product(self) -> None:
        """A product viewed, and maybe added to the cart."""
        rnd = self.rnd
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
        coupon, discount = self._coupon(order_id, subtotal)
        if rnd.random() < 0.25:
            return  # abandoned at payment
        self.track(
            "Payment Info Entered",
            {"order_id": order_id, "payment_method": PAYMENT_METHODS[rnd.randrange(4)]},
        )
        if rnd.random() < 0.1:
            return
        if rnd.random() < 0.12:
            self.t += rnd.randrange(2 * HOUR, 30 * HOUR)  # came back after a reminder
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
        self._order_completed(props, guest)
        self._maybe_refund(order_id, props["total"], currency)
        self.cart = []
        self.cart_id = ""

    def _coupon(self, order_id: str, subtotal: float) -> tuple[str | None, float]:
        """(coupon, discount): a coupon applied to some checkouts."""
        rnd = self.rnd
        if rnd.random() >= 0.15:
            return None, 0.0
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
        return coupon, discount

    def _order_completed(self, props: dict[str, Any], guest: bool) -> None:
        rnd = self.rnd
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

    def _maybe_refund(self, order_id: str, total: Any, currency: str) -> None:
        rnd = self.rnd
        if rnd.random() < 0.03:
            self.t += rnd.randrange(DAY, 5 * DAY)
            self.track(
                "Order Refunded",
                {"order_id": order_id, "total": total, "currency": currency},
            )
