"""Migrations: from empty, idempotent, concurrent, matching the models; engine set-up."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from cadlink.store.meta import MetaStore, make_engine, migrate, session_factory
from cadlink.store.meta.db import HEAD_REVISION, alembic_config, current_revision, normalize_url
from cadlink.store.meta.models import Base, User

TABLES = {"users", "sites", "site_users", "salts", "settings", "refresh_tokens", "login_failures"}


def test_upgrade_from_empty_creates_every_table(meta_url: str) -> None:
    engine = make_engine(meta_url)
    try:
        assert current_revision(engine) is None
        migrate(engine)
        assert current_revision(engine) == HEAD_REVISION
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_second_migrate_is_a_no_op(meta_engine: Engine) -> None:
    store = MetaStore(meta_engine)
    site = store.create_site("shop.example")
    migrate(meta_engine)
    assert current_revision(meta_engine) == HEAD_REVISION
    assert store.get_site(site.public_id) == site


def test_upgrade_from_0001_keeps_refresh_tokens(meta_url: str) -> None:
    """0002 adds `refresh_tokens.replaced_by` to a database in use: its tokens stay good."""
    engine = make_engine(meta_url)
    try:
        migrate(engine, "0001")
        assert current_revision(engine) == "0001"
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, email, password_hash, role, is_active, created_at) "
                    "VALUES (1, 'a@b.example', 'h', 'ADMIN', true, :t)"
                ),
                {"t": datetime(2026, 1, 1, tzinfo=UTC)},
            )
            conn.execute(
                text(
                    "INSERT INTO refresh_tokens (user_id, token_hash, expires_at, created_at) "
                    "VALUES (1, :h, :e, :t)"
                ),
                {"h": "a" * 64, "e": datetime(2030, 1, 1, tzinfo=UTC),
                 "t": datetime(2026, 1, 1, tzinfo=UTC)},
            )  # fmt: skip
        migrate(engine)
        assert current_revision(engine) == HEAD_REVISION
        token = MetaStore(engine).get_refresh_token("a" * 64)
        assert token is not None and token.revoked_at is None and token.replaced_by is None
    finally:
        engine.dispose()


def test_head_revision_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [HEAD_REVISION]


def test_a_server_on_a_migrated_database_does_not_load_alembic(tmp_path: Path) -> None:
    """Alembic costs a long-running server 10 MB: it is loaded only to upgrade."""
    engine = make_engine(f"sqlite:///{tmp_path / 'meta.db'}")
    migrate(engine)
    engine.dispose()
    code = (
        "import sys\n"
        "from cadlink.app import create_app\n"
        "from cadlink.config import Settings\n"
        f"s = Settings(_env_file=None, data_dir={str(tmp_path)!r}, secret_key='t' * 40, "
        f"database_url='sqlite:///{tmp_path / 'meta.db'}', env='test')\n"
        "app = create_app(s)\n"
        "assert app is not None\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_schema_matches_the_models(meta_engine: Engine) -> None:
    with meta_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_to_base_and_back(meta_engine: Engine) -> None:
    with meta_engine.connect() as conn, conn.begin():
        command.downgrade(alembic_config(conn), "base")
    assert not TABLES & set(inspect(meta_engine).get_table_names())
    migrate(meta_engine)
    assert set(inspect(meta_engine).get_table_names()) >= TABLES


def test_concurrent_migrations_from_separate_engines(meta_url: str) -> None:
    engines = [make_engine(meta_url) for _ in range(3)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines))

    def run(engine: Engine) -> None:
        try:
            barrier.wait()
            migrate(engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert current_revision(engines[0]) == HEAD_REVISION
        with engines[0].connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        for engine in engines:
            engine.dispose()


def test_a_new_sqlite_file_switches_to_wal_while_another_connection_writes(
    tmp_path: Path,
) -> None:
    """SQLite refuses the switch to WAL at once ("database is locked", no busy wait) while
    another connection holds a write lock: two processes opening a new data dir together hit
    it (the concurrent-migration tests did, now and then). The engine waits instead."""
    path = tmp_path / "meta.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        release.join()
        engine.dispose()
        other.close()


def test_migrate_without_connection_refuses() -> None:
    with pytest.raises(RuntimeError, match="migrate"):
        command.upgrade(alembic_config(), "head")


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("sqlite:///x.db", "sqlite"),
    ],
)
def test_normalize_url_chooses_psycopg(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver


def test_sqlite_engine_creates_directory_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "meta.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert path.parent.is_dir()
    finally:
        engine.dispose()


def test_sqlite_transactions_roll_back_ddl(tmp_path: Path) -> None:
    # The sqlite3 module would autocommit DDL; our BEGIN makes it transactional.
    engine = make_engine(f"sqlite:///{tmp_path / 'meta.sqlite3'}")
    try:
        with pytest.raises(ZeroDivisionError), engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            raise ZeroDivisionError
        assert "t" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_in_memory_sqlite_works() -> None:
    engine = make_engine("sqlite://")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        engine.dispose()


def test_session_factory_keeps_objects_readable_after_commit(meta_engine: Engine) -> None:
    factory = session_factory(meta_engine)
    with factory() as session, session.begin():
        user = User(email="a@b.example", password_hash="x", role="VIEWER", is_active=True)
        session.add(user)
    assert user.email == "a@b.example"
    assert user.created_at.tzinfo is UTC
    assert user.created_at <= datetime.now(UTC)


def test_sqlite_foreign_keys_are_back_on_after_migrate(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'meta.sqlite3'}", pool_size=1)
    try:
        migrate(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.slow
def test_concurrent_migrations_from_separate_processes(meta_url: str) -> None:
    code = "import sys; from cadlink.store.meta import make_engine, migrate; " + (
        "e = make_engine(sys.argv[1]); migrate(e); e.dispose()"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, meta_url]) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    engine = make_engine(meta_url)
    try:
        assert current_revision(engine) == HEAD_REVISION
    finally:
        engine.dispose()
