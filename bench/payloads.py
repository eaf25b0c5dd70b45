"""Realistic collect payloads: ~600-byte tracker events with unique ids.

The load generators cannot call Python per request, so an event is rendered once per template
and split where the per-request values go (visitor, session, event id); wrk's Lua joins the
pieces, and hey sends one fixed body.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)
# Markers replaced per request; they cannot occur in the JSON the templates produce.
VISITOR, SESSION, EVENT_ID = "\x01", "\x02", "\x03"

_PAGES = [
    ("/", "Deals of the day - Bench Shop"),
    ("/c/headphones", "Headphones - Bench Shop"),
    ("/p/wireless-noise-cancelling-headphones-xm5", "Wireless noise-cancelling headphones XM5"),
    ("/p/usb-c-charger-65w-gan", "USB-C charger 65 W GaN - Bench Shop"),
    ("/blog/best-budget-laptops-2026", "The best budget laptops of 2026, tested"),
    ("/search", "Search results for \u201cmechanical keyboard\u201d"),
    ("/compare/kindle-vs-kobo", "Kindle vs Kobo: which e-reader should you buy?"),
    ("/c/garden/robot-mowers", "Robot mowers - Garden - Bench Shop"),
]
_REFERRERS = [
    "https://www.google.com/",
    "https://duckduckgo.com/",
    "https://www.reddit.com/r/BuyItForLife/comments/1abcde/recommendations/",
    "",
    "https://news.ycombinator.com/item?id=41234567",
]
_TYPES = ["page_view", "scroll_depth", "product_view", "affiliate_click", "heartbeat", "click"]


def _event(rng: random.Random, now_ms: int) -> dict[str, Any]:
    path, title = rng.choice(_PAGES)
    event_type = rng.choice(_TYPES)
    props: dict[str, Any] = {"variant": rng.choice(["A", "B"]), "lang": "en-GB"}
    props |= {"contentGroup": rng.choice(["electronics/audio", "home/garden", "guides"])}
    props |= {"pageType": rng.choice(["product", "category", "article", "search"])}
    props |= {"tz": rng.choice(["Europe/Berlin", "Europe/London", "America/New_York"])}
    if event_type in ("product_view", "affiliate_click"):
        props |= {"productId": f"sku-{rng.randint(1000, 9999)}", "price": 129.99, "currency": "EUR"}
        props |= {
            "merchant": rng.choice(["amazon", "ebay", "bestbuy"]),
            "position": rng.randint(1, 24),
        }
    elif event_type == "scroll_depth":
        props |= {"depth": rng.choice([25, 50, 75, 100])}
    else:
        props |= {"loadTimeMs": rng.randint(300, 2500), "ttfbMs": rng.randint(40, 400)}
    query = (
        "?utm_source=newsletter&utm_medium=email&utm_campaign=spring-sale"
        if rng.random() < 0.3
        else ""
    )
    return {
        "eventType": event_type,
        "eventId": EVENT_ID,
        "timestamp": now_ms,
        "sessionId": SESSION,
        "visitorId": VISITOR,
        "consent": True,
        "pageUrl": f"https://bench.example{path}{query}",
        "pagePath": path,
        "pageTitle": title,
        "referrer": rng.choice(_REFERRERS),
        "screenResolution": rng.choice(["1920x1080", "2560x1440", "390x844", "1366x768"]),
        "viewport": rng.choice(["1903x937", "1280x649", "390x664"]),
        "properties": props,
    }


def templates(count: int = 16, seed: int = 7) -> list[list[str]]:
    """`count` events, each split into the 4 pieces around visitor, session and event id."""
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    out: list[list[str]] = []
    for _ in range(count):
        text = json.dumps(_event(rng, now_ms), separators=(",", ":"), ensure_ascii=False)
        text = text.replace(json.dumps(VISITOR), '"' + VISITOR + '"')
        text = text.replace(json.dumps(SESSION), '"' + SESSION + '"')
        text = text.replace(json.dumps(EVENT_ID), '"' + EVENT_ID + '"')
        out.append(_split(text))
    return out


def _split(text: str) -> list[str]:
    """Split at the three markers, in the order they occur: pieces alternate with values."""
    order = sorted((text.index(m), m) for m in (VISITOR, SESSION, EVENT_ID))
    assert [m for _, m in order] == [EVENT_ID, SESSION, VISITOR], "template field order changed"
    pieces, rest = [], text
    for _, marker in order:
        before, rest = rest.split(marker, 1)
        pieces.append(before)
    pieces.append(rest)
    return pieces


def fixed_body(site_id: str, batch: int, visitor: int = 0) -> bytes:
    """One request body, the same every time (for hey): `batch` events of one visitor.

    No `eventId`: the server assigns one, so every repetition is a new stored event.
    """
    who = f"hey-{time.time_ns():x}-{visitor}"
    events = []
    for parts in templates(batch, seed=11 + visitor):
        event = json.loads(parts[0] + parts[1] + who + "-s" + parts[2] + who + parts[3])
        del event["eventId"]
        events.append(event)
    # The tracker always sends this form (tracker/src/transport.js), one event or many.
    return json.dumps({"siteId": site_id, "events": events}, separators=(",", ":")).encode()
