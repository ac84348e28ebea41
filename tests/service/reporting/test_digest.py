"""The weekly clinic digest: what it holds, and that each clinic gets it once a week, through
a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from service.models import (
    AuditEvent,
    Channel,
    ChannelChoice,
    Clinic,
    InboundMessage,
    OptOut,
    Outcome,
    Patient,
)
from service.replies.inbox import acknowledge
from service.reporting.digest import DIGEST_ACTION, build_digest, digest_period, send_weekly_digests
from service.transports.registry import email_transport
from tests.conftest import Database, make_settings
from tests.factories import make_clinic, make_patient
from tests.fakes.smtp import FakeSmtpServer, smtp_server
from tests.service.reporting.report_data import add_reminder, add_reply, local

# Thursday 26 Nov 2026, 14:00 in Chicago: the digest covers Thu 19 to Wed 25 November.
NOW = dt.datetime(2026, 11, 26, 20, 0, tzinfo=dt.UTC)
D = dt.date
WEEK = [D(2026, 11, day) for day in range(19, 26)]


def answered(session: Session, patient: Patient, done_days: int) -> None:
    """One stretch reminder a day of the digest week, the first ``done_days`` answered."""
    for index, day in enumerate(WEEK):
        outcome = Outcome.DONE if index < done_days else None
        add_reminder(session, patient, due_at=local(day, 9), outcome=outcome)


def opted_out(session: Session, address: str, channel: Channel, at: dt.datetime) -> None:
    session.add(OptOut(address=address, channel=channel, source="sms_keyword", created_at=at))


@pytest.fixture
def clinic(session: Session) -> Clinic:
    """A week at a clinic: one patient of each kind the digest reports, and some it must not."""
    clinic = make_clinic(session, email="staff@lakeside.example")
    answered(session, make_patient(session, clinic, first_name="Ana"), done_days=2)
    answered(session, make_patient(session, clinic, first_name="Ben"), done_days=7)
    cara = make_patient(session, clinic, first_name="Cara")
    add_reply(session, cara, at=local(D(2026, 11, 10), 8), command="warning", body="old")
    add_reply(
        session, cara, at=local(D(2026, 11, 24), 7, 15), command="warning",
        body="My legs feel numb <since> this morning", needs_attention=True,
    )  # fmt: skip
    dan = make_patient(session, clinic, first_name="Dan")
    add_reply(session, dan, at=local(D(2026, 11, 12), 8), command="other", body="Can I swim?",
              needs_attention=True)  # fmt: skip
    add_reply(session, dan, at=local(D(2026, 11, 21), 8), command="other", body="answered")
    add_reply(session, dan, at=local(D(2026, 11, 26), 10), command="other", body="Pool today?",
              needs_attention=True)  # fmt: skip
    eve = make_patient(session, clinic, first_name="Eve")
    opted_out(session, eve.phone or "", Channel.SMS, local(D(2026, 11, 21), 12))
    fay = make_patient(session, clinic, first_name="Fay")
    opted_out(session, fay.phone or "", Channel.SMS, local(D(2026, 11, 1), 12))
    make_patient(
        session, clinic, first_name="Gus", email="Gus@Example.com", channel=ChannelChoice.EMAIL
    )
    opted_out(session, "gus@example.com", Channel.EMAIL, local(D(2026, 11, 22), 18))
    other = make_clinic(session, email="front@riverside.example")
    stranger = make_patient(session, other, first_name="Stranger")
    answered(session, stranger, done_days=0)
    add_reply(session, stranger, at=local(D(2026, 11, 24), 9), command="warning")
    session.flush()
    return clinic


def ids(session: Session, *names: str) -> list[int]:
    by_name = {p.first_name: p.id for p in session.scalars(select(Patient))}
    return [by_name[name] for name in names]


def test_the_period_is_the_seven_local_days_before_today(clinic: Clinic) -> None:
    start, end = digest_period(clinic=clinic, now=NOW)

    assert start == local(D(2026, 11, 19), 0)
    assert end == local(D(2026, 11, 26), 0)


def test_digest_lists_what_the_clinic_should_look_at(session: Session, clinic: Clinic) -> None:
    digest = build_digest(session=session, clinic=clinic, now=NOW)

    assert (digest.period_start, digest.period_end) == (D(2026, 11, 19), D(2026, 11, 25))
    ana, cara, dan, eve, gus = ids(session, "Ana", "Cara", "Dan", "Eve", "Gus")
    assert [(r.patient_id, r.adherence, r.done, r.sent) for r in digest.below_threshold] == [
        (ana, 2 / 7, 2, 7)
    ]
    assert [(r.patient_id, r.text) for r in digest.warnings] == [
        (cara, "My legs feel numb <since> this morning")
    ]
    assert digest.warnings[0].received_at.isoformat() == "2026-11-24T07:15:00-06:00"
    assert [(r.patient_id, r.text) for r in digest.waiting] == [
        (dan, "Can I swim?"),
        (dan, "Pool today?"),
    ]
    assert [(o.patient_id, o.channel) for o in digest.opt_outs] == [(eve, "sms"), (gus, "email")]
    # Ana last answered on the 20th at 09:20; the week ended on the 26th at 00:00.
    assert [(s.first_name, s.days) for s in digest.silent] == [("Ana", 5)]


def test_digest_context_has_the_keys_the_template_takes(session: Session, clinic: Clinic) -> None:
    context = build_digest(session=session, clinic=clinic, now=NOW).to_context()

    assert set(context) >= {
        "clinic_name",
        "period_start",
        "period_end",
        "threshold",
        "low_adherence",
        "warning_signs",
        "free_text",
        "opt_outs",
    }
    assert set(context["low_adherence"][0]) == {
        "patient_id",
        "first_name",
        "adherence",
        "done",
        "sent",
    }
    assert set(context["warning_signs"][0]) == {"patient_id", "first_name", "received_at", "text"}
    assert set(context["opt_outs"][0]) == {"patient_id", "first_name", "at", "channel"}


@pytest.fixture
def smtp() -> Iterator[FakeSmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def smtp_settings(database: Database, tmp_path: Path, smtp: FakeSmtpServer) -> Settings:
    return make_settings(
        database_url=database.url,
        tmp_path=tmp_path,
        smtp_url=smtp.url,
        email_from="ptnudge <digest@ptnudge.example>",
    )


def send(session: Session, settings: Settings, now: dt.datetime) -> int:
    return send_weekly_digests(
        session=session, settings=settings, transport=email_transport(settings), now=now
    )


def test_each_clinic_gets_its_own_digest_by_email(
    session: Session, clinic: Clinic, smtp: FakeSmtpServer, smtp_settings: Settings
) -> None:
    assert send(session, smtp_settings, NOW) == 2

    mails = {mail.rcpt_tos: mail.message for mail in smtp.mails}
    assert set(mails) == {("staff@lakeside.example",), ("front@riverside.example",)}
    lakeside = mails[("staff@lakeside.example",)]
    text = lakeside.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = lakeside.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Lakeside Back Clinic" in str(lakeside["Subject"])
    assert "2026-11-19" in str(lakeside["Subject"])
    for name in ("Ana", "Cara", "Dan", "Eve", "Gus"):
        assert name in text
    assert "My legs feel numb <since> this morning" in text
    assert "My legs feel numb &lt;since&gt; this morning" in html
    assert "Stranger" not in text
    for phone in session.scalars(select(Patient.phone)):
        assert phone not in text
        assert phone not in html


def test_digests_go_out_once_per_seven_days(
    session: Session, clinic: Clinic, smtp: FakeSmtpServer, smtp_settings: Settings
) -> None:
    assert send(session, smtp_settings, NOW) == 2
    assert send(session, smtp_settings, NOW) == 0
    assert send(session, smtp_settings, NOW + dt.timedelta(days=6, hours=23)) == 0
    assert send(session, smtp_settings, NOW + dt.timedelta(days=7)) == 2

    assert len(smtp.mails) == 4
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.action == DIGEST_ACTION).order_by(AuditEvent.at)
    ).all()
    assert [(e.clinic_id, e.at) for e in events if e.clinic_id == clinic.id] == [
        (clinic.id, NOW),
        (clinic.id, NOW + dt.timedelta(days=7)),
    ]
    first = next(e for e in events if e.clinic_id == clinic.id)
    assert first.detail == {
        "period_start": "2026-11-19",
        "period_end": "2026-11-25",
        "below_threshold": 1,
        "warnings": 1,
        "waiting": 2,
        "opt_outs": 2,
        "silent": 1,
    }


def test_clinics_without_an_email_address_get_no_digest(
    session: Session, clinic: Clinic, smtp: FakeSmtpServer, smtp_settings: Settings
) -> None:
    for other in session.scalars(select(Clinic).where(Clinic.id != clinic.id)):
        other.email = None
    session.flush()

    assert send(session, smtp_settings, NOW) == 1
    assert [mail.rcpt_tos for mail in smtp.mails] == [("staff@lakeside.example",)]


def test_a_refused_digest_is_not_recorded_and_goes_out_on_the_next_run(
    session: Session, clinic: Clinic, smtp: FakeSmtpServer, smtp_settings: Settings
) -> None:
    smtp.fail_next_data("451 4.3.0 Try again later", n=2)

    assert send(session, smtp_settings, NOW) == 0
    assert smtp.mails == []
    recorded = select(AuditEvent).where(AuditEvent.action == DIGEST_ACTION)
    assert session.scalars(recorded).all() == []

    assert send(session, smtp_settings, NOW + dt.timedelta(hours=1)) == 2
    assert len(smtp.mails) == 2


def test_a_reply_staff_closed_no_longer_waits_in_the_digest(
    session: Session, clinic: Clinic
) -> None:
    swim = session.scalars(select(InboundMessage).where(InboundMessage.body == "Can I swim?")).one()
    acknowledge(session=session, reply_id=swim.id, actor="cli:maria", now=NOW)

    digest = build_digest(session=session, clinic=clinic, now=NOW)

    assert [r.text for r in digest.waiting] == ["Pool today?"]
