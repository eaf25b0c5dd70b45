"""Refresh tokens, stored only as SHA-256 hex digests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from cadlink.store.meta.base import StoreBase
from cadlink.store.meta.errors import AlreadyExists, NotFound
from cadlink.store.meta.models import RefreshToken, utcnow
from cadlink.store.meta.records import RefreshTokenRecord
from cadlink.store.meta.validation import check_token_hash, to_utc


def _token_record(row: RefreshToken) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        id=row.id,
        user_id=row.user_id,
        token_hash=row.token_hash,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        created_at=row.created_at,
        replaced_by=row.replaced_by,
    )


class TokenQueries(StoreBase):
    """Store, find and revoke refresh tokens."""

    def store_refresh_token(
        self, user_id: int, token_hash: str, expires_at: datetime
    ) -> RefreshTokenRecord:
        """Stores a new refresh token's hash; raises `NotFound` for an unknown user."""
        row = RefreshToken(
            user_id=user_id,
            token_hash=check_token_hash(token_hash),
            expires_at=to_utc(expires_at, "expires_at"),
            created_at=utcnow(),
        )
        try:
            with self._write() as session:
                session.add(row)
                session.flush()
                return _token_record(row)
        except IntegrityError as exc:
            if self.get_refresh_token(token_hash) is not None:
                raise AlreadyExists("this refresh token is already stored") from exc
            raise NotFound(f"no user with id {user_id}") from exc

    def get_refresh_token(self, token_hash: str) -> RefreshTokenRecord | None:
        """The refresh token with this hash (revoked or expired included), or None."""
        with self._read() as session:
            row = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
            return _token_record(row) if row else None

    def revoke_refresh_token(self, token_hash: str, at: datetime | None = None) -> bool:
        """Revokes the token; True only for the one caller that revoked it (rotation is atomic)."""
        stmt = (
            update(RefreshToken)
            .where(RefreshToken.token_hash == token_hash, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=to_utc(at, "at") if at else utcnow())
        )
        with self._write() as session:
            return getattr(session.execute(stmt), "rowcount", 0) == 1

    def rotate_refresh_token(
        self, token_hash: str, new_hash: str, expires_at: datetime, at: datetime | None = None
    ) -> RefreshTokenRecord | None:
        """Revokes the live token `token_hash`, naming `new_hash` as what replaced it, and
        stores `new_hash` for the same user, in one transaction. None (and nothing changed)
        if the token was not live: revoked already, or by a concurrent request."""
        new_hash = check_token_hash(new_hash)
        when = to_utc(at, "at") if at else utcnow()
        with self._write() as session:
            old = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
            if old is None:
                return None
            stmt = (
                update(RefreshToken)
                .where(RefreshToken.token_hash == token_hash, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=when, replaced_by=new_hash)
            )
            if getattr(session.execute(stmt), "rowcount", 0) != 1:
                return None
            row = RefreshToken(
                user_id=old.user_id,
                token_hash=new_hash,
                expires_at=to_utc(expires_at, "expires_at"),
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return _token_record(row)

    def revoke_user_refresh_tokens(self, user_id: int) -> int:
        """Revokes every live refresh token of the user (log out everywhere); returns how many."""
        stmt = (
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        with self._write() as session:
            return int(getattr(session.execute(stmt), "rowcount", 0))

    def delete_expired_refresh_tokens(self, before: datetime) -> int:
        """Deletes tokens that expired before `before`; returns how many."""
        stmt = delete(RefreshToken).where(RefreshToken.expires_at < to_utc(before, "before"))
        with self._write() as session:
            return int(getattr(session.execute(stmt), "rowcount", 0))
