"""Who visits the demo shop: countries, devices, browsers, bots and network prefixes.

Static tables for the synthetic traffic generator (`cadlink.pipeline.demo`), precomputed into
cumulative weights so that sampling is one `random()` plus a `bisect`.
"""

from __future__ import annotations

import functools
from bisect import bisect
from itertools import accumulate
from pathlib import Path
from random import Random

GEOIP_PATH = Path("/usr/share/tor/geoip")

# (country, share of human traffic, UTC offset in hours for the daily rhythm, shop currency)
COUNTRIES: tuple[tuple[str, float, int, str], ...] = (
    ("US", 30.0, -5, "USD"), ("DE", 11.0, 1, "EUR"), ("GB", 9.0, 0, "GBP"),
    ("FR", 6.0, 1, "EUR"), ("IN", 6.0, 5, "USD"), ("CA", 4.5, -5, "USD"),
    ("NL", 3.5, 1, "EUR"), ("BR", 3.0, -3, "USD"), ("AU", 3.0, 10, "USD"),
    ("ES", 2.5, 1, "EUR"), ("IT", 2.5, 1, "EUR"), ("PL", 2.0, 1, "EUR"),
    ("SE", 1.5, 1, "EUR"), ("JP", 1.5, 9, "USD"), ("MX", 1.5, -6, "USD"),
    ("CH", 1.2, 1, "EUR"), ("AT", 1.2, 1, "EUR"), ("BE", 1.2, 1, "EUR"),
    ("IE", 1.0, 0, "EUR"), ("DK", 0.8, 1, "EUR"),
)  # fmt: skip
COUNTRY_CODES: tuple[str, ...] = tuple(c[0] for c in COUNTRIES)
CURRENCY: dict[str, str] = {c[0]: c[3] for c in COUNTRIES}
GOOGLE_TLD: dict[str, str] = {
    "US": "com", "DE": "de", "GB": "co.uk", "FR": "fr", "IN": "co.in", "CA": "ca", "NL": "nl",
    "BR": "com.br", "AU": "com.au", "ES": "es", "IT": "it", "PL": "pl", "SE": "se", "JP": "co.jp",
    "MX": "com.mx", "CH": "ch", "AT": "at", "BE": "be", "IE": "ie", "DK": "dk",
}  # fmt: skip

# Relative traffic by local hour (0-23) and by local weekday (Monday first).
DIURNAL: tuple[float, ...] = (
    0.35, 0.22, 0.15, 0.11, 0.10, 0.13, 0.25, 0.45, 0.65, 0.80, 0.90, 0.95,
    1.00, 0.98, 0.93, 0.90, 0.90, 0.92, 0.98, 1.05, 1.10, 1.05, 0.85, 0.58,
)  # fmt: skip
WEEKDAY: tuple[float, ...] = (1.05, 1.08, 1.06, 1.04, 0.98, 0.72, 0.75)

_CHROME = "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0"
_SAFARI_MAC = "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v} Safari/605.1.15"
_IOS = "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{s} Mobile/15E148 Safari/604.1"
_CHROME_V = ("129", "130", "131", "131", "132")
_FIREFOX_V = ("131.0", "132.0", "133.0")
_IOS_V = (("17_6_1", "17.6"), ("18_1", "18.1"), ("18_1_1", "18.1"), ("18_2", "18.2"))
_ANDROID_V = ("10; K", "13; SM-A536B", "14; SM-S918B", "14; Pixel 8", "14; 2312DRAA5")


