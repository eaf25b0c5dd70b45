"""UTM tags and the page path, read from a page URL."""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl, urlsplit

__all__ = ["MAX_UTM_LENGTH", "UTM_KEYS", "page_path", "query_params", "utm_from_url"]

UTM_KEYS: Final = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
MAX_UTM_LENGTH: Final = 128
# Beyond this a URL is garbage; parsing it whole would only cost time.
_MAX_URL_LENGTH: Final = 8192


def query_params(page_url: str | None) -> dict[str, str]:
    """The query parameters of `page_url` with lower-cased names (first value wins)."""
    if not page_url or "?" not in page_url:
        return {}
    try:
        query = urlsplit(page_url[:_MAX_URL_LENGTH]).query
    except ValueError:  # e.g. an unbalanced "[" in the host
        return {}
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=False, errors="replace"):
        params.setdefault(name.strip().lower(), value)
    return params


def utm_from_url(page_url: str | None) -> dict[str, str]:
    """The UTM tags present in `page_url`, trimmed and cut to 128 chars; empty ones omitted."""
    params = query_params(page_url)
    found: dict[str, str] = {}
    for key in UTM_KEYS:
        value = params.get(key, "").strip()[:MAX_UTM_LENGTH].strip()
        if value:
            found[key] = value
    return found


def page_path(page_url: str | None) -> str | None:
    """The path of `page_url` without query or fragment ("/" when empty); None without a URL."""
    if not page_url or not page_url.strip():
        return None
    try:
        path = urlsplit(page_url.strip()[:_MAX_URL_LENGTH]).path
    except ValueError:
        return None
    return path or "/"
