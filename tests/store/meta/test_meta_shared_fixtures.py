"""The shared service fixtures in tests/conftest.py give each test its own space."""

from __future__ import annotations

import psycopg
import redis
from sqlalchemy import inspect

from cadlink.store.meta import make_engine


def test_postgres_url_is_a_new_empty_database(postgres_url: str) -> None:
    assert "/cadlink_test_" in postgres_url
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (
            postgres_url.rsplit("/", 1)[1],
        )
    engine = make_engine(postgres_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_redis_url_gives_a_private_prefix(redis_url: tuple[str, str]) -> None:
    url, prefix = redis_url
    assert url.startswith("redis://")
    assert prefix.startswith("cadlink_test_") and prefix.endswith(":")
    client = redis.Redis.from_url(url)
    try:
        client.set(f"{prefix}a", "1")
        client.set(f"{prefix}b", "2")
        assert sorted(client.scan_iter(match=f"{prefix}*")) == [
            f"{prefix}a".encode(),
            f"{prefix}b".encode(),
        ]
    finally:
        client.close()
