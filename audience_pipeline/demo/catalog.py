"""What the demo shop is made of: names, tables, weights and the time units the generator uses."""

from __future__ import annotations

from datetime import UTC, datetime


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(word.strip() for word in text.split(sep))


DEFAULT_AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
BAD_LINE_MARKER = "bad-line-"  # "l", "i", "n" are not hex: no random id contains it
BAD_REASONS = _words(
    "not_json not_an_object unknown_type no_identifier bad_timestamp track_without_event "
    "group_without_group_id"
)

DAY = 86_400_000
HOUR = 3_600_000
MIN = 60_000
SEC = 1_000

# Traffic by UTC hour (busy evenings, quiet nights); rejection sampling keeps the peak at 1.
HOUR_WEIGHT = tuple(
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
