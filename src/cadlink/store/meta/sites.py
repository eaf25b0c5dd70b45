"""Sites and their identified visitors (site users)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from cadlink.store.meta.base import StoreBase
from cadlink.store.meta.errors import InvalidInput, NotFound
from cadlink.store.meta.models import Site, SiteUser, utcnow
from cadlink.store.meta.records import JSONValue, SiteRecord, SiteUserRecord
from cadlink.store.meta.validation import (
    check_public_id,
    check_timezone,
    default_origins,
    normalize_domain,
    normalize_origins,
    to_utc,
)


def _site_record(site: Site) -> SiteRecord:
    return SiteRecord(
        id=site.id,
        public_id=site.public_id,
        domain=site.domain,
        name=site.name,
        allowed_origins=tuple(site.allowed_origins),
        timezone=site.timezone,
        respect_dnt=site.respect_dnt,
        created_at=site.created_at,
    )


def _site_user_record(row: SiteUser) -> SiteUserRecord:
    return SiteUserRecord(
        site_id=row.site_id,
        user_id=row.user_id,
        traits=dict(row.traits),
        first_seen=row.first_seen,
        last_seen=row.last_seen,
    )


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 255:
        raise InvalidInput("name must be 1 to 255 characters")
    return name


class SiteQueries(StoreBase):
    """Create, find and change sites; remember identified visitors."""

    def create_site(
        self,
        domain: str,
        name: str | None = None,
        allowed_origins: list[str] | tuple[str, ...] | None = None,
        timezone: str = "UTC",
        respect_dnt: bool = True,
    ) -> SiteRecord:
        """Creates a site with a new UUID4 `public_id`.

        `domain` must be a bare hostname; `name` defaults to it; `allowed_origins` defaults to
        https://domain and https://www.domain (http and https for localhost).
        """
        domain = normalize_domain(domain)
        origins = (
            default_origins(domain)
            if allowed_origins is None
            else normalize_origins(allowed_origins)
        )
        site = Site(
            public_id=str(uuid.uuid4()),
            domain=domain,
            name=_check_name(domain if name is None else name),
            allowed_origins=list(origins),
            timezone=check_timezone(timezone),
            respect_dnt=respect_dnt,
            created_at=utcnow(),
        )
        with self._write() as session:
            session.add(site)
            session.flush()
            return _site_record(site)

    def get_site(self, public_id: str) -> SiteRecord | None:
        """The site with this public id, or None (also for a malformed id)."""
        canonical = check_public_id(public_id)
        if canonical is None:
            return None
        with self._read() as session:
            site = session.scalar(select(Site).where(Site.public_id == canonical))
            return _site_record(site) if site else None

    def list_sites(self) -> list[SiteRecord]:
        """All sites, oldest first."""
        with self._read() as session:
            return [_site_record(s) for s in session.scalars(select(Site).order_by(Site.id))]

    def update_site(
        self,
        public_id: str,
        *,
        domain: str | None = None,
        name: str | None = None,
        allowed_origins: list[str] | tuple[str, ...] | None = None,
        timezone: str | None = None,
        respect_dnt: bool | None = None,
    ) -> SiteRecord:
        """Changes the given fields (None leaves a field as is); raises `NotFound`."""
        values: dict[str, object] = {}
        if domain is not None:
            values["domain"] = normalize_domain(domain)
        if name is not None:
            values["name"] = _check_name(name)
        if allowed_origins is not None:
            values["allowed_origins"] = list(normalize_origins(allowed_origins))
        if timezone is not None:
            values["timezone"] = check_timezone(timezone)
        if respect_dnt is not None:
            values["respect_dnt"] = respect_dnt
        canonical = check_public_id(public_id)
        with self._write() as session:
            site = (
                session.scalar(select(Site).where(Site.public_id == canonical))
                if canonical
                else None
            )
            if site is None:
                raise NotFound(f"no site with id {public_id!r}")
            for key, value in values.items():
                setattr(site, key, value)
            session.flush()
            return _site_record(site)

    def upsert_site_user(
        self,
        site_id: int,
        user_id: str,
        traits: Mapping[str, JSONValue] | None,
        seen_at: datetime,
    ) -> SiteUserRecord:
        """Records that `user_id` was seen on site `site_id` at `seen_at`.

        New traits are merged over the stored ones (a key set to None is kept as null);
        `first_seen`/`last_seen` widen to include `seen_at`, so events may arrive out of order.
        """
        if not user_id or len(user_id) > 255:
            raise InvalidInput("user_id must be 1 to 255 characters")
        seen_at = to_utc(seen_at, "seen_at")
        new_traits = dict(traits or {})
        row = {
            "site_id": site_id,
            "user_id": user_id,
            "traits": new_traits,
            "first_seen": seen_at,
            "last_seen": seen_at,
        }
        try:
            with self._write() as session:
                if self._insert_ignore(session, SiteUser, [row], ("site_id", "user_id")):
                    return SiteUserRecord(site_id, user_id, new_traits, seen_at, seen_at)
                # Row lock on PostgreSQL; SQLite's write lock is already held (BEGIN IMMEDIATE).
                existing = session.scalars(
                    select(SiteUser)
                    .where(SiteUser.site_id == site_id, SiteUser.user_id == user_id)
                    .with_for_update()
                ).one()
                existing.traits = {**existing.traits, **new_traits}
                existing.first_seen = min(existing.first_seen, seen_at)
                existing.last_seen = max(existing.last_seen, seen_at)
                session.flush()
                return _site_user_record(existing)
        except IntegrityError as exc:
            raise NotFound(f"no site with id {site_id}") from exc

    def get_site_user(self, site_id: int, user_id: str) -> SiteUserRecord | None:
        """The identified visitor `user_id` of site `site_id`, or None."""
        with self._read() as session:
            row = session.scalar(
                select(SiteUser).where(SiteUser.site_id == site_id, SiteUser.user_id == user_id)
            )
            return _site_user_record(row) if row else None

    def delete_site_user(self, site_id: int, user_id: str) -> bool:
        """Forget the identified visitor `user_id` of site `site_id` and their traits (GDPR
        erasure); whether there was one."""
        with self._write() as session:
            result = session.execute(
                delete(SiteUser).where(SiteUser.site_id == site_id, SiteUser.user_id == user_id)
            )
            return bool(getattr(result, "rowcount", 0))
