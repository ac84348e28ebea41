"""A warning-sign reply reaches the clinic by email: a real SMTP server (aiosmtpd) on
loopback, the real SMTP transport."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator

from config.settings import Settings
from service.db import transaction
from service.models import (
    AlertStatus,
    AuditEvent,
    ClinicAlert,
    InboundMessage,
    Patient,
    PatientStatus,
)
from service.replies.alerts import count_unsent, send_alerts, send_unsent
from service.transports.base import TransportError
from service.transports.email import SmtpEmailTransport
from service.web.factory import create_app
from tests.conftest import Database, make_settings
from tests.factories import make_clinic, make_patient
from tests.fakes.smtp import FakeSmtpServer, smtp_server
from tests.service.replies.test_inbound import NOW, sms
from tests.web.conftest import serve

CLINIC_EMAIL = "frontdesk@lakeside.example"
SENDER = "ptnudge@lakeside.example"


@pytest.fixture
def smtp() -> Iterator[FakeSmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def mail_settings(database: Database, tmp_path: Path, smtp: FakeSmtpServer) -> Settings:
    return make_settings(
        database_url=database.url,
        tmp_path=tmp_path,
        smtp_url=smtp.url,
        email_from=SENDER,
        public_url="https://ptnudge.example.org",
        twilio_auth_token="test-auth-token-0123456789",
    )


def warn(session: Session, settings: Settings, patient: Patient, text: str) -> int:
    result = sms(session, settings, patient, text)
    assert result.alert_inbound_id is not None
    return result.alert_inbound_id


def sessions_of(session: Session) -> sessionmaker[Session]:
    """Sessions on the test's connection: each transaction of the code is a savepoint."""
    return sessionmaker(
        bind=session.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False
    )


def alert(session: Session, settings: Settings, inbound_id: int) -> int:
    return send_alerts(
        sessions=sessions_of(session),
        transport=SmtpEmailTransport(settings),
        inbound_id=inbound_id,
        now=NOW,
    )


def sweep(session: Session, settings: Settings, now: dt.datetime) -> int:
    return send_unsent(
        sessions=sessions_of(session), transport=SmtpEmailTransport(settings), now=now
    )


def alert_rows(session: Session) -> list[ClinicAlert]:
    session.expire_all()
    return list(session.scalars(select(ClinicAlert).order_by(ClinicAlert.id)))


def test_a_warning_sign_reply_emails_the_clinic(
    session: Session, mail_settings: Settings, smtp: FakeSmtpServer
) -> None:
    patient = make_patient(session, make_clinic(session, email=CLINIC_EMAIL), first_name="Rosa")
    inbound_id = warn(session, mail_settings, patient, "Since this morning my legs feel numb")

    alert(session, mail_settings, inbound_id)

    assert [mail.rcpt_tos for mail in smtp.mails] == [(CLINIC_EMAIL,)]
    message = smtp.messages[0]
    assert message["To"] == CLINIC_EMAIL
    assert message["Subject"] == f"Warning-sign reply from Rosa (patient {patient.id})"
    text = message.get_body(("plain",))
    assert text is not None
    assert "my legs feel numb" in text.get_content()
    assert f"ptnudge replies ack {inbound_id}" in text.get_content()
    assert patient.status is PatientStatus.PAUSED
    sent = session.scalars(select(AuditEvent).where(AuditEvent.action == "clinic_alert_sent")).one()
    assert sent.detail is not None
    assert sent.detail["inbound_id"] == inbound_id


def test_the_alert_goes_to_the_alert_fallback_when_the_clinic_has_none(
    session: Session, database: Database, tmp_path: Path, smtp: FakeSmtpServer
) -> None:
    settings = make_settings(
        database_url=database.url,
        tmp_path=tmp_path,
        smtp_url=smtp.url,
        email_from=SENDER,
        alert_email="oncall@ptnudge.example",
    )
    clinic = make_clinic(session)
    clinic.email = None
    inbound_id = warn(session, settings, make_patient(session, clinic), "I fell")

    alert(session, settings, inbound_id)

    assert [mail.rcpt_tos for mail in smtp.mails] == [("oncall@ptnudge.example",)]


