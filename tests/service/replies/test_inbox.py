"""The staff inbox: which replies need a person, newest first, and closing them."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from service.enrollment.clinics import NotFoundError
from service.models import AuditEvent, InboundMessage
from service.replies.inbox import ACK_ACTION, acknowledge, list_replies
from tests.factories import make_clinic, make_patient
from tests.service.replies.test_inbound import NOW, sms


def test_free_text_is_open_in_the_inbox_and_done_is_not_listed(
    session: Session, settings: Settings
) -> None:
    patient = make_patient(session, make_clinic(session))
    sms(session, settings, patient, "Can I do the stretches after my injection?")
    sms(session, settings, patient, "DONE", now=NOW + dt.timedelta(minutes=5))

    entries = list_replies(session=session)

    assert [(e.text, e.patient_id, e.open) for e in entries] == [
        ("Can I do the stretches after my injection?", patient.id, True)
    ]
    assert entries[0].first_name == "Ana"
    assert entries[0].received_at.utcoffset() == dt.timedelta(hours=-6)  # Chicago, in February


def test_replies_are_newest_first_and_filtered_by_clinic_and_day(
    session: Session, settings: Settings
) -> None:
    here, there = make_clinic(session), make_clinic(session)
    ana = make_patient(session, here)
    bo = make_patient(session, there, first_name="Bo")
    sms(session, settings, ana, "question one", now=NOW - dt.timedelta(days=2))
    sms(session, settings, ana, "question two")
    sms(session, settings, bo, "question three")

    mine = list_replies(session=session, clinic=here)
    recent = list_replies(session=session, since=NOW - dt.timedelta(days=1))

    assert [e.text for e in mine] == ["question two", "question one"]
    assert {e.text for e in recent} == {"question two", "question three"}


def test_acknowledging_closes_the_reply_once_and_audits_who(
    session: Session, settings: Settings
) -> None:
    patient = make_patient(session, make_clinic(session))
    sms(session, settings, patient, "my ride fell through, moving my visit")
    reply = session.scalars(select(InboundMessage)).one()

    acknowledge(session=session, reply_id=reply.id, actor="cli:maria", now=NOW, note="called")
    again = acknowledge(
        session=session, reply_id=reply.id, actor="cli:other", now=NOW + dt.timedelta(hours=1)
    )

    assert list_replies(session=session, open_only=True) == []
    closed = list_replies(session=session)[0]
    assert (closed.open, closed.acknowledged_by, closed.note) == (False, "cli:maria", "called")
    assert again.acknowledged_at == NOW
    audits = session.scalars(select(AuditEvent).where(AuditEvent.action == ACK_ACTION)).all()
    assert [(a.actor, a.patient_id, (a.detail or {})["inbound_id"]) for a in audits] == [
        ("cli:maria", patient.id, reply.id)
    ]


def test_a_reply_that_needed_nobody_or_does_not_exist_cannot_be_closed(
    session: Session, settings: Settings
) -> None:
    patient = make_patient(session, make_clinic(session))
    sms(session, settings, patient, "HELP")
    help_reply = session.scalars(select(InboundMessage)).one()

    with pytest.raises(ValueError, match="did not need the clinic"):
        acknowledge(session=session, reply_id=help_reply.id, actor="cli:maria", now=NOW)
    with pytest.raises(NotFoundError, match="no reply with id 999999"):
        acknowledge(session=session, reply_id=999_999, actor="cli:maria", now=NOW)
    assert help_reply.acknowledged_at is None
