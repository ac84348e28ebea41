"""Two beat processes by mistake, side by side for a minute: nothing is sent twice."""

from __future__ import annotations

import collections
import datetime as dt
import time

import pytest

from service.db import transaction
from service.models import Reminder, ReminderStatus, utcnow
from tests.factories import make_clinic, make_patient
from tests.integration.conftest import SENT, Pipeline, wait_until
from tests.integration.test_pipeline import due_this_minute
from tests.log_audit import LOG_DIR

pytestmark = pytest.mark.integration


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
                items=[due_this_minute(now)], schedule_after=now - dt.timedelta(minutes=1),
            )  # fmt: skip
            phones.append(patient.phone)
    pipeline.start_worker(concurrency=2)
    beats = [pipeline.start_beat("beat-a"), pipeline.start_beat("beat-b")]
    try:
        time.sleep(60)
        assert all(beat.poll() is None for beat in beats), "a beat process died"
    finally:
        pipeline.stop_beats()
    wait_until(lambda: pipeline.open_reminders() == 0, timeout=60, what="the last sends")
    sent_to = collections.Counter(message["to"] for message in pipeline.twilio.messages)
    assert set(sent_to) == set(phones), "every due message went out"
    assert max(sent_to.values()) == 1, "no patient got a message twice"
    # In the database too: one reminder per patient, each sent once, none doubled by a
    # second pass into another row (canceled, expired or merged).
    pipeline.assert_exactly_once(phones)
    rows = pipeline.reminders()
    assert len(rows) == len(phones)
    assert all(row.status in SENT for row in rows)
    for name in ("beat-a", "beat-b"):
        assert "Sending due task dispatch-due-reminders" in (LOG_DIR / f"{name}.log").read_text(), (
            f"{name} really ran the dispatcher"
        )
