"""Session handling shared by the parts of `MetaStore`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from cadlink.store.meta.db import SQLITE_IMMEDIATE


class StoreBase:
    """Holds the engine and hands out read and write transactions."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._reader = sessionmaker(bind=engine, expire_on_commit=False)
        # On SQLite a write transaction takes the write lock at BEGIN (see db.SQLITE_IMMEDIATE).
        writer_bind = engine.execution_options(**{SQLITE_IMMEDIATE: True})
        self._writer = sessionmaker(bind=writer_bind, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        """The engine this store runs on."""
        return self._engine

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._reader() as session, session.begin():
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._writer() as session, session.begin():
            yield session

    def _insert_ignore(
        self,
        session: Session,
        model: type[DeclarativeBase],
        rows: Sequence[dict[str, Any]],
        conflict: Sequence[str],
    ) -> int:
        """Inserts `rows`, skipping those whose `conflict` key exists; returns rows inserted."""
        if not rows:
            return 0
        dialect_insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        stmt = (
            dialect_insert(model)
            .values(list(rows))
            .on_conflict_do_nothing(index_elements=list(conflict))
        )
        # Without preserve_rowcount, SQLAlchemy reports -1 for INSERT on psycopg.
        result = session.execute(stmt, execution_options={"preserve_rowcount": True})
        return max(int(getattr(result, "rowcount", 0)), 0)
