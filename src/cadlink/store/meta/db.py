"""Engines, sessions and migrations for the metadata store (SQLite or PostgreSQL)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cadlink.store.meta.errors import MetaStoreError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option asking for `BEGIN IMMEDIATE` on SQLite: the write lock is taken at BEGIN,
# so a transaction that reads then writes never fails with "database is locked" half-way.
SQLITE_IMMEDIATE = "cadlink_sqlite_immediate"
# Any constant: serialises `migrate()` across processes sharing one PostgreSQL database.
_PG_MIGRATE_LOCK = 0x0CAD_11AC
# The newest migration in migrations/versions (a test checks it against Alembic's head). A
# database already there is not upgraded, so a starting server need not import Alembic, which
# costs 10 MB of memory for as long as the process runs.
HEAD_REVISION = "0002"


class DatabaseUnavailable(MetaStoreError):
    """The metadata database cannot be opened or written (a directory that is a file or not
    writable, a server that does not answer); the message names it, without its password."""


def normalize_url(url: str) -> URL:
    """Parses `url`, choosing psycopg 3 for `postgresql://` and `postgres://`."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Creates an engine for `url`.

    SQLite: creates the file's parent directory, turns on WAL, foreign keys and a busy
    timeout, and lets SQLAlchemy emit BEGIN so transactions (and DDL) are real.
    PostgreSQL: `postgresql://` is rewritten to use psycopg 3.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(parsed, **kwargs)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in str(parsed)
    if not in_memory and not database.startswith("file:"):
        folder = Path(database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            reason = "it is a file" if folder.is_file() else e.strerror
            raise DatabaseUnavailable(
                f"cannot create {folder}, the metadata database's directory: {reason}"
            ) from e
    kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    engine = create_engine(parsed, **kwargs)
    _configure_sqlite(engine, wal=not in_memory)
    return engine


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the sqlite3 module from issuing its own (late, DML-only) BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if wal:
                _enable_wal(cursor)
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(SQLITE_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL (once: the mode is stored in the file).

    Switching takes an exclusive lock, and SQLite answers "database is locked" at once, without
    its busy timeout, to a connection that tries while another one (of this or another
    process) opens the same new file: so retry until the timeout, as the busy handler would.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Returns a sessionmaker whose objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic `Config` built in code (no alembic.ini); env.py uses `connection`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrades the schema to `revision`.

    Idempotent, and safe when several processes call it at once: the whole upgrade runs in
    one transaction holding a lock (an advisory lock on PostgreSQL, `BEGIN IMMEDIATE` on
    SQLite), so a second caller waits and then finds nothing to do. A database already at
    `HEAD_REVISION` is left alone without loading Alembic. Raises `DatabaseUnavailable` when
    the database cannot be opened (the first thing every command does with it).
    """
    try:
        at = current_revision(engine)
    except (OperationalError, sqlite3.OperationalError) as e:
        # The driver's first line says why ("unable to open database file", "attempt to
        # write a readonly database" from the switch to WAL, "connection refused"); the rest
        # is hints. Only here: an error of the migration itself keeps its traceback.
        reason = str(getattr(e, "orig", None) or e).strip().splitlines() or ["unknown error"]
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnavailable(f"cannot open the metadata database {where}: {reason[0]}") from e
    if revision in ("head", HEAD_REVISION) and at == HEAD_REVISION:
        return
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            _migrate_sqlite(conn, revision)
            return
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATE_LOCK})
            _upgrade(conn, revision)


def _upgrade(conn: Connection, revision: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(conn), revision)


def _migrate_sqlite(conn: Connection, revision: str) -> None:
    # Batch mode rebuilds a table by DROP + rename; with foreign keys on, dropping `users`
    # would cascade-delete rows that reference it. SQLite ignores this pragma inside a
    # transaction, so it is switched on the raw connection before BEGIN and checked after.
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        conn = conn.execution_options(**{SQLITE_IMMEDIATE: True})
        with conn.begin():
            _upgrade(conn, revision)
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left dangling foreign keys: {broken[:5]}")
    finally:
        raw.execute("PRAGMA foreign_keys = ON")


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, or None before the first migration.

    Read from Alembic's own table with SQL, as Alembic's `MigrationContext` would read it.
    """
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return None if row is None else str(row[0])
