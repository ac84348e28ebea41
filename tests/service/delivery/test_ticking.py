"""A tick moves programs along before it dispatches: a progression's next phase at local
midnight, a completed program's closing message, and then nothing more."""

from __future__ import annotations

import collections
import concurrent.futures
import datetime as dt
import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from service.broker import VISIBILITY_TIMEOUT
from service.db import transaction
from service.delivery.sending import SendOutcome, Transports, send_reminder
from service.delivery.ticking import MAX_LOOK_AHEAD, Pending, look_ahead, pending, run_tick
from service.enrollment.clinics import add_clinic
from service.enrollment.patients import EnrollmentRequest, enroll
from service.models import Patient, PatientStatus, Reminder, ReminderStatus, utcnow
from service.transports.console import ConsoleEmailTransport, ConsoleSmsTransport
from service.web.urls import PublicUrls
from tests.conftest import Database, make_settings
from tests.factories import make_clinic, make_patient, make_reminder

T = TypeVar("T")
ENROLLED = dt.datetime(2026, 11, 30, 20, 0, tzinfo=dt.UTC)  # 14:00 in Chicago
PHASE_TWO = dt.datetime(2026, 12, 15, 6, 0, 5, tzinfo=dt.UTC)  # just after local midnight
AFTER_END = dt.datetime(2027, 1, 12, 6, 0, 5, tzinfo=dt.UTC)
MORNING = dt.datetime(2027, 1, 12, 14, 0, 5, tzinfo=dt.UTC)  # 08:00 in Chicago
SCHEDULED = ReminderStatus.SCHEDULED


def enroll_progression(database: Database) -> int:
    with transaction(database.sessions) as session:
        clinic = add_clinic(
            session=session,
            slug="back-clinic",
            name="Lakeside Back Clinic",
            phone="+13125550199",
            timezone="America/Chicago",
            actor="test",
        )
        request = EnrollmentRequest(
            first_name="Ana", phone="(312) 555-0100", program="stenosis-6-weeks", start="2026-12-01"
        )
        return enroll(session=session, clinic=clinic, request=request, actor="t", now=ENROLLED).id


def tick(database: Database, settings: Settings, now: dt.datetime) -> list[int]:
    return run_tick(settings=settings, sessions=database.sessions, now=now).to_send


def reminders(database: Database, kind: str) -> list[Reminder]:
    with database.sessions() as session:
        return list(session.scalars(select(Reminder).where(Reminder.kind == kind)))


def test_a_tick_moves_the_patient_to_the_next_phase_at_local_midnight(
    committed_db: Database, settings: Settings
) -> None:
    patient_id = enroll_progression(committed_db)

    tick(committed_db, settings, PHASE_TWO)

    with committed_db.sessions() as session:
        patient = session.get_one(Patient, patient_id)
        assert patient.phase == 1
        assert "pelvic_tilt" in {item.kind for item in patient.plan_items}
    [note] = reminders(committed_db, "phase_change")
    assert note.status is ReminderStatus.SCHEDULED  # goes out at 08:00, not at midnight


def test_past_the_end_the_closing_message_goes_out_and_then_nothing(
    committed_db: Database, settings: Settings
) -> None:
    patient_id = enroll_progression(committed_db)
    tick(committed_db, settings, AFTER_END)

    to_send = tick(committed_db, settings, MORNING)

    [closing] = reminders(committed_db, "program_complete")
    assert to_send == [closing.id]
    sms = io.StringIO()
    transports = Transports(
        sms=ConsoleSmsTransport(sms), email=ConsoleEmailTransport(io.StringIO())
    )
    outcome = send_reminder(
        sessions=committed_db.sessions,
        settings=settings,
        transports=transports,
        urls=PublicUrls(settings.public_url),
        reminder_id=closing.id,
        retry_in=None,
        clock=lambda: MORNING,
    )
    assert outcome is SendOutcome.SENT
    assert "Ana, you finished your home program" in sms.getvalue()
    with committed_db.sessions() as session:
        assert session.get_one(Patient, patient_id).status is PatientStatus.COMPLETED
    assert tick(committed_db, settings, MORNING + dt.timedelta(hours=3)) == []


# --- the probe that makes an idle pass one statement -------------------------------------


