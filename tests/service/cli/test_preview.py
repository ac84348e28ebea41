"""``ptnudge preview PATIENT_ID``: what would go out, in the patient's local time."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from typer.testing import CliRunner, Result

import service.cli  # noqa: F401 - registers every command group on the root app
from service.cli.app import app
from service.cli.preview import local_midnight
from service.enrollment import optouts
from service.enrollment.clinics import add_clinic
from service.enrollment.patients import EnrollmentRequest, enroll
from service.models import Channel, Patient, PatientStatus
from tests.conftest import Database


def run(database: Database, *args: str) -> Result:
    env = {"PTNUDGE_DATABASE_URL": database.url, "PTNUDGE_ENV": "test", "COLUMNS": "200"}
    return CliRunner().invoke(app, ["preview", *args], env=env)


@pytest.fixture
def patient_id(committed_db: Database) -> str:
    with committed_db.sessions() as session, session.begin():
        clinic = add_clinic(
            session=session,
            slug="back-clinic",
            name="Lakeside Back Clinic",
            phone="+13125550199",
            timezone="America/Chicago",
            actor="test",
        )
        add_clinic(
            session=session,
            slug="westside",
            name="Westside PT",
            phone="+13125550198",
            timezone="America/Chicago",
            actor="test",
        )
        request = EnrollmentRequest(
            first_name="Ana", phone="(312) 555-0100", program="stenosis-gentle", start="2026-12-01"
        )
        now = dt.datetime(2026, 11, 24, 21, 0, tzinfo=dt.UTC)
        return str(enroll(session=session, clinic=clinic, request=request, actor="t", now=now).id)


def test_json_lists_each_message_with_utc_and_local_times(
    committed_db: Database, patient_id: str
) -> None:
    result = run(committed_db, patient_id, "--from", "2026-12-02", "--days", "1", "--json")

    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert entries
    assert {"kind", "due_at", "local_time", "channel", "text"} <= set(entries[0])
    first = entries[0]
    assert first["due_at"].endswith("+00:00")
    assert first["local_time"].startswith("2026-12-02T08:")  # the window opens at 08:00 CST
    assert first["local_time"].endswith("-06:00")
    due = dt.datetime.fromisoformat(first["due_at"])
    assert due == dt.datetime.fromisoformat(first["local_time"])
    assert all(e["channel"] == "sms" and "Ana" in e["text"] for e in entries)
    local_days = {e["local_time"][:10] for e in entries}
    assert local_days == {"2026-12-02"}


def test_the_table_shows_local_time_and_text(committed_db: Database, patient_id: str) -> None:
    result = run(committed_db, patient_id, "--from", "2026-12-02", "--days", "1")

    assert result.exit_code == 0, result.output
    assert "Wed 12-02 08:30 CST" in result.stdout
    assert "heat" in result.stdout


def test_another_clinics_patient_or_a_bad_date_is_an_error(
    committed_db: Database, patient_id: str
) -> None:
    other = run(committed_db, patient_id, "--clinic", "westside")
    bad_date = run(committed_db, patient_id, "--from", "tomorrow")

    assert other.exit_code == 1
    assert other.stderr.strip() == f"error: no patient {patient_id} at westside"
    assert bad_date.exit_code == 1
    assert "--from 'tomorrow' is not a date" in bad_date.stderr


def test_local_midnight_is_the_first_instant_of_the_local_day() -> None:
    chicago = local_midnight("2026-12-02", "America/Chicago")
    # Santiago springs forward at midnight: 2026-09-06 has no 00:00, the day starts at 01:00.
    santiago = local_midnight("2026-09-06", "America/Santiago")

    assert chicago.astimezone(dt.UTC) == dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.UTC)
    assert (santiago.hour, santiago.minute) == (1, 0)
    assert santiago.date() == dt.date(2026, 9, 6)


def enroll_night_owl(database: Database, *, at: str, phone: str) -> str:
    """A New York patient awake 00:00-23:59 with one daily stretch at ``at``."""
    with database.sessions() as session, session.begin():
        clinic = add_clinic(
            session=session,
            slug=f"ny-{phone[-4:]}",
            name="Hudson Spine PT",
            phone="+12125550199",
            timezone="America/New_York",
            actor="test",
        )
        request = EnrollmentRequest(
            first_name="Ana",
            phone=phone,
            program="stenosis-gentle",
            wake="00:00-23:59",
            start="2027-01-01",
            tune=("position_change.off", "heat.off", "ice.off", f"stretch.at={at}"),
        )
        now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
        return str(enroll(session=session, clinic=clinic, request=request, actor="t", now=now).id)


def test_a_time_skipped_by_spring_forward_fires_once_at_the_first_valid_minute(
    committed_db: Database,
) -> None:
    patient = enroll_night_owl(committed_db, at="02:30", phone="+12125550101")

    result = run(committed_db, patient, "--from", "2027-03-13", "--days", "3", "--json")

    assert result.exit_code == 0, result.output
    on_the_14th = [e for e in json.loads(result.stdout) if e["local_time"][:10] == "2027-03-14"]
    assert len(on_the_14th) == 1
    local = dt.datetime.fromisoformat(on_the_14th[0]["local_time"])
    assert local.time() >= dt.time(2, 30)
    assert local.isoformat() == "2027-03-14T03:00:00-04:00"  # 02:30 does not exist that day


def test_a_time_repeated_by_fall_back_fires_once(committed_db: Database) -> None:
    patient = enroll_night_owl(committed_db, at="01:30", phone="+12125550102")

    result = run(committed_db, patient, "--from", "2027-11-06", "--days", "3", "--json")

    assert result.exit_code == 0, result.output
    on_the_7th = [e for e in json.loads(result.stdout) if e["local_time"][:10] == "2027-11-07"]
    assert [e["local_time"] for e in on_the_7th] == ["2027-11-07T01:30:00-04:00"]


def test_preview_says_why_nothing_would_go_out(committed_db: Database, patient_id: str) -> None:
    with committed_db.sessions() as session, session.begin():
        optouts.opt_out(
            session=session,
            address="+13125550100",
            channel=Channel.SMS,
            source="sms_keyword",
            actor="t",
        )

    result = run(committed_db, patient_id, "--from", "2026-12-01", "--days", "2", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    assert "nothing would go out" in result.stderr
    assert "+13125550100 is on the opt-out ledger" in result.stderr
    assert "until the patient texts START" in result.stderr


def test_preview_of_a_patient_paused_by_a_warning_sign_says_so(
    committed_db: Database, patient_id: str
) -> None:
    result_before = run(committed_db, patient_id, "--from", "2026-12-01", "--days", "1")
    assert "nothing would go out" not in result_before.stderr
    with committed_db.sessions() as session, session.begin():
        patient = session.get(Patient, int(patient_id))
        assert patient is not None
        patient.status, patient.paused_until = PatientStatus.PAUSED, None

    result = run(committed_db, patient_id, "--from", "2026-12-01", "--days", "1")

    assert result.exit_code == 0, result.output
    assert "nothing would go out: paused until the clinic resumes them" in result.stderr


def enroll_core(database: Database) -> str:
    """A Chicago patient on stenosis-core as written, awake 08:00-20:00."""
    with database.sessions() as session, session.begin():
        clinic = add_clinic(
            session=session,
            slug="core-clinic",
            name="Lakeside Back Clinic",
            phone="+13125550199",
            timezone="America/Chicago",
            actor="test",
        )
        request = EnrollmentRequest(
            first_name="Ana",
            phone="(312) 555-0110",
            program="stenosis-core",
            wake="08:00-20:00",
            start="2026-12-01",
        )
        now = dt.datetime(2026, 11, 24, 21, 0, tzinfo=dt.UTC)
        return str(enroll(session=session, clinic=clinic, request=request, actor="t", now=now).id)


def core_preview(database: Database, first_day: str, days: int) -> list[dict[str, object]]:
    """``preview --json`` of a fresh stenosis-core patient from ``first_day``."""
    result = run(
        database, enroll_core(database), "--from", first_day, "--days", str(days), "--json"
    )
    assert result.exit_code == 0, result.output
    entries: list[dict[str, object]] = json.loads(result.stdout)
    return entries


def by_local_day(entries: list[dict[str, object]]) -> dict[str, list[dict[str, object]]]:
    by_day: dict[str, list[dict[str, object]]] = {}
    for entry in entries:
        by_day.setdefault(str(entry["local_time"])[:10], []).append(entry)
    return by_day


def test_core_program_keeps_position_changes_after_four_within_ten_messages_a_day(
    committed_db: Database,
) -> None:
    by_day = by_local_day(core_preview(committed_db, "2026-12-02", 2))
    assert set(by_day) == {"2026-12-02", "2026-12-03"}
    for day, messages in by_day.items():
        assert len(messages) <= 10, day
        late = [
            m
            for m in messages
            if "position_change" in m["kinds"] and str(m["local_time"])[11:16] > "16:00"
        ]
        assert late, f"no position change after 16:00 on {day}"
        # Fixed sessions are all there: three stretches a day.
        assert sum("stretch" in m["kinds"] for m in messages) == 3


def test_core_program_asks_about_pain_twice_a_week_and_checks_in_on_sundays(
    committed_db: Database,
) -> None:
    entries = core_preview(committed_db, "2026-11-30", 7)  # Monday to Sunday
    questions = [
        (str(m["local_time"])[:16], m["kinds"])
        for m in entries
        if {"pain_question", "weekly_checkin"} & set(m["kinds"])
    ]
    # Each question leaves as a message of its own, never inside a combined reminder.
    assert questions == [
        ("2026-12-01T14:30", ["pain_question"]),
        ("2026-12-04T14:30", ["pain_question"]),
        ("2026-12-06T17:30", ["weekly_checkin"]),
    ]
    assert max(len(messages) for messages in by_local_day(entries).values()) <= 10
