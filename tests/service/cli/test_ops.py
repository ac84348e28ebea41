"""``ptnudge tick`` and ``ptnudge status`` as operators run them, with what they depend on
down: one line saying what is wrong, never a driver's traceback."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from service.db import make_engine, make_sessionmaker, upgrade
from service.models import Channel, Reminder, ReminderStatus
from tests.factories import make_clinic, make_patient

SCRIPT = Path(sys.executable).with_name("ptnudge")
CLOSED_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/ptnudge"
CLOSED_BROKER = "redis://127.0.0.1:1/0"


def ptnudge(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PTNUDGE_")}
    return subprocess.run(
        [str(SCRIPT), *args],
        env=inherited | {"PTNUDGE_ENV": "test"} | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("command", ["status", "tick"])
def test_a_database_that_is_down_is_one_line(tmp_path: Path, command: str) -> None:
    result = ptnudge(command, cwd=tmp_path, PTNUDGE_DATABASE_URL=CLOSED_DATABASE)

    assert_one_line(result, "database is unreachable", "Connection refused")


def test_an_unmigrated_database_is_one_line_that_says_how_to_fix_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"

    result = ptnudge("status", cwd=tmp_path, PTNUDGE_DATABASE_URL=url)

    assert_one_line(result, "no such table", "ptnudge db upgrade")


def test_tick_with_the_broker_down_is_one_line_and_keeps_the_reminders_queued(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    upgrade(url)
    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC)
    with make_sessionmaker(engine)() as session:
        patient = make_patient(session, make_clinic(session))
        # A one-off that came due (a snoozed reminder): the tick queues it.
        session.add(
            Reminder(
                patient_id=patient.id,
                kind="stretch",
                channel=Channel.SMS,
                due_at=now - dt.timedelta(minutes=1),
                status=ReminderStatus.SCHEDULED,
                status_at=now,
                to_address=patient.phone,
            )
        )
        session.commit()

    result = ptnudge(
        "tick", cwd=tmp_path, PTNUDGE_DATABASE_URL=url, PTNUDGE_BROKER_URL=CLOSED_BROKER
    )

    assert_one_line(result, "broker is unreachable", "PTNUDGE_BROKER_URL")
    with make_sessionmaker(engine)() as session:
        statuses = session.scalars(sa.select(Reminder.status)).all()
    engine.dispose()
    assert statuses == [ReminderStatus.QUEUED]  # for the sweeper to queue again
