"""Shared fixtures: real PostgreSQL and Redis from this machine's local services.

Each test gets its own PostgreSQL database or Redis key prefix, removed afterwards. When a
service is unreachable the test is skipped, except under `CI=true`, where it fails loudly.
Override the servers with `CADLINK_TEST_POSTGRES_URL` (a maintenance database URL) and
`CADLINK_TEST_REDIS_URL`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from functools import cache
from pathlib import Path
from typing import NamedTuple, NoReturn

import psycopg
import pytest
import redis
from psycopg import sql
from sqlalchemy import Engine, make_url

from cadlink.auth import PasswordHasher
from cadlink.store.meta import MetaStore, make_engine, migrate

# App-level fixtures (a real server on real embedded stores) live in tests/cadlink_fixtures.py.
pytest_plugins = ["cadlink_fixtures"]

POSTGRES_ADMIN_URL = os.environ.get(
    "CADLINK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("CADLINK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _unavailable(service: str, reason: str) -> NoReturn:
    message = f"{service} is not reachable: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the service is required)", pytrace=False)
    pytest.skip(message)


@cache
def _postgres_error() -> str | None:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__


@cache
def _redis_error() -> str | None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
        return None
    except redis.RedisError as exc:
        return str(exc) or type(exc).__name__
    finally:
        client.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks tests by the services their fixtures need, so `-m "not postgres"` works."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if {"postgres_url", "postgres_module_url", "postgres_databases"} & set(names):
            item.add_marker(pytest.mark.postgres)
        if "redis_url" in names:
            item.add_marker(pytest.mark.redis)


@contextmanager
def _temporary_database(template: str | None = None) -> Iterator[str]:
    """Creates a uniquely named database (a copy of `template` if given); drops it on exit."""
    error = _postgres_error()
    if error is not None:
        _unavailable("PostgreSQL", error)
    name = f"cadlink_test_{uuid.uuid4().hex}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(create)
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def postgres_databases() -> Callable[[], AbstractContextManager[str]]:
    """Makes more new, empty PostgreSQL databases in a test: `with postgres_databases() as url`."""
    return _temporary_database


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a new, empty PostgreSQL database, dropped after the test."""
    with _temporary_database() as url:
        yield url


@pytest.fixture(scope="session")
def _migrated_postgres_template() -> Iterator[str]:
    """Name of a migrated database that per-test databases are copied from (saves a migration)."""
    with _temporary_database() as url:
        engine = make_engine(url)
        try:
            migrate(engine)
        finally:
            engine.dispose()  # CREATE DATABASE ... TEMPLATE needs it unused
        database = make_url(url).database
        assert database is not None
        yield database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def meta_backend(request: pytest.FixtureRequest) -> str:
    """Which metadata database a test runs on: "sqlite", then "postgres"."""
    backend: str = request.param
    return backend


@pytest.fixture
def meta_url(meta_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty metadata database URL: a SQLite file in `tmp_path`, or a new PostgreSQL database."""
    if meta_backend == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'meta.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def meta_engine(
    meta_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Engine]:
    """An engine on a fresh, migrated metadata database of `meta_backend`, disposed afterwards."""
    with ExitStack() as stack:
        if meta_backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'data' / 'meta-migrated.sqlite3'}"
        else:
            template = request.getfixturevalue("_migrated_postgres_template")
            url = stack.enter_context(_temporary_database(template))
        engine = make_engine(url)
        stack.callback(engine.dispose)
        migrate(engine)  # creates the SQLite schema; a no-op on the PostgreSQL copy
        yield engine


@pytest.fixture
def meta_store(meta_engine: Engine) -> MetaStore:
    """A `MetaStore` on a fresh, migrated database (runs on SQLite and PostgreSQL)."""
    return MetaStore(meta_engine)


@pytest.fixture
def cheap_hasher() -> PasswordHasher:
    """argon2id with minimal cost: milliseconds instead of ~230 ms per hash."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class RedisTarget(NamedTuple):
    """A Redis URL and the key prefix this test owns (`url, prefix = redis_url`)."""

    url: str
    prefix: str


@pytest.fixture
def redis_url() -> Iterator[RedisTarget]:
    """The local Redis and a unique key prefix; keys under the prefix are deleted afterwards."""
    error = _redis_error()
    if error is not None:
        _unavailable("Redis", error)
    target = RedisTarget(REDIS_URL, f"cadlink_test_{uuid.uuid4().hex}:")
    try:
        yield target
    finally:
        client = redis.Redis.from_url(target.url)
        try:
            keys = list(client.scan_iter(match=f"{target.prefix}*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
        finally:
            client.close()


@pytest.fixture(scope="module")
def postgres_module_url() -> Iterator[str]:
    """A new PostgreSQL database shared by one test module (for expensive data loads)."""
    with _temporary_database() as url:
        yield url
