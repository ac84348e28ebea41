"""Scratch PostgreSQL databases for the benchmarks: created empty, dropped at the end."""

from __future__ import annotations

import os
import secrets

import sqlalchemy as sa

ADMIN_URL = os.environ.get(
    "PTNUDGE_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def create_database(prefix: str) -> tuple[str, str]:
    """A new database named ``<prefix>_<random>``; returns its name and URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, sa.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
