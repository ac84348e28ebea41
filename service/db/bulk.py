"""Loading many rows at once, into each database the way it takes them fastest.

PostgreSQL gets COPY: a multi-row INSERT costs SQLAlchemy and psycopg far more to build and
parse (~0.5 ms a patient of the CSV import) than the server takes to store it. SQLite runs
in-process, where executemany is already cheap.

A loader has its own form of a row: COPY text for PostgreSQL, a tuple for SQLite. A caller
that repeats rows for many parents (a program's plan items for every patient) renders the
shared part once with ``row`` and puts each parent's own leading values before it with
``join``, so a repeated row costs one join instead of one conversion of every value.
``dialects.bulk_loader`` picks the loader for a session.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any, Generic, TypeVar, cast

import psycopg
from sqlalchemy import (
    JSON,
    ColumnElement,
    Enum,
    Table,
    TextualSelect,
    column,
    insert,
    select,
    table,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

Columns = tuple[str, ...]
Values = tuple[Any, ...]
R = TypeVar("R")


class BulkLoader(ABC, Generic[R]):
    """Rows in the loader's form ``R``, and the statements that store them."""

    # Whether batches written on several connections at once finish sooner: a PostgreSQL
    # connection works on one core; SQLite lets one writer in at a time.
    concurrent_writers: bool

    @abstractmethod
    def cell(self, value: Any) -> R:
        """One value that needs no conversion (an id, a time), as a part of a row."""

    @abstractmethod
    def row(self, target: Table, columns: Columns, values: Iterable[Any]) -> R:
        """Python values for ``columns`` of ``target`` (enums, JSON, times) as a row."""

    @abstractmethod
    def join(self, parts: Sequence[R]) -> R:
        """Cells and rows side by side, as one row."""

    @abstractmethod
    def write(self, session: Session, target: Table, columns: Columns, rows: Sequence[R]) -> None:
        """Store the rows in the session's transaction (nothing to do for none)."""

    @abstractmethod
    def insert_new(
        self,
        session: Session,
        target: Table,
        columns: Columns,
        rows: Sequence[Values],
        *,
        unique: Sequence[str | ColumnElement[Any]],
        returning: Sequence[ColumnElement[Any]],
    ) -> list[Values]:
        """Insert rows of Python values, skipping those whose ``unique`` columns are stored
        already (even by a transaction running at the same moment), and return ``returning``
        of each row inserted."""


class SQLiteLoader(BulkLoader[Values]):
    concurrent_writers = False

    def cell(self, value: Any) -> Values:
        return (value,)

    def row(self, target: Table, columns: Columns, values: Iterable[Any]) -> Values:
        return tuple(values)

    def join(self, parts: Sequence[Values]) -> Values:
        return tuple(chain.from_iterable(parts))

    def write(
        self, session: Session, target: Table, columns: Columns, rows: Sequence[Values]
    ) -> None:
        if rows:
            session.execute(insert(target), _dicts(columns, rows))

    def insert_new(
        self,
        session: Session,
        target: Table,
        columns: Columns,
        rows: Sequence[Values],
        *,
        unique: Sequence[str | ColumnElement[Any]],
        returning: Sequence[ColumnElement[Any]],
    ) -> list[Values]:
        statement = (
            sqlite.insert(target)
            .on_conflict_do_nothing(index_elements=list(unique))
            .returning(*returning)
        )
        return [tuple(found) for found in session.execute(statement, _dicts(columns, rows))]


