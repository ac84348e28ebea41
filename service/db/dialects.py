"""What differs between PostgreSQL and SQLite, behind names that say what is wanted.

Business code calls these and never asks which database it runs on. PostgreSQL is the
production database; SQLite serves development, the demo and half of the test runs, so each
function gives the same result on both, by the means each database has.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Date,
    Insert,
    Select,
    SQLColumnExpression,
    Table,
    any_,
    bindparam,
    cast,
    func,
    select,
    text,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, QueryableAttribute, Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import ExecutableReturnsRows, TextualSelect

from service.db.bulk import BulkLoader, PostgreSQLLoader, SQLiteLoader

T = TypeVar("T", bound=tuple[Any, ...])
M = TypeVar("M", bound=DeclarativeBase)
V = TypeVar("V")
_SQLITE_LOCAL_DATE = "ptnudge_local_date"


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def for_update_skip_locked(
    query: Select[T], *, session: Session, of: type[Any] | None = None
) -> Select[T]:
    """The query's rows locked until commit, passing over rows another transaction holds, so
    that concurrent claimers each take different rows. ``of`` limits the lock to one entity
    of a joined query.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED``. SQLite has no row locks: its writing transactions
    begin with ``BEGIN IMMEDIATE`` (see ``make_engine``), so one claimer runs at a time.
    """
    if not _postgresql(session):
        return query
    return query.with_for_update(skip_locked=True, of=of)


def among(
    column: QueryableAttribute[V] | ColumnElement[V], values: Collection[V], *, session: Session
) -> ColumnElement[bool]:
    """``column IN (values)`` for many values.

    PostgreSQL gets them as one array parameter (``column = ANY(:values)``): an IN list
    binds one parameter per value, and psycopg parses a statement with its placeholders
    anew each time unless it is under 4 kB, which 500 ids are not (half a dispatcher pass
    went into that). SQLite has no arrays: it gets the IN list."""
    if not _postgresql(session):
        return column.in_(values)
    array = bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
    return column == any_(array)


def get_for_update(session: Session, entity: type[M], ident: int) -> M | None:
    """One row by primary key, locked until commit (PostgreSQL ``FOR UPDATE``; on SQLite the
    writing transaction already excludes every other writer)."""
    return session.get(entity, ident, with_for_update=_postgresql(session))


def insert_ignoring_duplicates(
    target: type[DeclarativeBase] | Table, *, session: Session, unique: Sequence[str]
) -> Insert:
    """An INSERT that skips rows whose ``unique`` columns match a row already stored (or one
    a concurrent transaction just stored): ``ON CONFLICT DO NOTHING`` on both databases,
    whose SQLAlchemy constructs differ."""
    dialect_insert = postgresql.insert if _postgresql(session) else sqlite.insert
    return dialect_insert(target).on_conflict_do_nothing(index_elements=list(unique))


def insert_returning_new(
    entity: type[M], *, session: Session, unique: str, values: dict[str, Any]
) -> M | None:
    """Insert one row of ``entity`` and return it as a mapped object, or None when a row
    with the same ``unique`` column is stored already (or a concurrent transaction just
    stored one: the INSERT waits for it to commit, then inserts nothing).

    The same as ``insert_ignoring_duplicates(…).values(…).returning(entity)`` at a fraction
    of its cost: SQLAlchemy never caches its PostgreSQL- or SQLite-specific INSERT
    (``inherit_cache = False``), and compiling it afresh on the ORM's bulk path took 3.5 of
    the 9.6 ms of CPU an inbound DONE cost. This is SQL text both databases take, made once
    per shape of ``values``, whose statement SQLAlchemy then caches like any other. The
    statement object itself is kept too: SQLAlchemy works out a statement's cache key once
    per object, and a new ``select(…).from_statement(…)`` for every row cost two thirds of
    a millisecond doing it again."""
    statement = _insert_returning(entity, unique, tuple(sorted(values)))
    return session.scalars(statement, values).first()


@lru_cache(maxsize=32)
def _insert_returning(
    entity: type[M], unique: str, names: tuple[str, ...]
) -> ExecutableReturnsRows:
    table = entity.__table__
    assert isinstance(table, Table)  # a mapped class of one table
    return select(entity).from_statement(_insert_returning_sql(table, unique, names))


def _insert_returning_sql(table: Table, unique: str, names: tuple[str, ...]) -> TextualSelect:
    columns = [table.c[name] for name in names]  # KeyError for a name the table lacks
    # Every name is the table's own, from the models; the values are bound parameters.
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "  # noqa: S608
        f"VALUES ({', '.join(':' + name for name in names)}) "
        f"ON CONFLICT ({table.c[unique].name}) DO NOTHING "
        f"RETURNING {', '.join(column.name for column in table.c)}"
    )
    binds = [bindparam(column.name, type_=column.type) for column in columns]
    return text(sql).bindparams(*binds).columns(*table.c)


def local_date(
    moment: SQLColumnExpression[dt.datetime],
    zone: SQLColumnExpression[str],
    *,
    session: Session,
) -> ColumnElement[dt.date]:
    """The date of a stored UTC ``moment`` in the IANA ``zone``, computed by the database.

    PostgreSQL converts with ``timezone()``. SQLite has no time zones: a small deterministic
    SQL function is registered on this session's connection.
    """
    if _postgresql(session):
        return cast(func.timezone(zone, moment), Date)
    driver = session.connection().connection.driver_connection
    assert driver is not None
    driver.create_function(_SQLITE_LOCAL_DATE, 2, _sqlite_local_date, deterministic=True)
    return type_coerce(getattr(func, _SQLITE_LOCAL_DATE)(moment, zone), Date)


def _sqlite_local_date(stored: str, zone: str) -> str:
    # SQLite keeps UTCDateTime values as naive UTC text ("2026-11-25 14:00:00.000000").
    moment = dt.datetime.fromisoformat(stored).replace(tzinfo=dt.UTC)
    return moment.astimezone(ZoneInfo(zone)).date().isoformat()


def commit_without_waiting_for_disk(session: Session) -> None:
    """Let this transaction's commit return before its WAL reaches the disk (PostgreSQL
    ``synchronous_commit = off``, for this transaction only). A crash may then lose the
    latest such commits, never corrupt anything: callers use it where a lost commit is
    redone or harmless. SQLite commits as it always does."""
    if _postgresql(session):
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))


def bulk_loader(session: Session) -> BulkLoader[Any]:
    """How many rows at once go into this session's database (see ``service.db.bulk``)."""
    return PostgreSQLLoader() if _postgresql(session) else SQLiteLoader()
