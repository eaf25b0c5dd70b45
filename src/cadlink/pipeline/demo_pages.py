"""What happens on one page of the demo shop: the tracker events of a human page view.

`PageEvents.page()` decides the dwell time, the interactions (scrolls, product funnel, search,
forms, errors, web vitals) and where the visitor goes next, and returns the events as
`(timestamp_ms, event_type, properties)` items for `demo_session` to wrap into envelopes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from random import Random
from typing import TYPE_CHECKING, Any

from cadlink.pipeline.demo_catalog import Catalog, Page, Product

if TYPE_CHECKING:
    from cadlink.pipeline.demo_session import Visitor

Props = dict[str, Any]
Item = tuple[int, str, Props | None]
NextPage = Callable[[Page, int], Page | None]
Vitals = tuple[list[int], list[int], list[int], list[float], list[int]]

# Median time on page (ms) by page kind; the spread is log-normal.
_DWELL = {
    "home": 25_000, "category": 22_000, "product": 45_000, "blog": 95_000, "search": 15_000,
    "deals": 35_000, "compare": 50_000, "about": 30_000, "contact": 50_000, "newsletter": 25_000,
    "cart": 25_000, "checkout": 110_000, "thanks": 20_000,
}  # fmt: skip
# Median ttfb, fcp, lcp (ms), cls, inp (ms) by device (CrUX-like: phones are slower).
_VITALS = {
    "desktop": (180.0, 800.0, 1400.0, 0.02, 80.0),
    "mobile": (380.0, 1700.0, 2600.0, 0.06, 210.0),
    "tablet": (300.0, 1300.0, 2100.0, 0.05, 150.0),
}
_LISTINGS = frozenset({"home", "category", "search", "deals", "product", "blog", "compare"})
_FORMS = {"newsletter": 0.6, "contact": 0.45, "blog": 0.03, "home": 0.015}  # chance of starting one
_DEPTHS = (25, 50, 75, 90, 100)
_CLICKS = ("nav-menu", "logo", "footer-link", "filter-toggle", "breadcrumb", "image-zoom")
_FILTERS = (
    ("price", "0-50"),
    ("price", "50-100"),
    ("price", "100-250"),
    ("brand", "Sonara"),
    ("brand", "Voltix"),
    ("rating", "4+"),
    ("availability", "in-stock"),
)
_SORTS = ("price_asc", "price_desc", "rating", "newest", "bestselling")
_SHARES = ("copy_link", "whatsapp", "facebook", "x", "email")
_COUPONS = ("SAVE10", "TECH15", "WELCOME5", "FREESHIP")
_OUTBOUND = (
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://www.rtings.com/headphones",
    "https://www.reddit.com/r/headphones/",
    "https://www.notebookcheck.net/",
)
_ERRORS = (
    ("TypeError: Cannot read properties of undefined (reading 'price')", "/static/app.3f9c1a.js",
     1423),
    ("ReferenceError: gtag is not defined", "/static/vendor.81b2e0.js", 88),
    ("TypeError: undefined is not an object (evaluating 'window.dataLayer.push')",
     "/static/app.3f9c1a.js", 57),
    ("Script error.", "", 0),
    ("ChunkLoadError: Loading chunk 7 failed.", "/static/runtime.a01c55.js", 212),
)  # fmt: skip


class PageEvents:
    def __init__(self, cat: Catalog, rng: Random) -> None:
        self.cat, self.rng = cat, rng
        table = Random(7)  # standard normal draws, indexed by 10 random bits
        self.z = [table.gauss(0.0, 1.0) for _ in range(1024)]
        self.left_site = False  # the last page ended with a click to a partner shop
        self.identified = False  # the last page has an identify event
        self.v: Visitor | None = None
        self.returning = False
        self.currency = "USD"
        self.cart: Product | None = None
        self.tables = {dev: vitals_tables(rng, dev) for dev in _VITALS}
        self.vitals = self.tables["desktop"]

    def begin(self, v: Visitor, returning: bool, currency: str) -> None:
        self.v, self.returning, self.currency, self.cart = v, returning, currency, None
        self.vitals = self.tables.get(v.device, self.tables["desktop"])

    def landing(self, kind: str) -> Page:
        cat, rng = self.cat, self.rng
        if kind == "product":
            return cat.products.pick(rng)
        if kind == "category":
            return cat.categories.pick(rng)
        if kind == "blog":
            return cat.blog.pick(rng)
        if kind == "search":
            return (cat.misspelt if rng.random() < 0.1 else cat.searches).pick(rng)
        return cat.home if kind == "home" else cat.fixed[kind]

    def page(
        self, page: Page, t0: int, depth: int, came_from: str, next_page: NextPage
    ) -> tuple[Page | None, list[Item], int]:
        """Events of one human page view starting at `t0`: (next page or None, items, exit time)."""
        rng, cat, v = self.rng, self.cat, self.v
        assert v is not None
        r, gb, z = rng.random, rng.getrandbits, self.z
        kind = page.kind
        dwell = min(max(int(_DWELL.get(kind, 30_000) * math.exp(0.85 * z[gb(10)])), 2500), 900_000)
        t_exit = t0 + dwell
        items: list[Item] = []
        add = items.append
        self.identified = False
        if depth == 0:
            add((t0, "session_start", None))
            if v.user_id is not None and self.returning and r() < 0.5:  # signs in again
                add((t0 + 40, "identify", {"plan": "pro" if v.key % 5 == 0 else "free"}))
                self.identified = True
        add((t0, "page_view", {"variant": v.variant} if kind == "product" else None))
        self.left_site = False
        nxt: Page | None = None
        p = page.product
        if p is not None:
            nxt = self._product(p, page, items, t0, dwell, depth, came_from, next_page)
        elif kind == "category":
            assert page.category is not None
            listing = cat.by_category[page.category]
            for _ in range(int(r() * r() * 4)):
                hp = listing.pick(rng).product
                assert hp is not None
                props = {"productId": hp.id, "productName": hp.name, "position": 1 + int(r() * 24)}
                props["source"] = "category"
                add((t0 + int(dwell * r()), "product_hover", props))
            self._filters(items, t0, dwell, 0.15, 0.1)
            nxt = next_page(page, depth)
        elif kind == "search":
            q = page.query
            n = cat.results.get(q or "", 0)
            add((t0 + 150, "search_query", {"query": q, "resultsCount": n}))
            if n == 0:
                add((t0 + 160, "zero_results", {"query": q}))
                nxt = self.landing("search") if r() < 0.45 else (cat.home if r() < 0.2 else None)
            else:
                self._filters(items, t0, dwell, 0.25, 0.15)
                nxt = next_page(page, depth)
        elif kind == "cart":
            nxt = cat.fixed["checkout"] if r() < 0.75 else None
        elif kind == "checkout":
            if self._form(items, "checkout", t0, dwell, 0.8):
                nxt = cat.fixed["thanks"]
        elif kind == "thanks":
            nxt = self._purchase(items, t0, next_page, page, depth)
        else:
            if kind == "blog" and page.related and r() < 0.06:
                bp = cat.product_pages[page.related[int(r() * len(page.related))]].product
                assert bp is not None
                add((t_exit - 120, "affiliate_click", self._aff(bp, 1 + int(r() * 5))))
                self.left_site = True
            elif kind == "blog" and r() < 0.03:
                url = _OUTBOUND[int(r() * len(_OUTBOUND))]
                add((t0 + int(dwell * r()), "outbound_click", {"url": url}))
            form_p = _FORMS.get(kind, 0.0)
            if form_p and r() < form_p:
                form = "contact" if kind == "contact" else "newsletter"
                if (
                    self._form(items, form, t0, dwell, 0.6 if form == "contact" else 0.55)
                    and form == "newsletter"
                ):
                    self._identify(items, t_exit - 300, {"plan": "free", "newsletter": True})
            if kind == "deals" and r() < 0.05:
                code = _COUPONS[int(r() * len(_COUPONS))]
                add((t0 + int(dwell * r()), "copied_coupon", {"code": code}))
            nxt = None if self.left_site and r() < 0.7 else next_page(page, depth)
        np = nxt.product if nxt is not None and kind in _LISTINGS and self.cart is None else None
        if np is not None:  # clicked through to a product
            props = {"productId": np.id, "productName": np.name, "category": np.category}
            props["position"], props["source"] = 1 + int(r() * r() * 24), kind
            add((t_exit - 100, "product_click", props))
        self._common(items, t0, dwell)
        add((t_exit, "page_exit", {"timeOnPage": round(dwell)}))  # ms, as the tracker sends
        return nxt, items, t_exit

    def glance(self, page: Page, t0: int) -> tuple[list[Item], int]:
        """A visit that leaves the landing page within seconds, without interacting (a bounce):
        the page's load events and its exit beacon; (items, exit time)."""
        r, v = self.rng.random, self.v
        assert v is not None
        dwell = 1500 + int(8000 * r() * r())  # 1.5 to 9.5 s, most of them short
        self.identified = False
        p = page.product
        items: list[Item] = [
            (t0, "session_start", None),
            (t0, "page_view", {"variant": v.variant} if p is not None else None),
        ]
        if p is not None:  # the shop's page reports the product as it loads
            props: Props = {"productId": p.id, "productName": p.name, "category": p.category}
            props["price"], props["source"] = p.price, "landing"
            items.append((t0 + 200, "product_view", props))
        if r() < 0.85:  # as on every page; no interaction, so no INP (the tracker's vitals.js)
            ttfb_t, fcp_t, lcp_t, cls_t = self.vitals[:4]
            gb = self.rng.getrandbits
            ttfb = ttfb_t[gb(10)]
            vitals: Props = {"ttfb": ttfb, "fcp": ttfb + fcp_t[gb(10)], "lcp": ttfb + lcp_t[gb(10)]}
            cls = cls_t[gb(10)]
            if cls:  # reported once the layout shifted
                vitals["cls"] = cls
            items.append((t0 + dwell, "web_vitals", vitals))
        items.append((t0 + dwell, "page_exit", {"timeOnPage": dwell}))
        return items, t0 + dwell

    def _product(
        self, p: Product, page: Page, items: list[Item], t0: int, dwell: int, depth: int,
        came_from: str, next_page: NextPage,
    ) -> Page | None:  # fmt: skip
        """The product funnel: view, hovers, wishlist/compare/share, affiliate click or cart."""
        r, add, t_exit = self.rng.random, items.append, t0 + dwell
        pid = p.id
        props = {"productId": pid, "productName": p.name, "category": p.category, "price": p.price}
        props["source"] = came_from
        add((t0 + 200 + int(r() * 600), "product_view", props))
        if r() < 0.3:
            add((t0 + int(dwell * r()), "product_hover", {"productId": pid, "element": "gallery"}))
        if r() < 0.18:
            add(
                (
                    t0 + int(dwell * r()),
                    "affiliate_hover",
                    {"productId": pid, "platform": p.platform},
                )
            )
        if r() < 0.03:
            add(
                (
                    t0 + int(dwell * r()),
                    "product_wishlist",
                    {"productId": pid, "productName": p.name},
                )
            )
        compare = r() < 0.035
        if compare:
            other = self.cat.by_category[p.category].pick(self.rng).product
            assert other is not None
            props = {"productId": pid, "compareWith": other.id}
            add((t0 + int(dwell * r()), "product_compare", props))
        if r() < 0.012:
            props = {"productId": pid, "channel": _SHARES[int(r() * len(_SHARES))]}
            add((t0 + int(dwell * r()), "shared_product", props))
        if r() < 0.02:
            props = {"productId": pid, "code": _COUPONS[int(r() * len(_COUPONS))]}
            add((t0 + int(dwell * r()), "copied_coupon", props))
        b = self.v is not None and self.v.variant == "B"  # the A/B test: B's layout converts better
        if r() < (0.135 if b else 0.10):
            add(
                (
                    t_exit - 150,
                    "affiliate_click",
                    self._aff(p, 1 if r() < 0.6 else 2 + int(r() * 3)),
                )
            )
            self.left_site = True
            return next_page(page, depth) if r() < 0.3 else None
        if r() < (0.055 if b else 0.04):
            add((t_exit - 200, "click", {"element": "add_to_cart", "productId": pid}))
            self.cart = p
            return self.cat.fixed["cart"]
        if compare and r() < 0.5:
            return self.cat.fixed["compare"]
        return next_page(page, depth)

    @staticmethod
    def _aff(p: Product, position: int) -> Props:
        return {
            "productId": p.id,
            "platform": p.platform,
            "position": position,
            "ctaText": p.cta,
            "url": p.affiliate_url,
        }

    def _filters(
        self, items: list[Item], t0: int, dwell: int, p_filter: float, p_sort: float
    ) -> None:
        r = self.rng.random
        if r() < p_filter:
            f, val = _FILTERS[int(r() * len(_FILTERS))]
            items.append((t0 + int(dwell * r()), "search_filter", {"filter": f, "value": val}))
        if r() < p_sort:
            items.append(
                (t0 + int(dwell * r()), "search_sort", {"sort": _SORTS[int(r() * len(_SORTS))]})
            )

    def _form(self, items: list[Item], form: str, t0: int, dwell: int, p_submit: float) -> bool:
        r = self.rng.random
        start = t0 + int(dwell * 0.3 * r())
        items.append((start, "form_start", {"formId": form}))
        done = t0 + dwell - 500 - int((t0 + dwell - 500 - start) * 0.3 * r())
        if r() < p_submit:
            items.append((done, "form_submit", {"formId": form}))
            return True
        last = (
            "card_number" if form == "checkout" else ("message" if form == "contact" else "email")
        )
        items.append((done, "form_abandon", {"formId": form, "lastField": last}))
        return False

    def _identify(self, items: list[Item], ts: int, traits: Props) -> None:
        v = self.v
        if v is not None and v.user_id is None:
            v.user_id = f"usr_{self.rng.getrandbits(48):012x}"
            items.append((ts, "identify", traits))
            self.identified = True

    def _purchase(
        self, items: list[Item], t0: int, next_page: NextPage, page: Page, depth: int
    ) -> Page | None:
        p, r = self.cart, self.rng.random
        if p is None:
            return None
        qty = 2 if r() < 0.12 else 1
        revenue = round(p.price * qty + (0.0 if p.price * qty >= 49 else 4.99), 2)
        items.append(
            (
                t0 + 400,
                "purchase",
                {
                    "revenue": revenue,
                    "currency": self.currency,
                    "orderId": f"ORD-{self.rng.getrandbits(40):010X}",
                    "productId": p.id,
                    "quantity": qty,
                },
            )
        )
        if r() < 0.7:
            self._identify(items, t0 + 900, {"plan": "free", "customer": True})
        self.cart = None
        return next_page(page, depth)

    def _common(self, items: list[Item], t0: int, dwell: int) -> None:
        """Scrolls, heartbeats, idleness, clicks, errors and web vitals: every human page view."""
        rng, add = self.rng, items.append
        r, gb = rng.random, rng.getrandbits
        t_exit = t0 + dwell
        k = int(min(1.0, dwell / 90_000 * (0.25 + r())) * 5.4)
        if k:
            step = dwell // (k + 1)
            for j in range(k):
                add((t0 + step * (j + 1), "scroll_depth", {"depth": _DEPTHS[j]}))
        if dwell > 30_000:
            for hb in range(t0 + 30_000, t_exit, 30_000):
                add((hb, "heartbeat", None))
            if dwell > 180_000 and r() < 0.4:
                idle = t0 + 60_000 + int((dwell - 90_000) * r())
                add((idle, "idle_start", None))
                add((min(idle + 30_000 + int(r() * 60_000), t_exit - 10), "idle_end", None))
        x = r()  # one draw for the occasional extras
        if x < 0.05:
            add((t0 + int(dwell * r()), "click", {"element": _CLICKS[int(r() * len(_CLICKS))]}))
        elif x < 0.057:
            msg, src, line = _ERRORS[int(r() * len(_ERRORS))]
            add(
                (
                    t0 + int(dwell * r()),
                    "js_error",
                    {"message": msg, "source": src and self.cat.home.url + src[1:], "line": line},
                )
            )
        elif x < 0.0595:
            add(
                (
                    t0 + int(dwell * r()),
                    "api_error",
                    {
                        "endpoint": "/api/cart",
                        "method": "POST",
                        "status": (500, 502, 503)[int(r() * 3)],
                    },
                )
            )
        if r() < 0.85:
            ttfb_t, fcp_t, lcp_t, cls_t, inp_t = self.vitals
            ttfb = ttfb_t[gb(10)]
            lcp = ttfb + lcp_t[gb(10)]
            if lcp > 4000:
                add((min(t0 + lcp, t_exit - 5), "slow_page", {"lcp": lcp, "ttfb": ttfb}))
            add(
                (
                    t_exit,
                    "web_vitals",
                    {
                        "ttfb": ttfb,
                        "fcp": ttfb + fcp_t[gb(10)],
                        "lcp": lcp,
                        "cls": cls_t[gb(10)],
                        "inp": inp_t[gb(10)],
                    },
                )
            )


def vitals_tables(rng: Random, device: str) -> Vitals:
    """1024 log-normal draws per web vital around the device's medians (indexed by 10 bits)."""
    ttfb_m, fcp_m, lcp_m, cls_m, inp_m = _VITALS[device]
    ln = rng.lognormvariate
    n = range(1024)
    return (
        [int(ttfb_m * ln(0.0, 0.5)) for _ in n],
        [int((fcp_m - ttfb_m) * ln(0.0, 0.45)) for _ in n],  # fcp - ttfb
        [int((lcp_m - ttfb_m) * ln(0.0, 0.55)) for _ in n],  # lcp - ttfb
        [0.0 if rng.random() < 0.45 else round(cls_m * ln(0.0, 1.0), 3) for _ in n],
        [int(inp_m * ln(0.0, 0.6)) for _ in n],
    )
