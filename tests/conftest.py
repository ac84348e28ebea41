"""Shared fixtures: real databases (SQLite and PostgreSQL), settings, sessions.

Database tests run once per backend. PostgreSQL tests use a database created for this test
run and dropped at the end; each test runs in a transaction that is rolled back. Tests that
need committed data across processes use ``committed_db`` (tables emptied afterwards).

PostgreSQL and Redis are required: when they are unreachable the run fails at once with a
message saying how to start them. Nothing is skipped.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings, load_settings
from service.db import Base, make_engine, make_sessionmaker, upgrade

PG_ADMIN_URL = os.environ.get(
    "PTNUDGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("PTNUDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
BACKENDS = ("sqlite", "postgresql")
# What production accepts (config/settings.py refuses weak secrets, http and console
# transports there): add to make_settings / load_settings for a production process.
PRODUCTION_SETTINGS: dict[str, object] = {
    "env": "production",
    "public_url": "https://reminders.example.org",
    "secret_key": "k3GvR9wXb2LmQ8tYz5NcH7pJd4SfA6eU",
    "sms_backend": "twilio",
    "twilio_account_sid": "AC" + "0123456789abcdef" * 2,
    "twilio_auth_token": "fedcba9876543210" * 2,
    "twilio_from_number": "+13125550100",
    "smtp_url": "smtp://mail.example.org:587?starttls=1",
    "email_from": "reminders@example.org",
}
pytest_plugins = ["tests.log_audit"]

# A test's ``record_property(SUMMARY_TABLE, text)`` is printed after the run, whatever its
# outcome: the way to show a measured table (the reply corpus) that works under xdist too.
SUMMARY_TABLE = "summary_table"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            for name, value in getattr(report, "user_properties", ()):
                if name == SUMMARY_TABLE and report.when == "call":
                    terminalreporter.write_line("\n" + str(value))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail the whole run loudly, before any test, when the required servers are down."""
    problems = []
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "unreachable"
        problems.append(
            f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({type(exc).__name__}: {exc}). Start it: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        problems.append(
            f"Redis at {REDIS_URL} is unreachable ({exc}). Start it: redis-server --daemonize yes "
            '--bind 127.0.0.1 --port 6379 --save "" --appendonly no'
        )
    if problems:
        pytest.exit("\n".join(problems), returncode=3)


# Redis databases 2-15 are lent to one test at a time (0 holds the loans; 1 is shared by
# tests that keep to a key prefix and never empty it).
_LENT_DATABASES = range(2, 16)
_LOAN_KEY = "ptnudge-tests:redis-db:{}"


@contextmanager
def redis_database(*, wait: float = 300.0) -> Iterator[str]:
    """The URL of a Redis database no other test holds, emptied before and after.

    Tests in parallel processes (pytest-xdist) and parallel runs on one server must not
    share one: a test that empties its database would drop another's queued tasks. The
    loan is a key on database 0 set only if absent, expiring after an hour in case the
    holder dies."""
    loans = redis.Redis.from_url(f"{REDIS_URL}/0")
    token = secrets.token_hex(8)
    deadline = time.monotonic() + wait
    while (number := _borrow(loans, token)) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"no Redis database of {REDIS_URL} came free in {wait:.0f}s")
        time.sleep(0.5)
    url = f"{REDIS_URL}/{number}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        yield url
        client.flushdb()
    finally:
        client.close()
        if loans.get(_LOAN_KEY.format(number)) == token.encode():
            loans.delete(_LOAN_KEY.format(number))
        loans.close()


def _borrow(loans: redis.Redis, token: str) -> int | None:
    """A free database number, now lent under ``token``, or None when all are out."""
    for number in random.sample(_LENT_DATABASES, len(_LENT_DATABASES)):
        if loans.set(_LOAN_KEY.format(number), token, nx=True, ex=3600):
            return number
    return None


@contextmanager
def redis_broker_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings for a SQLite database in ``tmp_path`` and a Redis broker on a database of
    the test's own, its keys under a prefix as in production."""
    with redis_database() as url:
        yield make_settings(
            database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
            tmp_path=tmp_path,
            broker_url=url,
            broker_key_prefix=f"t{secrets.token_hex(3)}:",
        )


@dataclass
class Database:
    backend: str
    url: str
    engine: Engine
    sessions: sessionmaker[Session]


def _create_pg_database(name: str) -> str:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(name: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def new_database(backend: str, tmp_dir: Path) -> Database:
    """A fresh, migrated database of the given backend (Alembic from zero, as in production)."""
    name = f"ptnudge_test_{os.getpid()}_{secrets.token_hex(4)}"
    if backend == "sqlite":
        url = f"sqlite:///{tmp_dir / (name + '.db')}"
    else:
        url = _create_pg_database(name)
    upgrade(url)
    engine = make_engine(url)
    return Database(backend, url, engine, make_sessionmaker(engine))


def dispose_database(db: Database) -> None:
    db.engine.dispose()
    if db.backend == "postgresql":
        drop_pg_database(sa.make_url(db.url).database or "")


@pytest.fixture(scope="session", params=BACKENDS)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    db = new_database(request.param, tmp_path_factory.mktemp("db"))
    yield db
    dispose_database(db)


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test: commits inside the
    code under test become savepoints."""
    with database.engine.connect() as conn:
        outer = conn.begin()
        with Session(
            bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
        ) as s:
            yield s
        outer.rollback()


@pytest.fixture
def committed_db(database: Database) -> Iterator[Database]:
    """The database for tests whose code commits for real (several sessions, other
    processes); every table is emptied afterwards."""
    yield database
    with database.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@contextmanager
def patient_insert_refused(db: Database, first_name: str) -> Iterator[None]:
    """A real database error, made by the database itself: while inside, inserting a
    patient with this first name fails (a trigger, on PostgreSQL and on SQLite alike)."""
    if db.backend == "postgresql":
        create = [
            "CREATE FUNCTION test_refuse_patient() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN IF NEW.first_name = '{first_name}' THEN "
            "RAISE EXCEPTION 'patient refused by a test trigger'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER test_refuse_patient BEFORE INSERT ON patients "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_patient()",
        ]
        drop = [
            "DROP TRIGGER test_refuse_patient ON patients",
            "DROP FUNCTION test_refuse_patient()",
        ]
    else:
        create = [
            "CREATE TRIGGER test_refuse_patient BEFORE INSERT ON patients "
            f"WHEN NEW.first_name = '{first_name}' "
            "BEGIN SELECT RAISE(ABORT, 'patient refused by a test trigger'); END"
        ]
        drop = ["DROP TRIGGER test_refuse_patient"]
    with db.engine.begin() as conn:
        for statement in create:
            conn.execute(sa.text(statement))
    try:
        yield
    finally:
        with db.engine.begin() as conn:
            for statement in drop:
                conn.execute(sa.text(statement))


@pytest.fixture
def postgres_db(tmp_path: Path) -> Iterator[Database]:
    """A fresh PostgreSQL database of the test's own, dropped afterwards: for tests of
    PostgreSQL's row locks (several sessions at once) and for processes started by a test."""
    db = new_database("postgresql", tmp_path)
    yield db
    dispose_database(db)


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    return make_settings(database_url=database.url, tmp_path=tmp_path)


def make_settings(*, database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "database_url": database_url,
        "broker_url": f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        "sms_backend": "console",
        "secret_key": "test-secret-key-0123456789",
        "_env_file": None,
    }
    values.update(overrides)
    return load_settings(**values)
