"""User agent parsing: real browser and bot strings, the RE2 resolver, the cache."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadlink.ingest.enrich.useragent import DEVICE_TYPES, UserAgentInfo, UserAgentParser

CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
HUMANS = [
    # (user agent, browser, version, os, os_version, device_type)
    (CHROME_WIN, "Chrome", "126", "Windows", "10", "desktop"),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
        "Edge", "126", "Windows", "10", "desktop",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
        "Firefox", "127", "Windows", "10", "desktop",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4.1 Safari/605.1.15",
        "Safari", "17", "macOS", "10.15", "desktop",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "Firefox", "128", "Linux", "", "desktop",
    ),
    (
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Safari/537.36",
        "Chrome", "126", "ChromeOS", "14541", "desktop",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        "Safari", "17", "iOS", "17.4", "mobile",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1",
        "Chrome", "126", "iOS", "17.4", "mobile",
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Mobile/15E148 Safari/604.1",
        "Safari", "17", "iOS", "17.4", "tablet",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Mobile Safari/537.36",
        "Chrome", "126", "Android", "14", "mobile",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
        "Samsung Internet", "25", "Android", "14", "mobile",
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Safari/537.36",
        "Chrome", "126", "Android", "13", "tablet",
    ),
    (
        "Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0",
        "Firefox", "127", "Android", "14", "mobile",
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; BRAVIA 4K VH2 Build/QTG3.200305.006.S292) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "Chrome", "120", "Android", "10", "other",
    ),
]  # fmt: skip

BOTS = [
    # (user agent, bot_reason)
    ("", "empty_user_agent"),
    ("   ", "empty_user_agent"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "crawler"),
    (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, "
        "like Gecko) Chrome/126.0.6478.126 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
        "+http://www.google.com/bot.html)",
        "crawler",
    ),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "crawler"),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", "crawler"),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "crawler"),
    ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", "crawler"),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
        "+https://openai.com/gptbot)",
        "ai_crawler",
    ),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; "
        "+claudebot@anthropic.com)",
        "ai_crawler",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/126.0.0.0 Safari/537.36",
        "headless",
    ),
    (
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) "
        "PhantomJS/2.1.1 Safari/538.1",
        "headless",
    ),
    ("curl/8.5.0", "http_client"),
    ("Wget/1.21.4", "http_client"),
    ("python-requests/2.31.0", "http_client"),
    ("python-httpx/0.27.0", "http_client"),
    ("Go-http-client/2.0", "http_client"),
    ("okhttp/4.12.0", "http_client"),
    ("Java/17.0.2", "http_client"),
    ("axios/1.7.2", "http_client"),
    ("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "http_client"),
    ("Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", "monitoring"),
    ("Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)", "monitoring"),
]


@pytest.fixture(scope="module")
def parser() -> UserAgentParser:
    return UserAgentParser()


@pytest.mark.parametrize(("ua", "browser", "version", "os", "os_version", "device"), HUMANS)
def test_humans_are_parsed(
    parser: UserAgentParser,
    ua: str,
    browser: str,
    version: str,
    os: str,
    os_version: str,
    device: str,
) -> None:
    assert parser.parse(ua) == UserAgentInfo(browser, version, os, os_version, device, None)


@pytest.mark.parametrize(("ua", "reason"), BOTS)
def test_bots_are_detected_with_a_reason(parser: UserAgentParser, ua: str, reason: str) -> None:
    info = parser.parse(ua)
    assert info.bot_reason == reason
    assert info.device_type == "bot"
    assert info.is_bot


def test_googlebot_keeps_its_name(parser: UserAgentParser) -> None:
    info = parser.parse(BOTS[2][0])
    assert (info.browser, info.browser_version) == ("Googlebot", "2")


def test_crawler_list_catches_bots_ua_parser_misses(parser: UserAgentParser) -> None:
    # Crawler-Detect knows this one; uap-core's Spider rules do not.
    ua = "Mozilla/5.0 (compatible; Barkrowler/0.9; +https://babbar.tech/crawler)"
    assert parser.parse(ua).bot_reason == "crawler"


def test_unknown_agent_is_other_but_not_a_bot(parser: UserAgentParser) -> None:
    info = parser.parse("Mozilla/5.0 (YandexSearch)")
    assert info.bot_reason is None
    assert info.os == "Other"
    assert info.device_type == "other"


def test_uses_the_re2_resolver(parser: UserAgentParser) -> None:
    # The pure-Python resolver is ~50x slower; it must never be picked silently.
    assert type(parser._resolver).__module__ == "ua_parser.re2"


def test_results_are_cached(parser: UserAgentParser) -> None:
    first = parser.parse(CHROME_WIN)
    assert parser.parse(CHROME_WIN) is first
    assert parser.parse("  " + CHROME_WIN + " ") is first


def test_cache_is_bounded() -> None:
    small = UserAgentParser(cache_size=2)
    for version in range(100, 110):
        small.parse(CHROME_WIN.replace("126", str(version)))
    assert small.cache_info().currsize == 2


def test_very_long_agent_is_cut(parser: UserAgentParser) -> None:
    info = parser.parse(CHROME_WIN + " x" * 50_000)
    assert info.browser == "Chrome"


@settings(max_examples=300, deadline=None)
@given(ua=st.text(max_size=300))
def test_never_raises_and_stays_consistent(parser: UserAgentParser, ua: str) -> None:
    info = parser.parse(ua)
    assert info.device_type in DEVICE_TYPES
    assert (info.bot_reason is not None) == (info.device_type == "bot")
    assert info.browser
    assert info.os


def test_the_re2_crawler_set_gives_crawler_detects_verdicts(parser: UserAgentParser) -> None:
    """The crawler patterns run as one RE2 pattern; on every agent it must say what they say
    in Python's `re`, the engine Crawler-Detect is written for. The agents: each pattern's
    text, in agents, in three cases; most match, some do not, and both must agree on every
    one."""
    import re

    from crawlerdetect.providers import crawlers  # type: ignore[import-untyped]

    from cadlink.ingest.enrich.useragent import _split_lookaround

    patterns, _ = _split_lookaround(list(crawlers.data))
    reference = re.compile("|".join(patterns), re.IGNORECASE)
    agents = [CHROME_WIN, *(ua for ua, *_ in HUMANS)]
    for pattern in patterns:
        text = re.sub(r"\\(.)", r"\1", re.sub(r"[\^$()|?*+{}\[\]]", "", pattern))
        for form in (text, text.lower(), text.upper()):
            agents += [form, f"Mozilla/5.0 (compatible; {form}/2.1; +https://x.example)"]
    matched = 0
    for agent in agents:
        verdict = reference.search(agent) is not None
        assert (parser._crawlers.search(agent) is not None) == verdict, agent
        matched += verdict
    assert matched > len(agents) // 2  # the corpus does exercise the patterns