def test_the_probe_finds_each_kind_of_work_a_pass_does_and_the_backlog(session: Session) -> None:
    now = dt.datetime(2026, 12, 2, 15, 0, 30, tzinfo=dt.UTC)
    ahead = dt.timedelta(seconds=15)
    assert pending(session, now=now, ahead=ahead) == Pending(False, False, False, 0)
    patient = make_patient(session, make_clinic(session), schedule_after=now)
    item = patient.plan_items[0]

    item.next_due_at = now + dt.timedelta(seconds=20)  # after the look-ahead
    session.flush()
    assert pending(session, now=now, ahead=ahead).idle
    item.next_due_at = now + dt.timedelta(seconds=10)
    session.flush()
    assert pending(session, now=now, ahead=ahead) == Pending(False, True, False, 0)

    item.next_due_at = None
    patient.plan_changes_at = now
    # One-offs are not claimed ahead: this welcome is not due yet.
    welcome_at = now + dt.timedelta(seconds=10)
    make_reminder(session, patient, kind="welcome", due_at=welcome_at, status=SCHEDULED)
    make_reminder(session, patient, kind="stretch", due_at=now, status=ReminderStatus.QUEUED)
    assert pending(session, now=now, ahead=ahead) == Pending(True, False, False, 1)
    assert pending(session, now=now + dt.timedelta(seconds=10), ahead=ahead).one_offs


def test_a_pass_that_finds_only_a_one_off_due_sends_it(
    committed_db: Database, settings: Settings
) -> None:
    with transaction(committed_db.sessions) as session:
        patient = make_patient(session, make_clinic(session))
        welcome = make_reminder(
            session, patient, kind="welcome", due_at=MORNING, status=SCHEDULED, actionable=False
        )
        welcome_id = welcome.id

    assert tick(committed_db, settings, MORNING - dt.timedelta(seconds=1)) == []
    assert tick(committed_db, settings, MORNING) == [welcome_id]


# --- two passes side by side, with no lock but PostgreSQL's rows ------------------------


def side_by_side(passes: int, run: Callable[[], T]) -> list[T]:
    """Run ``run`` in ``passes`` threads released together by a barrier, each with its own
    database sessions; every thread's result, or the first error any of them raised."""
    barrier = threading.Barrier(passes)

    def released() -> T:
        barrier.wait(timeout=30)
        return run()

    with concurrent.futures.ThreadPoolExecutor(max_workers=passes) as pool:
        futures = [pool.submit(released) for _ in range(passes)]
        return [future.result(timeout=120) for future in futures]


def test_two_ticks_side_by_side_on_postgresql_dispatch_each_due_item_once(
    postgres_db: Database, tmp_path: Path
) -> None:
    """No Redis lock here: only the dispatcher's ``FOR UPDATE SKIP LOCKED`` keeps two passes
    apart, in batches of 10 so that they interleave."""
    settings = make_settings(
        database_url=postgres_db.url, tmp_path=tmp_path, min_gap_minutes=0, dispatch_batch_size=10
    )
    now = utcnow()
    with transaction(postgres_db.sessions) as session:
        clinic = make_clinic(session)
        patients = [
            make_patient(
                session, clinic, timezone="UTC", wake=(dt.time(0, 0), dt.time(23, 59)),
                items=[{"kind": "stretch", "every_minutes": 15}], max_per_day=100,
                schedule_after=now - dt.timedelta(minutes=15),
            ).id
            for _ in range(80)
        ]  # fmt: skip

    results = side_by_side(
        2, lambda: run_tick(settings=settings, sessions=postgres_db.sessions, now=now)
    )

    queued = [reminder_id for result in results for reminder_id in result.to_send]
    assert len(queued) == len(set(queued)) == 80
    with postgres_db.sessions() as session:
        per_patient = collections.Counter(session.scalars(select(Reminder.patient_id)))
    assert per_patient == collections.Counter(patients)  # one reminder each, none doubled


def test_the_look_ahead_is_one_tick_and_never_near_the_brokers_visibility_timeout(
    tmp_path: Path,
) -> None:
    default = make_settings(database_url="sqlite://", tmp_path=tmp_path)
    hourly = make_settings(database_url="sqlite://", tmp_path=tmp_path, tick_seconds=3600)
    assert look_ahead(default) == dt.timedelta(seconds=15)
    assert look_ahead(hourly) == MAX_LOOK_AHEAD
    assert MAX_LOOK_AHEAD.total_seconds() * 10 <= VISIBILITY_TIMEOUT
