"""User agent → browser, OS, device type and bot verdict.

Parsing uses ua-parser 1.x with its Rust resolver (`ua-parser-rs`) only: the pure-Python
resolver is ~0.5 k/s and would stall the loader, so a missing accelerator is an error here
rather than a silent fallback. Crawlers come from two maintained lists: ua-parser's "Spider"
device rules and JayBizzle's Crawler-Detect patterns (PyPI `crawlerdetect`), the latter
compiled into a Rust regex set too (Python's `re` runs them at ~2 k/s, Rust at ~300 k/s).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

import ua_parser_rs
from crawlerdetect.providers import crawlers, exclusions  # type: ignore[import-untyped]
from ua_parser import Domain, load_lazy_builtins
from ua_parser.regex import Resolver as RustResolver

__all__ = ["DEVICE_TYPES", "UserAgentInfo", "UserAgentParser"]

DEVICE_TYPES: Final = frozenset({"desktop", "mobile", "tablet", "bot", "other"})

# Longer strings are garbage or attacks; cutting them bounds both regex time and cache memory.
_MAX_UA_LENGTH: Final = 512


@dataclass(frozen=True, slots=True)
class UserAgentInfo:
    """What the loader stores about a user agent."""

    browser: str
    browser_version: str
    os: str
    os_version: str
    device_type: str
    bot_reason: str | None

    @property
    def is_bot(self) -> bool:
        return self.bot_reason is not None


# Our own rules run before the crawler lists so that a bot gets the most useful reason.
# Order matters: the first matching rule wins (uap semantics). All case-insensitive.
_OWN_BOT_RULES: Final[tuple[tuple[str, str], ...]] = (
    (
        r"HeadlessChrome|PhantomJS|SlimerJS|HtmlUnit|Puppeteer|Playwright|Selenium|"
        r"webdriver|Cypress/|\bjsdom/|Nightmare|CasperJS|Splash",
        "headless",
    ),
    (
        r"UptimeRobot|Pingdom|StatusCake|Site24x7|BetterUptime|Better Uptime|Uptime-Kuma|"
        r"Freshping|DatadogSynthetics|NewRelicPinger|Checkly|updown\.io|HetrixTools|"
        r"check_http|Zabbix|Gatus|OhDear|Chrome-Lighthouse|GTmetrix|Google Page Speed|"
        r"PTST/|monitoring|uptime",
        "monitoring",
    ),
    (
        r"GPTBot|ChatGPT-User|OAI-SearchBot|ClaudeBot|Claude-(?:User|SearchBot)|anthropic-ai|"
        r"PerplexityBot|Perplexity-User|CCBot|Bytespider|Google-Extended|Amazonbot|"
        r"Applebot-Extended|meta-externalagent|cohere-ai|Diffbot|YouBot|MistralAI-User",
        "ai_crawler",
    ),
    (
        # Libraries identify themselves at the start; browsers always start with "Mozilla/".
        r"^(?:curl|wget|python-requests|python-urllib|python-httpx|python/|httpx|aiohttp|"
        r"go-http-client|okhttp|java/|apache-httpclient|axios|node-fetch|node/|undici|"
        r"got \(|libwww-perl|php/|guzzlehttp|ruby|faraday|dart/|reqwest|deno/|bun/|httpie|"
        r"postmanruntime|insomnia|http\.rb|rest-client|winhttp|mechanize|lwp::|"
        r"jakarta commons|feedparser|urlgrabber)|WindowsPowerShell",
        "http_client",
    ),
)

# ua-parser browser families we fold into the names people know.
_BROWSER_NAMES: Final[dict[str, str]] = {
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Chrome Mobile WebView": "Chrome WebView",
    "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "Safari WebView",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Edge Mobile": "Edge",
    "Opera Mobile": "Opera",
    "Yandex Browser": "Yandex Browser",
}
_OS_NAMES: Final[dict[str, str]] = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS"}
_DESKTOP_OS: Final = frozenset(
    {"Windows", "macOS", "Linux", "ChromeOS", "Ubuntu", "Fedora", "Debian", "FreeBSD",
     "OpenBSD", "NetBSD", "Mint", "Arch Linux", "Gentoo", "Red Hat", "SUSE", "Solaris"}
)  # fmt: skip
_MOBILE_OS: Final = frozenset({"iOS", "Windows Phone", "KaiOS", "BlackBerry OS", "Symbian OS"})
_TV_MARKERS: Final = re.compile(
    r"SmartTV|Smart-TV|Android TV|GoogleTV|AFT[A-Z]|BRAVIA|Tizen|Web0S|CrKey|"
    r"PlayStation|Xbox|Nintendo",
    re.IGNORECASE,
)
_TABLET_MARKERS: Final = re.compile(r"iPad|Tablet|Kindle|Silk/|PlayBook|\bTab\b", re.IGNORECASE)


def _split_lookaround(patterns: list[str]) -> tuple[list[str], list[str]]:
    """Split patterns the Rust regex engine accepts from those needing Python's `re`."""
    rust: list[str] = []
    python: list[str] = []
    for pattern in patterns:
        # The Rust engine has no look-around or back-references (e.g. "Yandex(?!Search)").
        if re.search(r"\(\?<?[!=]|\\[1-9]", pattern):
            python.append(pattern)
        else:
            rust.append(pattern)
    return rust, python


