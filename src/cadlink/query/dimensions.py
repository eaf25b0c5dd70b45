"""The dimensions reports can break down and filter by, and where each lives.

Attribution (source, channel, referrer, UTM) and entry/exit pages are properties of a
*session*: an event's own referrer is usually the previous page of the same site. Page,
event type and event properties are properties of an *event*. Device, browser, OS, screen and
geo are the same on both, so either table can answer them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from cadlink.query.spec import QueryError


class Scope(Enum):
    EVENT = "event"
    SESSION = "session"
    BOTH = "both"


@dataclass(frozen=True)
class Dimension:
    name: str
    scope: Scope
    event_column: str | None
    session_column: str | None
    property_key: str | None = None  # for `prop:<key>` dimensions


_FIXED: dict[str, Dimension] = {
    d.name: d
    for d in (
        Dimension("page", Scope.EVENT, "page_path", None),
        Dimension("event_type", Scope.EVENT, "event_type", None),
        Dimension("page_title", Scope.EVENT, "page_title", None),
        Dimension("entry_page", Scope.SESSION, None, "landing_page"),
        Dimension("exit_page", Scope.SESSION, None, "exit_page"),
        Dimension("source", Scope.SESSION, None, "source"),
        Dimension("channel", Scope.SESSION, None, "channel"),
        Dimension("referrer", Scope.SESSION, None, "referrer_domain"),
        Dimension("utm_source", Scope.SESSION, None, "utm_source"),
        Dimension("utm_medium", Scope.SESSION, None, "utm_medium"),
        Dimension("utm_campaign", Scope.SESSION, None, "utm_campaign"),
        Dimension("utm_term", Scope.SESSION, None, "utm_term"),
        Dimension("utm_content", Scope.SESSION, None, "utm_content"),
        Dimension("country", Scope.BOTH, "country", "country"),
        Dimension("region", Scope.BOTH, "region", "region"),
        Dimension("city", Scope.BOTH, "city", "city"),
        Dimension("device", Scope.BOTH, "device_type", "device_type"),
        Dimension("browser", Scope.BOTH, "browser", "browser"),
        Dimension("os", Scope.BOTH, "os", "os"),
        Dimension("screen", Scope.BOTH, "screen_resolution", "screen_resolution"),
    )
}

BREAKDOWNS: tuple[str, ...] = (
    "page", "entry_page", "exit_page", "source", "channel", "referrer", "utm_source",
    "utm_medium", "utm_campaign", "utm_term", "utm_content", "country", "region", "city",
    "device", "browser", "os", "screen",
)  # fmt: skip

PROPERTY_PREFIX = "prop:"
MAX_PROPERTY_KEY = 64


def dimension(name: str) -> Dimension:
    """Look up a dimension by its public name; `prop:<key>` names an event property."""
    if name.startswith(PROPERTY_PREFIX):
        key = name[len(PROPERTY_PREFIX) :]
        if not key or len(key) > MAX_PROPERTY_KEY or not key.replace("_", "").isalnum():
            raise QueryError(f"property name {key!r} must be 1-64 letters, digits or _", "filters")
        return Dimension(name, Scope.EVENT, None, None, property_key=key)
    try:
        return _FIXED[name]
    except KeyError:
        known = ", ".join(sorted(_FIXED))
        raise QueryError(f"unknown dimension {name!r}; use one of {known} or prop:<name>") from None


def names() -> list[str]:
    return sorted(_FIXED)
