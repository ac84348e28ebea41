"""Editing a patient after enrollment: validated like an enrollment, only the future moves,
and the audit trail holds before and after."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.enrollment.clinics import add_clinic
from service.enrollment.editing import Edited, EditRequest, edit, merge_tunings
from service.enrollment.optouts import opt_out
from service.enrollment.patients import (
    DuplicateError,
    EnrollmentError,
    EnrollmentRequest,
    PatientStateError,
    enroll,
    remove,
)
from service.models import AuditEvent, Channel, Clinic, Patient, Reminder, ReminderStatus

NOW = dt.datetime(2026, 11, 24, 21, 0, tzinfo=dt.UTC)  # 15:00 in Chicago
LATER = NOW + dt.timedelta(days=2)
ACTOR = "cli:staff"


@pytest.fixture
def clinic(session: Session) -> Clinic:
    return add_clinic(
        session=session,
        slug="back-clinic",
        name="Lakeside Back Clinic",
        phone="+13125550199",
        timezone="America/Chicago",
        actor=ACTOR,
    )


@pytest.fixture
def patient(session: Session, clinic: Clinic) -> Patient:
    request = EnrollmentRequest(first_name="Ana", phone="(312) 555-0100")
    return enroll(session=session, clinic=clinic, request=request, actor=ACTOR, now=NOW)


def change(session: Session, patient: Patient, **fields: object) -> Edited:
    request = EditRequest(**fields)  # type: ignore[arg-type]
    return edit(session=session, patient=patient, request=request, actor=ACTOR, now=LATER)


def audit_rows(session: Session, patient: Patient, action: str) -> list[AuditEvent]:
    query = select(AuditEvent).where(
        AuditEvent.patient_id == patient.id, AuditEvent.action == action
    )
    return list(session.scalars(query))


def test_a_new_waking_window_moves_every_next_due_time_inside_it(
    session: Session, patient: Patient
) -> None:
    change(session, patient, wake="10:00-18:00")

    assert (patient.wake_start, patient.wake_end) == (dt.time(10), dt.time(18))
    for item in patient.plan_items:
        assert item.next_due_at is not None
        local = item.next_due_at.astimezone(dt.timezone(dt.timedelta(hours=-6)))
        assert dt.time(10) <= local.time() <= dt.time(18)
        assert item.next_due_at > LATER
    (event,) = audit_rows(session, patient, "edit")
    assert event.actor == ACTOR
    assert event.detail == {"before": {"wake": "08:00-20:00"}, "after": {"wake": "10:00-18:00"}}


def test_what_was_queued_or_sent_is_left_alone(session: Session, patient: Patient) -> None:
    queued = Reminder(
        patient_id=patient.id,
        kind="stretch",
        channel=Channel.SMS,
        due_at=NOW,
        status=ReminderStatus.QUEUED,
    )
    session.add(queued)
    session.flush()

    change(session, patient, program="stenosis-gentle", tune=("heat.off",))

    assert queued.status is ReminderStatus.QUEUED
    assert [item.kind for item in patient.plan_items] == ["position_change", "stretch", "ice"]
    assert patient.tunings == ["heat.off"]
    assert patient.max_per_day == 8


def test_a_bad_value_gets_the_enrollment_error_and_changes_nothing(
    session: Session, patient: Patient
) -> None:
    with pytest.raises(EnrollmentError) as caught:
        change(session, patient, wake="20:00-08:00", timezone="Mars/Base")

    assert [text for _, text in caught.value.problems] == [
        "unknown time zone 'Mars/Base' (use an IANA name like America/Chicago)",
        "wake window '20:00-08:00' ends before it starts",
    ]
    assert (patient.wake_start, patient.timezone) == (dt.time(8), "America/Chicago")
    assert audit_rows(session, patient, "edit") == []


def test_a_new_phone_records_consent_again_and_is_checked_against_opt_outs(
    session: Session, patient: Patient
) -> None:
    opt_out(
        session=session,
        address="+13125550177",
        channel=Channel.SMS,
        source="sms_keyword",
        actor="test",
        now=NOW,
    )

    edited = change(session, patient, phone="312 555 0177", consent_method="verbal, in clinic")

    assert patient.phone == "+13125550177"
    assert (patient.consent_at, patient.consent_method) == (LATER, "verbal, in clinic")
    assert edited.opted_out == ("***0177",)
    (consent,) = [e for e in audit_rows(session, patient, "consent") if e.at == LATER]
    assert consent.detail is not None
    assert consent.detail["source"] == "edit"
    (event,) = audit_rows(session, patient, "edit")
    assert event.detail == {"before": {"phone": "***0100"}, "after": {"phone": "***0177"}}


def test_the_phone_and_name_of_another_patient_is_a_duplicate(
    session: Session, clinic: Clinic, patient: Patient
) -> None:
    request = EnrollmentRequest(first_name="Luis", phone="(312) 555-0100")
    luis = enroll(session=session, clinic=clinic, request=request, actor=ACTOR, now=NOW)

    with pytest.raises(DuplicateError, match=re.escape(f"as patient {patient.id}")):
        change(session, luis, first_name="ANA")

    assert luis.first_name == "Luis"


def test_nothing_to_change_writes_nothing(session: Session, patient: Patient) -> None:
    edited = change(session, patient, wake="08:00-20:00")

    assert edited.changes == {}
    assert audit_rows(session, patient, "edit") == []


def test_a_new_end_date_ends_the_plan_there(session: Session, patient: Patient) -> None:
    change(session, patient, end="2026-11-26")

    assert patient.end_date == dt.date(2026, 11, 26)
    end = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.UTC)  # local midnight after the last day
    assert patient.plan_changes_at == end
    assert all(item.next_due_at is None or item.next_due_at < end for item in patient.plan_items)


def test_a_removed_patient_cannot_be_edited(session: Session, patient: Patient) -> None:
    remove(session=session, patient=patient, actor=ACTOR, now=NOW)

    with pytest.raises(PatientStateError, match="is removed; enroll them again"):
        change(session, patient, wake="10:00-18:00")


def test_a_new_tuning_replaces_the_same_field_and_keeps_the_others() -> None:
    merged = merge_tunings(("stretch.at=10:00", "heat.off"), ("stretch.at=11:00", "ice.off"))

    assert merged == ("heat.off", "stretch.at=11:00", "ice.off")
