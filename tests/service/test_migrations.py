"""The migrations build exactly the schema the models describe, on both databases, and can
be walked back."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from service.db import MIGRATIONS_DIR, Base, upgrade
from tests.conftest import Database

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


# SQLite cannot reflect an index on an expression (the family key on lower(first_name)), so
# the comparison skips it there (the test below checks it); PostgreSQL compares it in full.
@pytest.mark.filterwarnings(
    "ignore:Skipped unsupported reflection of expression-based index uq_patients_clinic_phone_name",
    "ignore:autogenerate skipping metadata-specified expression-based index",
)
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


def test_one_clinic_may_not_hold_one_phone_and_first_name_twice_in_any_case(
    database: Database,
) -> None:
    with database.engine.connect() as connection:
        transaction = connection.begin()
        try:
            clinic_id = connection.execute(
                sa.text(
                    "INSERT INTO clinics (slug, name, phone, timezone, region, created_at) "
                    "VALUES ('c', 'C', '+13125550199', 'UTC', 'US', :now) RETURNING id"
                ),
                {"now": NOW},
            ).scalar_one()
            for name in ("Ana", "Bo"):
                _insert_patient(connection, clinic_id, name)
            with pytest.raises(IntegrityError):
                _insert_patient(connection, clinic_id, "ANA")
        finally:
            transaction.rollback()


def _insert_patient(connection: sa.Connection, clinic_id: int, first_name: str) -> None:
    with connection.begin_nested():
        connection.execute(
            sa.text(
                "INSERT INTO patients (clinic_id, first_name, phone, timezone, locale, channel, "
                "wake_start, wake_end, program_id, start_date, max_per_day, status, created_at, "
                "updated_at) VALUES (:clinic, :name, '+13125550100', 'UTC', 'en', 'sms', "
                "'08:00:00', '20:00:00', 'stenosis-core', '2026-12-01', 10, 'active', :now, :now)"
            ),
            {"clinic": clinic_id, "name": first_name, "now": NOW},
        )
