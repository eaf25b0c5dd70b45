"""Daily visitor salts and instance-wide settings."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta

from sqlalchemy import JSON, delete, select, update

from cadlink.store.meta.base import StoreBase
from cadlink.store.meta.errors import InvalidInput
from cadlink.store.meta.models import Salt, Setting, utcnow
from cadlink.store.meta.records import JSONValue
from cadlink.store.meta.validation import to_utc

SALT_BYTES = 32


class SaltQueries(StoreBase):
    """Random per-day salts for anonymous visitor hashes, and key/value settings."""

    def ensure_salts(self, today: date) -> dict[date, bytes]:
        """Creates the salts for `today` and the next day if missing; returns every salt kept.

        Race-safe across processes: each process inserts-or-ignores, then all re-read the
        winners, so every process ends up with the same salt for a day.
        """
        now = utcnow()
        rows = [
            {"day": day, "salt": secrets.token_bytes(SALT_BYTES), "created_at": now}
            for day in (today, today + timedelta(days=1))
        ]
        with self._write() as session:
            self._insert_ignore(session, Salt, rows, ("day",))
        return self.get_salts()

    def get_salts(self) -> dict[date, bytes]:
        """Every salt kept, by day."""
        with self._read() as session:
            return {s.day: bytes(s.salt) for s in session.scalars(select(Salt).order_by(Salt.day))}

    def delete_salts_older_than(self, cutoff: datetime) -> int:
        """Deletes the salts of UTC days that ended at or before `cutoff`; returns how many."""
        last_day_to_delete = to_utc(cutoff, "cutoff").date() - timedelta(days=1)
        with self._write() as session:
            result = session.execute(delete(Salt).where(Salt.day <= last_day_to_delete))
            return int(getattr(result, "rowcount", 0))

    def get_setting(self, key: str, default: JSONValue = None) -> JSONValue:
        """The JSON value stored under `key`, or `default`."""
        with self._read() as session:
            row = session.get(Setting, key)
            return default if row is None else row.value

    def set_setting(self, key: str, value: JSONValue) -> None:
        """Stores `value` (anything JSON-serialisable) under `key`, replacing any old value."""
        if not key or len(key) > 255:
            raise InvalidInput("setting key must be 1 to 255 characters")
        # JSON.NULL stores a JSON null; a bare None would mean SQL NULL to the ORM.
        stored: JSONValue = JSON.NULL if value is None else value
        with self._write() as session:
            row = {"key": key, "value": stored}
            if not self._insert_ignore(session, Setting, [row], ("key",)):
                session.execute(update(Setting).where(Setting.key == key).values(value=stored))
