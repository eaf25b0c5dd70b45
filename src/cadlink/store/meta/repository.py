"""`MetaStore`: the one object through which the rest of CADLINK reads and writes metadata."""

from __future__ import annotations

from cadlink.store.meta.salts import SaltQueries
from cadlink.store.meta.sites import SiteQueries
from cadlink.store.meta.tokens import TokenQueries
from cadlink.store.meta.users import UserQueries


class MetaStore(UserQueries, SiteQueries, SaltQueries, TokenQueries):
    """Users, sites, site users, salts, settings and refresh tokens on one engine.

    Construct with an engine from `make_engine` after `migrate`. Every method runs its own
    short transaction and returns frozen dataclasses, never ORM objects.
    """

    def ping(self) -> dict[str, str | None]:
        """Round-trips to the database; returns its dialect and migration revision."""
        from sqlalchemy import text

        from cadlink.store.meta.db import current_revision

        with self._read() as session:
            session.execute(text("SELECT 1"))
        return {"engine": self._dialect, "revision": current_revision(self._engine)}
