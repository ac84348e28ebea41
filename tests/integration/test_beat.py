"""Two beat processes by mistake, side by side for a minute: nothing is sent twice."""

from __future__ import annotations

import collections
import datetime as dt
import subprocess
import sys
import time

import pytest

from service.db import transaction
from service.models import Reminder, ReminderStatus, utcnow
from tests.factories import make_clinic, make_patient
from tests.integration.conftest import REPO_ROOT, Pipeline, wait_until
from tests.log_audit import LOG_DIR

pytestmark = pytest.mark.integration


def start_beat(pipeline: Pipeline, name: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "celery", "-A", "tasks.app", "beat", "--loglevel", "INFO",
        "--schedule", str(pipeline.tmp_path / f"{name}-schedule"),
    ]  # fmt: skip
    with (LOG_DIR / f"{name}.log").open("ab") as log:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=pipeline.env, stdout=log, stderr=log)


def test_two_beats_side_by_side_for_a_minute_send_nothing_twice(pipeline: Pipeline) -> None:
    pipeline.overrides["PTNUDGE_TICK_SECONDS"] = "1"
    now = utcnow()
    phones = []
    with transaction(pipeline.db.sessions) as session:
        clinic = make_clinic(session)
        # One-off messages coming due one after another over the minute the beats run, and
        # plan items due right away: both paths the dispatcher takes.
        for n in range(60):
            patient = make_patient(
                session, clinic, first_name=f"Beat{n:02d}", timezone="UTC",
                wake=(dt.time(0, 0), dt.time(23, 59)),
            )  # fmt: skip
            session.add(
                Reminder(
                    patient_id=patient.id, kind="stretch", channel="sms", actionable=True,
                    due_at=now + dt.timedelta(seconds=n), status=ReminderStatus.SCHEDULED,
                )
            )  # fmt: skip
            phones.append(patient.phone)
        for n in range(30):
            patient = make_patient(
                session, clinic, first_name=f"Due{n:02d}", timezone="UTC",
                wake=(dt.time(0, 0), dt.time(23, 59)), max_per_day=100,
                items=[{"kind": "stretch", "every_minutes": 15}],
                schedule_after=now - dt.timedelta(minutes=15),
            )  # fmt: skip
            phones.append(patient.phone)
    pipeline.start_worker(concurrency=2)
    beats = [start_beat(pipeline, "beat-a"), start_beat(pipeline, "beat-b")]
    try:
        time.sleep(60)
        assert all(beat.poll() is None for beat in beats), "a beat process died"
    finally:
        for beat in beats:
            beat.terminate()
            beat.wait(timeout=30)
    wait_until(lambda: pipeline.open_reminders() == 0, timeout=60, what="the last sends")
    sent_to = collections.Counter(message["to"] for message in pipeline.twilio.messages)
    assert set(sent_to) == set(phones), "every due message went out"
    assert max(sent_to.values()) == 1, "no patient got a message twice"
    for name in ("beat-a", "beat-b"):
        assert "Sending due task dispatch-due-reminders" in (LOG_DIR / f"{name}.log").read_text(), (
            f"{name} really ran the dispatcher"
        )
