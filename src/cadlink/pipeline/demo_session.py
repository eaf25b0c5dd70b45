"""One synthetic visit: the requests a tracker would send while a visitor browses the demo shop.

`SessionSimulator.session()` appends `Envelope`s (one per tracker request) to a list. Each page
view is sent as the tracker batches it: the page load, one request per 30-second heartbeat with
whatever happened since, and the exit beacon (web vitals, page_exit).
"""

from __future__ import annotations

import math
from bisect import bisect
from itertools import accumulate
from operator import itemgetter
from pathlib import Path
from random import Random

from msgspec.structs import replace

from cadlink.events import Envelope, IncomingEvent
from cadlink.pipeline.demo_catalog import SOURCES, Catalog, Page, build_catalog
from cadlink.pipeline.demo_devices import (
    BOT_COUNTRIES,
    COUNTRY_CODES,
    CURRENCY,
    GEOIP_PATH,
    GOOGLE_TLD,
    DeviceSampler,
    IpSampler,
)
from cadlink.pipeline.demo_pages import PageEvents, Props

DAY_MS = 86_400_000
BOT_SHARE = 0.022  # of sessions
RETURN_SHARE = 0.33  # of human sessions that are a returning visitor, once there are some
RETURNER_SHARE = 0.5  # of new visitors who mean to come back on a later day
LOYAL_SHARE = 0.4  # of returning visitors who come back yet again
CONSENT_SHARE = 0.45
_M64 = (1 << 64) - 1
# Of new visitors from each source, the share who leave the landing page within seconds
# without interacting (returning visitors half as often): with the visits that end after
# one page for other reasons, the demo's bounce rate lands near a real shop's 35-45%.
_GLANCE = {
    "direct": 0.3, "google": 0.42, "bing": 0.42, "duckduckgo": 0.42, "ecosia": 0.42,
    "facebook": 0.6, "instagram": 0.6, "reddit": 0.55, "x": 0.6, "pinterest": 0.55,
    "chatgpt": 0.25, "newsletter": 0.25, "google-ads": 0.5, "facebook-ads": 0.65,
    "instagram-influencer": 0.65, "partner": 0.35, "partner-blog": 0.38,
}  # fmt: skip
_FLUSH = frozenset({"page_view", "heartbeat", "page_exit"})
_SUFFIX = tuple(f"{i:02x}" for i in range(256))
_ts = itemgetter(0)

# Where a visitor goes next, by the kind of page they are on.
_NAV = {
    "home": "category:35 product:25 search:15 blog:10 deals:12 about:2 contact:1",
    "category": "product:70 category:8 search:8 home:6 deals:4",
    "product": "product:45 category:25 search:10 home:8 blog:5 compare:3",
    "blog": "product:45 blog:25 home:10 category:10 newsletter:3 deals:7",
    "search": "product:75 search:10 category:10 home:5",
    "deals": "product:70 category:15 home:10 search:5",
    "compare": "product:80 category:20",
    "about": "home:50 contact:30 blog:20",
    "contact": "home:100",
    "newsletter": "home:60 blog:40",
    "thanks": "home:70 deals:30",
}
_CONTINUE = {
    "home": 0.7, "category": 0.75, "product": 0.5, "blog": 0.35, "search": 0.8, "deals": 0.7,
    "compare": 0.7, "about": 0.5, "contact": 0.3, "newsletter": 0.4, "thanks": 0.15,
}  # fmt: skip


def _kinds(spec: str) -> tuple[tuple[str, ...], list[float]]:
    pairs = [p.split(":") for p in spec.split()]
    return tuple(k for k, _ in pairs), list(accumulate(float(w) for _, w in pairs))


