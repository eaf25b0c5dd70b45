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
# Varied traffic (`--traffic varied`): what real visitors differ in besides their ids, so that
# the loader's per-value work (user agents parsed, networks located, lookup tables grown) is
# measured too, not only its per-event work on one agent from one address.
_CHROME = "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} {m}Safari/537.36"
_DESKTOPS = [
    "Windows NT 10.0; Win64; x64",
    "Macintosh; Intel Mac OS X 10_15_7",
    "X11; Linux x86_64",
    "X11; CrOS x86_64 14541.0.0",
]
_PHONES = ["SM-S918B", "SM-A546B", "Pixel 8", "Pixel 7a", "moto g54 5G", "2201116SG", "CPH2581"]
_IOS = ["16_7_10", "17_4_1", "17_5_1", "17_6_1", "18_0", "18_1_1", "18_2"]


def agents(count: int = 2000, seed: int = 3) -> list[str]:
    """`count` distinct browser user agents in the proportions sites see (Chrome on desktop
    and Android, Safari on iPhone and Mac, Firefox, Edge, in-app browsers); no bots."""
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < count:
        kind = rng.random()
        v, b, p = rng.randint(118, 131), rng.randint(6000, 6800), rng.randint(0, 250)
        if kind < 0.35:
            os_ = rng.choice(_DESKTOPS)
            ua = f"Mozilla/5.0 ({os_}) " + _CHROME.format(v=v, b=b, p=p, m="")
            if rng.random() < 0.25:
                ua += f" Edg/{v}.0.{b}.{rng.randint(0, 99)}"
        elif kind < 0.60:
            phone = rng.choice(_PHONES)
            android = rng.randint(10, 15)
            ua = f"Mozilla/5.0 (Linux; Android {android}; {phone}) "
            ua += _CHROME.format(v=v, b=b, p=p, m="Mobile ")
        elif kind < 0.82:
            ios = rng.choice(_IOS)
            ua = f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 "
            if rng.random() < 0.3:  # an in-app browser: one string per app build
                ua += f"(KHTML, like Gecko) Mobile/15E148 Instagram {rng.randint(300, 360)}.0.0."
                ua += (
                    f"{rng.randint(10, 40)}.{rng.randint(100, 999)} (iPhone15,{rng.randint(2, 5)})"
                )
            else:
                ua += f"(KHTML, like Gecko) Version/{ios.split('_')[0]}.{rng.randint(0, 6)} "
                ua += "Mobile/15E148 Safari/604.1"
        elif kind < 0.92:
            f = rng.randint(115, 133)
            os_ = rng.choice(_DESKTOPS[:3])
            ua = f"Mozilla/5.0 ({os_}; rv:{f}.0) Gecko/20100101 Firefox/{f}.0"
        else:
            mac = rng.choice(["10_15_7", "14_5", "15_1"])
            ua = f"Mozilla/5.0 (Macintosh; Intel Mac OS X {mac}) AppleWebKit/605.1.15 "
            version = f"{rng.randint(16, 18)}.{rng.randint(0, 6)}"
            ua += f"(KHTML, like Gecko) Version/{version} Safari/605.1.15"
        out.add(ua)
    return sorted(out)


# First octets of networks that hold many home and mobile connections (none private).
FIRST_OCTETS = [
    24,
    31,
    37,
    46,
    62,
    66,
    68,
    71,
    73,
    77,
    79,
    80,
    81,
    82,
    83,
    84,
    85,
    86,
    87,
    88,
    89,
    90,
    91,
    92,
    93,
    94,
    95,
    98,
    99,
    109,
    151,
    176,
    178,
    185,
    188,
    193,
    212,
    217,
]


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
