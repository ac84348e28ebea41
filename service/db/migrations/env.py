"""Alembic environment: the URL comes from the caller (``ptnudge db upgrade``) or settings."""

from __future__ import annotations

from alembic import context

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
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