def _uas() -> dict[str, tuple[str, ...]]:
    win, mac = "Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7"
    return {
        "win-chrome": tuple(
            f"Mozilla/5.0 ({win}) {_CHROME.format(v=v)} Safari/537.36" for v in _CHROME_V
        ),
        "win-edge": tuple(
            f"Mozilla/5.0 ({win}) {_CHROME.format(v=v)} Safari/537.36 Edg/{v}.0.0.0"
            for v in _CHROME_V
        ),
        "win-firefox": tuple(
            f"Mozilla/5.0 ({win}; rv:{v}) Gecko/20100101 Firefox/{v}" for v in _FIREFOX_V
        ),
        "mac-chrome": tuple(
            f"Mozilla/5.0 ({mac}) {_CHROME.format(v=v)} Safari/537.36" for v in _CHROME_V
        ),
        "mac-safari": tuple(
            f"Mozilla/5.0 ({mac}) {_SAFARI_MAC.format(v=v)}" for v in ("17.6", "18.1", "18.2")
        ),
        "mac-firefox": tuple(
            f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:{v}) Gecko/20100101 Firefox/{v}"
            for v in _FIREFOX_V
        ),
        "linux-chrome": tuple(
            f"Mozilla/5.0 (X11; Linux x86_64) {_CHROME.format(v=v)} Safari/537.36"
            for v in _CHROME_V
        ),
        "linux-firefox": tuple(
            f"Mozilla/5.0 (X11; {d}Linux x86_64; rv:{v}) Gecko/20100101 Firefox/{v}"
            for v in _FIREFOX_V
            for d in ("", "Ubuntu; ")
        ),
        "iphone-safari": tuple(
            f"Mozilla/5.0 (iPhone; CPU iPhone OS {o} like Mac OS X) {_IOS.format(s=s)}"
            for o, s in _IOS_V
        ),
        "iphone-chrome": tuple(
            f"Mozilla/5.0 (iPhone; CPU iPhone OS {o} like Mac OS X) AppleWebKit/605.1.15 "
            f"(KHTML, like Gecko) CriOS/{v}.0.6778.73 Mobile/15E148 Safari/604.1"
            for o, _ in _IOS_V
            for v in ("130", "131")
        ),
        "android-chrome": tuple(
            f"Mozilla/5.0 (Linux; Android {a}) {_CHROME.format(v=v)} Mobile Safari/537.36"
            for a in _ANDROID_V
            for v in _CHROME_V[2:]
        ),
        "android-samsung": tuple(
            f"Mozilla/5.0 (Linux; Android 14; SAMSUNG {m}) AppleWebKit/537.36 (KHTML, like Gecko) "
            "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"
            for m in ("SM-S918B", "SM-A546B", "SM-G991B")
        ),
        "android-firefox": (
            "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
        ),
        "ipad-safari": tuple(
            f"Mozilla/5.0 (iPad; CPU OS {o} like Mac OS X) {_IOS.format(s=s)}" for o, s in _IOS_V
        ),
        "android-tablet": tuple(
            f"Mozilla/5.0 (Linux; Android {a}) {_CHROME.format(v=v)} Safari/537.36"
            for a in ("13; SM-X710", "14; SM-X810", "13; Lenovo TB-J616F")
            for v in _CHROME_V[2:]
        ),
    }


_WIN_SCREENS = (
    ("1920x1080", 45), ("1366x768", 12), ("1536x864", 15), ("2560x1440", 10),
    ("1440x900", 5), ("1280x720", 4), ("1600x900", 5), ("3840x2160", 4),
)  # fmt: skip
_MAC_SCREENS = (
    ("1440x900", 20), ("1512x982", 25), ("1728x1117", 15), ("1920x1080", 15),
    ("2560x1440", 15), ("1680x1050", 10),
)  # fmt: skip
_IPHONE_SCREENS = (
    ("390x844", 30), ("393x852", 25), ("430x932", 15), ("375x667", 8), ("414x896", 10),
    ("428x926", 7), ("375x812", 5),
)  # fmt: skip
_ANDROID_SCREENS = (
    ("412x915", 25), ("360x800", 20), ("393x873", 15), ("384x854", 10), ("412x892", 10),
    ("360x780", 8), ("412x846", 6),
)  # fmt: skip
_IPAD_SCREENS = (
    ("810x1080", 35),
    ("820x1180", 30),
    ("768x1024", 15),
    ("1024x1366", 10),
    ("834x1194", 10),
)
_ATAB_SCREENS = (("800x1280", 50), ("1280x800", 25), ("1200x2000", 25))

# (device, user-agent family, weight within all humans, screens)
_PROFILES: tuple[tuple[str, str, float, tuple[tuple[str, int], ...]], ...] = (
    ("desktop", "win-chrome", 16.0, _WIN_SCREENS), ("desktop", "win-edge", 5.0, _WIN_SCREENS),
    ("desktop", "win-firefox", 2.5, _WIN_SCREENS), ("desktop", "mac-chrome", 6.0, _MAC_SCREENS),
    ("desktop", "mac-safari", 5.0, _MAC_SCREENS), ("desktop", "mac-firefox", 1.0, _MAC_SCREENS),
    ("desktop", "linux-chrome", 1.3, _WIN_SCREENS), ("desktop", "linux-firefox", 0.9, _WIN_SCREENS),
    ("mobile", "iphone-safari", 23.0, _IPHONE_SCREENS),
    ("mobile", "iphone-chrome", 3.0, _IPHONE_SCREENS),
    ("mobile", "android-chrome", 20.0, _ANDROID_SCREENS),
    ("mobile", "android-samsung", 4.0, _ANDROID_SCREENS),
    ("mobile", "android-firefox", 1.0, _ANDROID_SCREENS),
    ("tablet", "ipad-safari", 4.2, _IPAD_SCREENS), ("tablet", "android-tablet", 1.8, _ATAB_SCREENS),
)  # fmt: skip

