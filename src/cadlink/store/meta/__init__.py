"""The metadata store: users, sites, salts, settings and tokens on SQLite or PostgreSQL."""

from cadlink.store.meta.db import make_engine, migrate, session_factory
from cadlink.store.meta.errors import AlreadyExists, InvalidInput, MetaStoreError, NotFound
from cadlink.store.meta.records import (
    RefreshTokenRecord,
    SiteRecord,
    SiteUserRecord,
    UserCredentials,
    UserRecord,
)
from cadlink.store.meta.repository import MetaStore
from cadlink.store.meta.validation import ROLES

__all__ = [
    "ROLES",
    "AlreadyExists",
    "InvalidInput",
    "MetaStore",
    "MetaStoreError",
    "NotFound",
    "RefreshTokenRecord",
    "SiteRecord",
    "SiteUserRecord",
    "UserCredentials",
    "UserRecord",
    "make_engine",
    "migrate",
    "session_factory",
]
