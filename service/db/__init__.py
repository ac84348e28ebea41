"""The database: engine, sessions and the column types every table shares (here), what
differs between PostgreSQL and SQLite (``dialects``, ``bulk``) and the Alembic migrations.

May import nothing of ptnudge but ``config``; every other package may import it."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import CursorResult, DateTime, Engine, Executable, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# What a failed statement raises: through SQLAlchemy, or from the driver used directly (COPY).
DATABASE_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, psycopg.Error, sqlite3.Error)


def database_error_text(error: BaseException) -> str:
    """What the database said, in one line: the driver's message without SQLAlchemy's
    statement and parameters (they may hold patients' data) or continuation lines."""
    said = getattr(error, "orig", None) or error
    lines = str(said).strip().splitlines()
    return lines[0] if lines else type(said).__name__


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as UTC
    text and given their zone back on the way out. A naive datetime is a bug and is refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: ptnudge stores aware datetimes only")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime}  # noqa: RUF012 - SQLAlchemy's own hook


def make_engine(url: str, *, pre_ping: bool = True, **kwargs: Any) -> Engine:
    """An engine tuned per backend.

    SQLite: foreign keys on, WAL so the web app reads while the worker writes, and a busy
    timeout instead of instant "database is locked" errors. Transactions that write begin
    with BEGIN IMMEDIATE (see ``_sqlite_begin``) so claims cannot interleave.

    ``pre_ping`` tests each pooled PostgreSQL connection before use (one round trip). Workers
    turn it off: a send runs two short transactions, and a task that meets a dropped
    connection is simply retried while its reminder is still queued.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=pre_ping, **kwargs)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (pysqlite's own transaction handling is off).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock at the start, so two dispatchers never both read a
    # plan item as due and then race to claim it: SQLite has no SKIP LOCKED.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def rows_changed(session: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE and say how many rows it changed (a conditional claim must
    change exactly one). ``execute`` is typed for any statement; DML gives a CursorResult."""
    result = cast("CursorResult[Any]", session.execute(statement))
    return int(result.rowcount or 0)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits at the end of the block or rolls back on error."""
    with factory() as session, session.begin():
        yield session


def upgrade(url: str, revision: str = "head") -> None:
    """Run Alembic migrations for the database at ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, revision)