def test_the_alert_goes_to_the_sender_address_when_the_clinic_has_none(
    session: Session, mail_settings: Settings, smtp: FakeSmtpServer
) -> None:
    clinic = make_clinic(session)
    clinic.email = None
    patient = make_patient(session, clinic)
    inbound_id = warn(session, mail_settings, patient, "I fell")

    alert(session, mail_settings, inbound_id)

    assert [mail.rcpt_tos for mail in smtp.mails] == [(SENDER,)]


def test_the_alert_is_sent_once_per_reply(
    session: Session, mail_settings: Settings, smtp: FakeSmtpServer
) -> None:
    patient = make_patient(session, make_clinic(session, email=CLINIC_EMAIL))
    inbound_id = warn(session, mail_settings, patient, "severe pain")

    alert(session, mail_settings, inbound_id)
    alert(session, mail_settings, inbound_id)  # a retried task

    assert len(smtp.messages) == 1


def test_every_patient_on_a_shared_number_is_reported(
    session: Session, mail_settings: Settings, smtp: FakeSmtpServer
) -> None:
    phone = "+13125556060"
    clinic = make_clinic(session, email=CLINIC_EMAIL)
    ana = make_patient(session, clinic, phone=phone)
    other_clinic = make_clinic(session, email="desk@other.example")
    luis = make_patient(session, other_clinic, first_name="Luis", phone=phone)
    inbound_id = warn(session, mail_settings, ana, "no puedo orinar")

    alert(session, mail_settings, inbound_id)

    assert sorted(mail.rcpt_tos[0] for mail in smtp.mails) == [
        "desk@other.example",
        CLINIC_EMAIL,
    ]
    assert (ana.status, luis.status) == (PatientStatus.PAUSED, PatientStatus.PAUSED)


def test_a_family_phone_alerts_its_clinic_once_naming_every_patient_on_it(
    session: Session, mail_settings: Settings, smtp: FakeSmtpServer
) -> None:
    phone = "+13125556061"
    clinic = make_clinic(session, email=CLINIC_EMAIL)
    ana = make_patient(session, clinic, first_name="Ana", phone=phone)
    luis = make_patient(session, clinic, first_name="Luis", phone=phone)
    other_clinic = make_clinic(session, email="desk@other.example")
    rosa = make_patient(session, other_clinic, first_name="Rosa", phone=phone)
    inbound_id = warn(session, mail_settings, ana, "I cannot feel my legs")

    alert(session, mail_settings, inbound_id)
    alert(session, mail_settings, inbound_id)  # a retried task sends nothing twice

    by_clinic = {
        mail.rcpt_tos: message for mail, message in zip(smtp.mails, smtp.messages, strict=True)
    }
    assert sorted(by_clinic) == [("desk@other.example",), (CLINIC_EMAIL,)]
    ours = by_clinic[(CLINIC_EMAIL,)]
    text = ours.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert f"Ana (patient {ana.id})" in body
    assert f"Luis (patient {luis.id})" in body
    assert f"ptnudge patients resume {luis.id}" in body
    assert "Rosa" not in body
    assert "Rosa" not in ours["Subject"]
    theirs = by_clinic[("desk@other.example",)]
    assert theirs["Subject"] == f"Warning-sign reply from Rosa (patient {rosa.id})"
    assert "Ana" not in str(theirs.get_body(("plain",)))
    assert "Luis" not in theirs["Subject"]


def test_a_reply_that_is_no_warning_sign_sends_nothing(
    session: Session, mail_settings: Settings, smtp: FakeSmtpServer
) -> None:
    patient = make_patient(session, make_clinic(session, email=CLINIC_EMAIL))
    sms(session, mail_settings, patient, "done")
    inbound_id = session.scalars(select(InboundMessage.id)).one()

    alert(session, mail_settings, inbound_id)
    alert(session, mail_settings, inbound_id + 1000)  # no such message

    assert smtp.messages == []


def test_a_refused_alert_raises_for_the_task_to_decide(
    session: Session, mail_settings: Settings, smtp: FakeSmtpServer
) -> None:
    patient = make_patient(session, make_clinic(session, email=CLINIC_EMAIL))
    inbound_id = warn(session, mail_settings, patient, "I fell")
    smtp.fail_next_data("451 4.3.0 Try again later")

    with pytest.raises(TransportError) as raised:
        alert(session, mail_settings, inbound_id)

    assert raised.value.permanent is False
    audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "clinic_alert_sent"))
    assert audit.all() == []
    [row] = alert_rows(session)
    assert (row.status, row.attempts) == (AlertStatus.PENDING, 1)
    assert row.last_error is not None


