"""Named errors raised by the metadata store."""

from __future__ import annotations


class MetaStoreError(Exception):
    """Base class of every error the metadata store raises on purpose."""


class InvalidInput(MetaStoreError, ValueError):
    """A value was rejected before touching the database; the message says which and why."""


class AlreadyExists(MetaStoreError):
    """A row with the same unique key (e.g. a user's email) already exists."""


class NotFound(MetaStoreError, LookupError):
    """The row to change does not exist."""