def ascii_insensitive(patterns: list[str]) -> str:
    """One case-insensitive alternation of `patterns` for the Rust engine, with ASCII rules.

    The crawler patterns are ASCII names. Unicode case folding (Rust's `(?i)`) turns every
    letter into a class (`k` also matches the Kelvin sign) and the word, digit and boundary
    escapes into Unicode classes: the compiled set took 15 MB of the store process, 1 MB with
    ASCII rules. Verdicts differ only on characters outside ASCII. A `.` outside a class stays
    Unicode-aware (`(?u:.)`): the engine matches text, and an ASCII `.` could match half of a
    character."""
    return "(?i-u)(?:" + "|".join(_unicode_dots(p) for p in patterns) + ")"


def _unicode_dots(pattern: str) -> str:
    out: list[str] = []
    class_start = -1  # where the open class's members start; -1 outside a class
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if class_start >= 0:
            if c == "]" and i > class_start:  # a "]" first in a class is a member
                class_start = -1
        elif c == "[":
            class_start = i + 2 if pattern[i + 1 : i + 2] == "^" else i + 1
        elif c == ".":
            c = "(?u:.)"
        out.append(c)
        i += 1
    return "".join(out)


class UserAgentParser:
    """Parses user agent strings into `UserAgentInfo`, keeping the last `cache_size` results.

    Build one per loader and reuse it: construction compiles a few thousand regexes (~0.3 s).
    Thread-safe.
    """

    def __init__(self, cache_size: int = 20_000) -> None:
        self._resolver = RustResolver(load_lazy_builtins())
        self._own_rules = ua_parser_rs.UserAgentExtractor(
            ("(?i)(?:" + pattern + ")", reason, None, None, None, None)
            for pattern, reason in _OWN_BOT_RULES
        )
        rust_patterns, python_patterns = _split_lookaround(list(crawlers.data))
        # One alternation, not one regex per pattern: the verdict is the same (any match),
        # and it compiles to 15 MB instead of 24 (and in 0.1 s); ASCII case folding, 1 MB.
        self._crawlers = ua_parser_rs.UserAgentExtractor(
            [(ascii_insensitive(rust_patterns), "crawler", None, None, None, None)]
        )
        self._crawlers_slow = re.compile("|".join(python_patterns) or r"(?!)", re.IGNORECASE)
        # Crawler-Detect strips browser tokens first so that its short patterns cannot
        # match inside ordinary browser strings; we keep its semantics.
        self._exclusions = re.compile("|".join(exclusions.data), re.IGNORECASE)
        self._cached = functools.lru_cache(maxsize=cache_size)(self._parse_uncached)

    def parse(self, user_agent: str) -> UserAgentInfo:
        """Returns browser, OS, device type and bot verdict; never raises on odd input."""
        return self._cached(user_agent[:_MAX_UA_LENGTH].strip())

    def cache_info(self) -> functools._CacheInfo:
        return self._cached.cache_info()

    def _parse_uncached(self, ua: str) -> UserAgentInfo:
        if not ua:
            return UserAgentInfo("Other", "", "Other", "", "bot", "empty_user_agent")
        result = self._resolver(ua, Domain.ALL)
        agent, os, device = result.user_agent, result.os, result.device
        browser = _BROWSER_NAMES.get(agent.family, agent.family) if agent else "Other"
        browser_version = (agent.major or "") if agent else ""
        os_name = _OS_NAMES.get(os.family, os.family) if os else "Other"
        os_version = _os_version(os_name, os.major, os.minor) if os else ""
        bot_reason = self._bot_reason(ua, device.family if device else None)
        if bot_reason is not None:
            device_type = "bot"
        else:
            device_type = _device_type(ua, os_name, device.family if device else None)
        return UserAgentInfo(browser, browser_version, os_name, os_version, device_type, bot_reason)

    def _bot_reason(self, ua: str, device_family: str | None) -> str | None:
        own = self._own_rules.extract(ua)
        if own is not None:
            return own.family
        if device_family == "Spider":
            return "crawler"
        stripped = self._exclusions.sub("", ua).strip()
        if stripped and (
            self._crawlers.extract(stripped) is not None or self._crawlers_slow.search(stripped)
        ):
            return "crawler"
        return None


def _os_version(os_name: str, major: str | None, minor: str | None) -> str:
    if not major:
        return ""
    # Windows, Android and ChromeOS go by their major number ("10", "14"); others by major.minor.
    if minor and os_name not in {"Windows", "Android", "ChromeOS"}:
        return f"{major}.{minor}"
    return major


def _device_type(ua: str, os_name: str, device_family: str | None) -> str:
    if _TV_MARKERS.search(ua):
        return "other"
    if device_family == "iPad" or _TABLET_MARKERS.search(ua):
        return "tablet"
    if os_name == "Android":
        # Android phones send "Mobile"; tablets (by Google's own guidance) do not.
        return "mobile" if "Mobile" in ua else "tablet"
    if os_name in _MOBILE_OS or "Mobi" in ua:
        return "mobile"
    if os_name in _DESKTOP_OS:
        return "desktop"
    return "other"
