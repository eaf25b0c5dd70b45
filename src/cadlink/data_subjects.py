"""Data subject requests (GDPR articles 15 and 17): everything stored about one person on
one site, exported as one JSON document or erased.

A person is named by what the site knows of them: the `userId` it gave `identify()`, the
tracker's `visitorId` (kept in the visitor's browser after consent; the store holds a keyed
hash of it), or a stored visitor id as the API and the CRM show it. Their rows are those of
every stored visitor id that matches (store/events/subjects.py); their traits are the site
user of the metadata store. Ids link: a user id brings every visitor id (device, browser)
that carried it, and a visitor id the user ids it was identified as. The caller first makes
sure that what the server accepted is stored (cli_gdpr.py), so that an erasure is not undone
by events accepted before it and stored after.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from cadlink.ingest.enrich.identity import consented_visitor_id
from cadlink.store.events import subjects
from cadlink.store.events.base import EventStore
from cadlink.store.meta import MetaStore
from cadlink.store.meta.records import SiteRecord
from cadlink.web_names import event_json, session_json


@dataclass(frozen=True)
class Subject:
    """One person on one site, by any of the ids the site may know them by."""

    site: SiteRecord
    user_ids: tuple[str, ...] = ()
    visitor_ids: tuple[str, ...] = ()  # the tracker's consented `visitorId`s
    stored_visitor_ids: tuple[int, ...] = ()  # as the API shows `visitorId`

    def __post_init__(self) -> None:
        if not (self.user_ids or self.visitor_ids or self.stored_visitor_ids):
            raise ValueError("name the person by a user id, a visitor id or a stored visitor id")

    def candidate_ids(self) -> list[int]:
        """Stored visitor ids the given ids map to (whether or not any rows exist)."""
        hashed = [consented_visitor_id(self.site.public_id, v) for v in self.visitor_ids]
        return sorted({*hashed, *self.stored_visitor_ids})

    def describe(self) -> dict[str, Any]:
        return {
            "siteId": self.site.public_id,
            "userIds": list(self.user_ids),
            "visitorIds": list(self.visitor_ids),
            "storedVisitorIds": [str(v) for v in self.stored_visitor_ids],
        }


@dataclass
class Found:
    """What the stores hold of a subject: every visitor id and user id linked to the ids
    asked for, and the site users of those user ids."""

    visitor_ids: list[int]
    user_ids: list[str] = field(default_factory=list)
    site_users: list[dict[str, Any]] = field(default_factory=list)


# Rounds of following links between visitor ids and user ids (a user id brings its other
# devices, a visitor id the user id it was identified as); each round reads the events once.
MAX_ROUNDS = 8


def find(meta: MetaStore, events: EventStore, subject: Subject) -> Found:
    """The person's ids, linked: the visitor ids that carried a given user id or were given,
    the user ids those visitors were identified as, their other visitor ids, and so on."""
    site_id = subject.site.public_id
    users, visitors = set(subject.user_ids), set(subject.candidate_ids())
    for _ in range(MAX_ROUNDS):
        found = set(subjects.visitors(events, site_id, sorted(users), sorted(visitors)))
        linked = set(subjects.user_ids(events, site_id, sorted(found)))
        if found == visitors and linked <= users:
            break
        visitors, users = found, users | linked
    else:  # links left to follow: take the visitors of every user id found so far
        visitors = set(subjects.visitors(events, site_id, sorted(users), sorted(visitors)))
    site_users = []
    for user_id in sorted(users):
        record = meta.get_site_user(subject.site.id, user_id)
        if record is not None:
            site_users.append(
                {
                    "userId": record.user_id,
                    "traits": record.traits,
                    "firstSeen": record.first_seen.isoformat(),
                    "lastSeen": record.last_seen.isoformat(),
                }
            )
    return Found(sorted(visitors), sorted(users), site_users)


def export(
    meta: MetaStore,
    events: EventStore,
    subject: Subject,
    out: IO[str],
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write everything stored about `subject` to `out` as one JSON document, its events
    streamed a page at a time; returns how many of each were written."""
    found = find(meta, events, subject)
    site_id = subject.site.public_id
    sessions = subjects.sessions(events, site_id, found.visitor_ids)
    head = {
        "exportedAt": datetime.now(UTC).isoformat(),
        "subject": subject.describe(),
        "site": {"id": site_id, "domain": subject.site.domain, "name": subject.site.name},
        "userIds": found.user_ids,
        "visitorIds": [str(v) for v in found.visitor_ids],
        "siteUsers": found.site_users,
        "sessions": [session_json(r) for r in sessions],
    }
    # The document's head, then its events one per line inside the closing array.
    text = json.dumps(head, ensure_ascii=False, indent=1, default=str)
    out.write(text[: text.rindex("}")].rstrip() + ',\n "events": [')
    count = 0
    for row in subjects.events(events, site_id, found.visitor_ids):
        text = json.dumps(event_json(row), ensure_ascii=False)
        out.write(("\n  " if count == 0 else ",\n  ") + text)
        count += 1
        if progress is not None and count % 10_000 == 0:
            progress(count)
    out.write("\n ]\n}\n" if count else "]\n}\n")
    return {
        "visitors": len(found.visitor_ids),
        "siteUsers": len(found.site_users),
        "sessions": len(sessions),
        "events": count,
    }


def erase(meta: MetaStore, events: EventStore, site: SiteRecord, found: Found) -> dict[str, int]:
    """Delete everything `find` found of a person: the rows of their visitor ids in every
    table of the event store, then their site users; returns rows deleted per table
    (`site_users` for the metadata store's)."""
    deleted = events.erase_visitors(site.public_id, found.visitor_ids)
    deleted["site_users"] = sum(meta.delete_site_user(site.id, u) for u in found.user_ids)
    return deleted


__all__ = ["Found", "Subject", "erase", "export", "find"]
