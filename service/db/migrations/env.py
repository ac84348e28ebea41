"""Alembic environment: the URL comes from the caller (``ptnudge db upgrade``) or settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from config.settings import load_settings
from service import models  # noqa: F401 - registers every table on Base.metadata
from service.db import Base, make_engine

config = context.config
url: str = config.get_main_option("sqlalchemy.url") or load_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            _sqlite_foreign_keys_off(connection)
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def _sqlite_foreign_keys_off(connection: Connection) -> None:
    # SQLite alters a table in a batch by copying it, dropping the old one and renaming the
    # copy. With foreign keys on, that DROP first deletes every row and fires the ON DELETE
    # actions: links into the table (replies, merged rows, snoozes) would become NULL. The
    # pragma works outside a transaction only, so before Alembic begins one.
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute("PRAGMA foreign_keys=OFF")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