def test_the_alert_is_a_row_of_the_replys_own_transaction(
    session: Session, mail_settings: Settings, smtp: FakeSmtpServer
) -> None:
    patient = make_patient(session, make_clinic(session, email=CLINIC_EMAIL))
    inbound_id = warn(session, mail_settings, patient, "I fell")

    [row] = alert_rows(session)
    assert (row.inbound_id, row.patient_id, row.to_address) == (
        inbound_id,
        patient.id,
        CLINIC_EMAIL,
    )
    assert row.status is AlertStatus.PENDING
    assert count_unsent(session=session) == 1
    assert smtp.messages == []


def test_the_sweeper_sends_an_alert_the_fast_path_never_did_after_thirty_seconds(
    session: Session, mail_settings: Settings, smtp: FakeSmtpServer
) -> None:
    patient = make_patient(session, make_clinic(session, email=CLINIC_EMAIL))
    warn(session, mail_settings, patient, "I fell")

    assert sweep(session, mail_settings, NOW + dt.timedelta(seconds=10)) == 0
    assert sweep(session, mail_settings, NOW + dt.timedelta(seconds=31)) == 1
    assert sweep(session, mail_settings, NOW + dt.timedelta(minutes=30)) == 0

    assert len(smtp.messages) == 1
    [row] = alert_rows(session)
    assert (row.status, row.attempts) == (AlertStatus.SENT, 1)
    assert count_unsent(session=session) == 0


def test_an_alert_another_worker_claimed_is_left_to_it_until_the_claim_is_stale(
    session: Session, mail_settings: Settings, smtp: FakeSmtpServer
) -> None:
    patient = make_patient(session, make_clinic(session, email=CLINIC_EMAIL))
    inbound_id = warn(session, mail_settings, patient, "I fell")
    [row] = alert_rows(session)
    row.status, row.claimed_at, row.attempts = AlertStatus.SENDING, NOW, 1
    session.flush()

    assert alert(session, mail_settings, inbound_id) == 0
    assert sweep(session, mail_settings, NOW + dt.timedelta(minutes=1)) == 0
    assert smtp.messages == []
    # The worker died mid-send: after the claim expires the sweeper sends it.
    assert sweep(session, mail_settings, NOW + dt.timedelta(minutes=6)) == 1
    assert len(smtp.messages) == 1
    assert alert_rows(session)[0].attempts == 2


def test_a_signed_warning_sign_reply_pauses_the_patient_and_the_clinic_gets_an_email(
    committed_db: Database, tmp_path: Path, smtp: FakeSmtpServer
) -> None:
    """The acceptance path: webhook over HTTP, commit, alert enqueued, email delivered."""
    settings = make_settings(
        database_url=committed_db.url,
        tmp_path=tmp_path,
        smtp_url=smtp.url,
        email_from=SENDER,
        public_url="https://ptnudge.example.org",
        twilio_auth_token="test-auth-token-0123456789",
    )
    with transaction(committed_db.sessions) as session:
        patient_id = make_patient(
            session, make_clinic(session, email=CLINIC_EMAIL), phone="+13125556161"
        ).id

    def run_alert_task(inbound_id: int) -> None:
        # What the worker's task does.
        send_alerts(
            sessions=committed_db.sessions,
            transport=SmtpEmailTransport(settings),
            inbound_id=inbound_id,
        )

    params = {
        "MessageSid": "SM" + "9" * 32,
        "From": "+13125556161",
        "To": "+13125550000",
        "Body": "Loss of bladder control since last night",
    }
    signature = RequestValidator("test-auth-token-0123456789").compute_signature(
        "https://ptnudge.example.org/twilio/inbound", params
    )
    app = create_app(
        settings, clock=lambda: NOW + dt.timedelta(days=1), enqueue_alert=run_alert_task
    )
    with serve(app) as url:
        response = httpx.post(
            url + "/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature}
        )

    assert response.status_code == 200
    assert "911" in response.text
    with transaction(committed_db.sessions) as session:
        assert session.get_one(Patient, patient_id).status is PatientStatus.PAUSED
    assert [mail.rcpt_tos for mail in smtp.mails] == [(CLINIC_EMAIL,)]
    body = smtp.messages[0].get_body(("plain",))
    assert body is not None
    assert "Loss of bladder control" in body.get_content()