# (kind, user agent, weight, screen or None). Crawlers render pages and run the tracker.
BOTS: tuple[tuple[str, str, float, str | None], ...] = (
    ("crawler", "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
     "+http://www.google.com/bot.html)", 30, "412x732"),
    ("crawler", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; "
     "+http://www.google.com/bot.html) Chrome/131.0.6778.69 Safari/537.36", 10, "1024x1024"),
    ("crawler", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
     "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36", 10, "1366x768"),
    ("crawler", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.2; "
     "+https://openai.com/gptbot", 5, "1280x720"),
    ("crawler", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", 5, None),
    ("crawler", "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)", 5,
     None),
    ("scraper", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/131.0.0.0 Safari/537.36", 20, "800x600"),
    ("preview", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", 5,
     None),
    ("spam", "python-requests/2.32.3", 5, None),
)  # fmt: skip
BOT_COUNTRIES: tuple[str, ...] = ("US", "US", "US", "DE", "NL", "IE", "FR")


# One sampled browser: (device type, user agent, screen, viewport). A plain tuple of strings, so
# the garbage collector stops tracking it.
Device = tuple[str, str, str, str]


class DeviceSampler:
    """Samples a realistic device for a new visitor, from precomputed cumulative weights."""

    POOL = 1024  # distinct devices sampled up front; a visitor takes one at random

    def __init__(self, rng: Random) -> None:
        uas = _uas()
        self._profiles = [(dev, uas[fam], _cum(s)) for dev, fam, _, s in _PROFILES]
        self._cum = list(accumulate(p[2] for p in _PROFILES))
        self._bot_cum = list(accumulate(b[2] for b in BOTS))
        self._pool = [self._sample(rng) for _ in range(self.POOL)]

    def human(self, rng: Random) -> Device:
        return self._pool[rng.getrandbits(10)]

    def _sample(self, rng: Random) -> Device:
        rnd = rng.random
        dev, uas, (screens, cum) = self._profiles[bisect(self._cum, rnd() * self._cum[-1])]
        ua = uas[int(rnd() * len(uas))]
        screen = screens[bisect(cum, rnd() * cum[-1])]
        w, h = (int(x) for x in screen.split("x"))
        if dev == "desktop":
            if rnd() < 0.7:  # maximised window minus the browser's toolbars
                viewport = f"{w - (15 if 'Windows' in ua else 0)}x{h - 90 - int(rnd() * 60)}"
            else:
                viewport = f"{int(w * (0.55 + 0.4 * rnd()))}x{int((h - 120) * (0.7 + 0.3 * rnd()))}"
        else:
            viewport = f"{w}x{h - (80 + int(rnd() * 110) if dev == 'mobile' else 70)}"
        return (dev, ua, screen, viewport)

    def bot(self, rng: Random) -> tuple[str, str, str | None]:
        """(kind, user agent, screen) of a bot."""
        kind, ua, _, screen = BOTS[bisect(self._bot_cum, rng.random() * self._bot_cum[-1])]
        return kind, ua, screen


def _cum(pairs: tuple[tuple[str, int], ...]) -> tuple[list[str], list[float]]:
    return [p[0] for p in pairs], list(accumulate(float(p[1]) for p in pairs))


_PREFIX_TRIES = 50  # ranges drawn before settling for one narrower than a /24


class IpSampler:
    """Real IPv4 /24 prefixes per country, from the IPFire database Debian's tor-geoipdb ships."""

    def __init__(self, path: Path = GEOIP_PATH) -> None:
        self._ranges = _load_ranges(str(path))

    def prefix(self, rng: Random, country: str) -> str:
        """A /24 of a random range of `country` ("" without the database) whose first address
        is in the range: the server locates a visitor by that address (the /24 it keeps of
        the IP), and a /24 drawn around an address of a range not aligned on 256 was found
        in the neighbouring range, another country (a sixth of the demo's buyers paid in a
        currency not their country's)."""
        ranges = self._ranges.get(country)
        if not ranges:
            return ""
        for _ in range(_PREFIX_TRIES):
            lo, hi, _ = ranges[int(rng.random() * len(ranges))].split(",")
            first, last = (int(lo) + 255) >> 8, int(hi) >> 8  # the /24s starting inside
            if first <= last:
                break
        else:  # only ranges narrower than a /24 (none of the countries sampled)
            first = last = int(lo) >> 8
        block = first + int(rng.random() * (last - first + 1))
        return f"{block >> 16}.{(block >> 8) & 255}.{block & 255}.0"


@functools.cache
def _load_ranges(path: str) -> dict[str, list[str]]:
    """Per country, the database's IPv4 lines `FROM_INT,TO_INT,CC` (read once per process)."""
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        return {}
    out: dict[str, list[str]] = {cc: [] for cc in (*COUNTRY_CODES, *BOT_COUNTRIES)}
    get = out.get
    for line in text.split("\n"):  # comments end in anything but a wanted country code
        lines = get(line[-2:])
        if lines is not None and line[:1].isdigit():
            lines.append(line)
    return {cc: lines for cc, lines in out.items() if lines}
