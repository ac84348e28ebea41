"""The migrations build exactly the schema the models describe, on both databases, and can
be walked back."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from service.db import MIGRATIONS_DIR, Base, upgrade
from tests.conftest import Database


def test_migrated_schema_matches_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_migrations_walk_down_to_nothing_and_back_up(database: Database) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database.url)
    command.downgrade(config, "base")
    try:
        with database.engine.connect() as connection:
            tables = set(connection.dialect.get_table_names(connection))
        assert tables <= {"alembic_version"}
    finally:
        upgrade(database.url, "head")