def anon_visitor(key: int, day: int) -> int:
    """A signed 64-bit daily hash of a synthetic visitor (splitmix64), like the server's."""
    x = (key * 0x9E3779B97F4A7C15 + (day + 1) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    x ^= x >> 31
    return x - (1 << 64) if x >> 63 else x


class Visitor:
    """A synthetic person (one browser); returning visitors keep all of this."""

    __slots__ = (
        "consent",
        "country",
        "device",
        "ip",
        "key",
        "last_day",
        "screen",
        "ua",
        "user_id",
        "variant",
        "viewport",
        "visitor_id",
    )

    def __init__(
        self,
        key: int,
        country: str,
        ip: str,
        device: str,
        ua: str,
        screen: str | None,
        viewport: str | None,
        visitor_id: str | None,
        variant: str,
    ) -> None:
        self.key, self.country, self.ip, self.device, self.ua = key, country, ip, device, ua
        self.screen, self.viewport, self.visitor_id = screen, viewport, visitor_id
        self.consent = visitor_id is not None
        self.variant = variant
        self.user_id: str | None = None
        self.last_day = -1


_BOT = Visitor(0, "", "", "bot", "", None, None, None, "A")


class SessionSimulator:
    def __init__(self, site_id: str, domain: str, rng: Random, geoip: Path = GEOIP_PATH) -> None:
        self.site_id = site_id
        self.rng = rng
        self.cat: Catalog = build_catalog(domain)
        self.devices = DeviceSampler(rng)
        self.ips = IpSampler(geoip)
        self.pool: dict[str, list[Visitor]] = {cc: [] for cc in COUNTRY_CODES}
        self.keys = 0
        self.pages = PageEvents(self.cat, rng)
        self.nav = {k: _kinds(v) for k, v in _NAV.items()}
        self.sources = [
            (
                name,
                ref.split("|") if ref else None,
                [u.split("|") for u in utm] if utm else None,
                _kinds(land),
            )
            for name, _, _, ref, utm, land in SOURCES
        ]
        self.src_new = list(accumulate(s[1] for s in SOURCES))
        self.src_ret = list(accumulate(s[2] for s in SOURCES))
        self.template = IncomingEvent(event_type="page_view", site_id=site_id)

    # -- visitors ---------------------------------------------------------------------------

    def _visitor(self, country_cum: list[float], day: int) -> tuple[Visitor, bool]:
        r = self.rng.random
        cc = COUNTRY_CODES[bisect(country_cum, r() * country_cum[-1])]
        pool = self.pool[cc]
        if pool and r() < RETURN_SHARE:
            i = int(len(pool) * math.sqrt(r()))  # recent visitors come back more
            v = pool[i]
            if v.last_day < day:
                v.last_day = day
                if r() >= LOYAL_SHARE:  # this was the last visit
                    pool[i] = pool[-1]
                    pool.pop()
                return v, True
        self.keys += 1
        device, ua, screen, viewport = self.devices.human(self.rng)
        vid = f"{self.rng.getrandbits(128):032x}" if r() < CONSENT_SHARE else None
        v = Visitor(
            self.keys,
            cc,
            self.ips.prefix(self.rng, cc),
            device,
            ua,
            screen,
            viewport,
            vid,
            "B" if r() < 0.5 else "A",
        )
        v.last_day = day
        if r() < RETURNER_SHARE:
            pool.append(v)
        return v, False

    # -- sessions ---------------------------------------------------------------------------

    def session(self, start: int, country_cum: list[float], end: int, out: list[Envelope]) -> int:
        """Simulate one visit from `start` (ms); append its requests to `out`; count its events."""
        rng = self.rng
        r = rng.random
        if r() < BOT_SHARE:
            return self._bot(start, end, out)
        day = start // DAY_MS
        v, returning = self._visitor(country_cum, day)
        cum = self.src_ret if returning else self.src_new
        name, refs, utms, (kinds, kcum) = self.sources[bisect(cum, r() * cum[-1])]
        if refs is None:
            referrer = None
        else:
            referrer = refs[int(r() * len(refs))]
            if referrer == "google":
                referrer = f"https://www.google.{GOOGLE_TLD.get(v.country, 'com')}/"
        utm: list[str | None] | None = None
        if utms is not None:
            utm = [alts[int(r() * len(alts))] or None for alts in utms]
            if name == "newsletter":
                utm[2] = f"weekly-deals-w{(day + 3) // 7 % 52 + 1:02d}"
        pages = self.pages
        page = pages.landing(kinds[bisect(kcum, r() * kcum[-1])])
        url = page.url
        if utm is not None:
            q = "&".join(
                f"utm_{k}={val.replace(' ', '+')}"
                for k, val in zip(
                    ("source", "medium", "campaign", "term", "content"), utm, strict=True
                )
                if val
            )
            url += ("&" if "?" in url else "?") + q
        stmpl = replace(
            self.template,
            session_id=f"{rng.getrandbits(128):032x}",
            visitor_id=v.visitor_id,
            consent=v.consent,
            screen_resolution=v.screen,
            viewport=v.viewport,
        )
        ctx = (anon_visitor(v.key, day), v.ip, v.ua)
        pages.begin(v, returning, CURRENCY[v.country])
        glance = r() < _GLANCE[name] * (0.5 if returning else 1.0)
        t, n, i, came_from = start, 0, 0, "landing"
        while True:
            ptmpl = replace(
                stmpl,
                page_url=url,
                page_path=page.path,
                page_title=page.title,
                referrer=referrer,
                user_id=v.user_id,
            )
            if utm is not None:
                ptmpl = replace(
                    ptmpl,
                    utm_source=utm[0],
                    utm_medium=utm[1],
                    utm_campaign=utm[2],
                    utm_term=utm[3],
                    utm_content=utm[4],
                )
                utm = None
            if glance:
                items, t_exit = pages.glance(page, t)
                return n + self._emit(items, ptmpl, ctx, v, out)
            nxt, items, t_exit = pages.page(page, t, i, came_from, self._next)
            n += self._emit(items, ptmpl, ctx, v, out)
            if nxt is None or t_exit > end or i >= 40:
                return n
            i += 1
            came_from, referrer = page.kind, page.url
            page, url = nxt, nxt.url
            t = t_exit + 300 + int(r() * 2500)
            if came_from == "product" and pages.left_site:  # back from the shop's partner
                t += 20_000 + int(r() * 280_000)

    def _next(self, page: Page, depth: int) -> Page | None:
        """Where the visitor goes after `page` (None: leaves the site)."""
        r = self.rng.random
        if r() >= _CONTINUE.get(page.kind, 0.5) * 0.94**depth:
            return None
        kinds, cum = self.nav[page.kind]
        kind = kinds[bisect(cum, r() * cum[-1])]
        if kind == "product":
            cat = self.cat
            if page.category is not None and page.kind != "blog" and r() < 0.7:
                return cat.by_category[page.category].pick(self.rng)
            if page.related:
                return cat.product_pages[page.related[int(r() * len(page.related))]]
        return self.pages.landing(kind)

    def _emit(
        self,
        items: list[tuple[int, str, Props | None]],
        tmpl: IncomingEvent,
        ctx: tuple[int, str, str],
        v: Visitor,
        out: list[Envelope],
    ) -> int:
        """Wrap one page's items into events and envelopes (one per tracker request)."""
        items.sort(key=_ts)
        # Event ids: 120 random bits per page plus the event's index on the page (a page has
        # < 100 events: dwell is capped at 15 minutes), 32 hex digits like a UUID.
        base = f"{self.rng.getrandbits(120):030x}"
        anon, ip, ua = ctx
        site, rep, env, flush, suffix = self.site_id, replace, Envelope, _FLUSH, _SUFFIX
        identifies = self.pages.identified
        evs: list[IncomingEvent] = []
        add = evs.append
        for j, (ts, et, props) in enumerate(items):
            if identifies and et == "identify":
                tmpl = rep(tmpl, user_id=v.user_id)  # the tracker sends userId from now on
            add(rep(tmpl, event_type=et, event_id=base + suffix[j], timestamp=ts, properties=props))
            if et in flush:
                out.append(env(ts, site, anon, ip, ua, evs))
                evs = []
                add = evs.append
        if evs:
            out.append(env(items[-1][0], site, anon, ip, ua, evs))
        return len(items)

    # -- bots -------------------------------------------------------------------------------

    def _bot(self, start: int, end: int, out: list[Envelope]) -> int:
        rng = self.rng
        r = rng.random
        kind, ua, screen = self.devices.bot(rng)
        cc = BOT_COUNTRIES[int(r() * len(BOT_COUNTRIES))]
        self.keys += 1
        ctx = (anon_visitor(self.keys, start // DAY_MS), self.ips.prefix(rng, cc), ua)
        tmpl = replace(self.template, screen_resolution=screen, viewport=screen)
        cat, t, n = self.cat, start, 0
        items: list[tuple[int, str, Props | None]]
        if kind == "crawler":  # renders pages without storage: a new session per page
            for _ in range(3 + int(r() * 8)):
                page = cat.all_pages[int(r() * len(cat.all_pages))]
                sid = f"{rng.getrandbits(128):032x}"
                ptmpl = replace(
                    tmpl,
                    session_id=sid,
                    page_url=page.url,
                    page_path=page.path,
                    page_title=page.title,
                )
                items = [(t, "session_start", None), (t, "page_view", self._variant(page))]
                n += self._emit(items, ptmpl, ctx, _BOT, out)
                t += 3000 + int(r() * 20_000)
        elif kind == "scraper":  # walks the product catalogue quickly in one session
            stmpl = replace(tmpl, session_id=f"{rng.getrandbits(128):032x}")
            first = True
            for _ in range(4 + int(r() * 12)):
                page = cat.product_pages[int(r() * len(cat.product_pages))]
                p = page.product
                assert p is not None
                ptmpl = replace(
                    stmpl, page_url=page.url, page_path=page.path, page_title=page.title
                )
                dwell = 800 + int(r() * 2500)
                items = [
                    (t, "page_view", self._variant(page)),
                    (
                        t + 200,
                        "product_view",
                        {
                            "productId": p.id,
                            "productName": p.name,
                            "category": p.category,
                            "price": p.price,
                            "source": "direct",
                        },
                    ),
                    (t + dwell, "page_exit", {"timeOnPage": dwell}),  # ms, as the tracker sends
                ]
                if first:
                    items.insert(0, (t, "session_start", None))
                    first = False
                n += self._emit(items, ptmpl, ctx, _BOT, out)
                t += dwell + 500 + int(r() * 2000)
        else:  # link previews and referrer spam: a bare page view
            page = cat.home if kind == "spam" else cat.products.pick(rng)
            ref = "https://seo-traffic-boost.example/" if kind == "spam" else None
            ptmpl = replace(
                tmpl, page_url=page.url, page_path=page.path, page_title=page.title, referrer=ref
            )
            n += self._emit([(t, "page_view", self._variant(page))], ptmpl, ctx, _BOT, out)
        return n

    def _variant(self, page: Page) -> Props | None:
        """Page-view properties of a bot: product pages run the A/B test for bots too."""
        return {"variant": "B" if self.rng.random() < 0.5 else "A"} if page.product else None