class PostgreSQLLoader(BulkLoader[str]):
    """COPY in its text format; a row is one line without its newline."""

    concurrent_writers = True

    def __init__(self) -> None:
        # Per table and column list: which positions need converting for COPY.
        self._converted: dict[tuple[str, Columns], list[tuple[int, TypeEngine[Any]]]] = {}

    def cell(self, value: Any) -> str:
        return _copy_literal(value)

    def row(self, target: Table, columns: Columns, values: Iterable[Any]) -> str:
        return "\t".join(map(_copy_literal, self._encode(target, columns, values)))

    def join(self, parts: Sequence[str]) -> str:
        return "\t".join(parts)

    def write(self, session: Session, target: Table, columns: Columns, rows: Sequence[str]) -> None:
        if not rows:
            return
        statement = f"COPY {target.name} ({', '.join(columns)}) FROM STDIN"
        with _driver(session).cursor() as cursor, cursor.copy(statement) as copy:
            copy.write("\n".join(rows) + "\n")

    def insert_new(
        self,
        session: Session,
        target: Table,
        columns: Columns,
        rows: Sequence[Values],
        *,
        unique: Sequence[str | ColumnElement[Any]],
        returning: Sequence[ColumnElement[Any]],
    ) -> list[Values]:
        """COPY into a scratch table (same column types, no defaults: copying into a table
        with the id default would burn sequence values), then one INSERT … SELECT that skips
        conflicts and returns what it inserted."""
        staging = f"bulk_{target.name}"
        session.execute(
            text(
                f"CREATE TEMP TABLE {staging} ON COMMIT DROP AS "  # noqa: S608 - our own names
                f"SELECT {', '.join(columns)} FROM {target.name} WITH NO DATA"
            )
        )
        statement = f"COPY {staging} ({', '.join(columns)}) FROM STDIN"
        with _driver(session).cursor() as cursor, cursor.copy(statement) as copy:
            for values in rows:
                copy.write_row(self._encode(target, columns, values))
        inserted = _insert_from(
            target,
            columns,
            dialect=session.get_bind().dialect,
            staging=staging,
            unique=tuple(unique),
            returning=tuple(returning),
        )
        found = [tuple(row) for row in session.execute(inserted).all()]
        # Dropped now, not only at commit: a transaction may insert this way more than once.
        session.execute(text(f"DROP TABLE {staging}"))
        return found

    def _encode(self, target: Table, columns: Columns, values: Iterable[Any]) -> Values:
        """Values as COPY takes them: enums by value (psycopg would write a member's name)
        and JSON as text."""
        row = tuple(values)
        key = (target.name, columns)
        if key not in self._converted:
            self._converted[key] = [
                (index, target.c[name].type)
                for index, name in enumerate(columns)
                if isinstance(target.c[name].type, Enum | JSON)
            ]
        if not self._converted[key]:
            return row
        changed = list(row)
        for index, kind in self._converted[key]:
            changed[index] = _copy_text(kind, changed[index])
        return tuple(changed)


@functools.lru_cache(maxsize=64)
def _insert_from(
    target: Table,
    columns: Columns,
    *,
    dialect: Dialect,
    staging: str,
    unique: tuple[str | ColumnElement[Any], ...],
    returning: tuple[ColumnElement[Any], ...],
) -> TextualSelect:
    """The INSERT … SELECT from the scratch table, compiled once: SQLAlchemy's PostgreSQL
    ``insert`` carries no cache key, so the construct would be compiled again for every
    batch; as text with typed result columns it is cached."""
    source = table(staging, *(column(name) for name in columns))
    inserted = (
        postgresql.insert(target)
        .from_select(list(columns), select(*source.c))
        .on_conflict_do_nothing(index_elements=list(unique))
        .returning(*returning)
    )
    sql = str(inserted.compile(dialect=dialect))
    return text(sql).columns(*returning)


def _driver(session: Session) -> psycopg.Connection[Any]:
    return cast("psycopg.Connection[Any]", session.connection().connection.driver_connection)


def _dicts(columns: Columns, rows: Sequence[Values]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _copy_text(kind: TypeEngine[Any], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, Enum):
        return getattr(value, "value", value)
    if isinstance(kind, JSON):
        return json.dumps(value)
    return value


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_literal(value: Any) -> str:
    """One value in COPY's text format: ``\\N`` for NULL, backslash escapes for the
    characters that separate fields and rows."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value).translate(_COPY_ESCAPES)
