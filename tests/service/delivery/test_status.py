"""``collect_status``: what ``ptnudge status`` reports, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from service.delivery.status import collect_status
from service.models import AlertStatus, ClinicAlert
from tests.factories import make_clinic, make_patient
from tests.service.replies.test_inbound import NOW, sms


def test_status_counts_the_clinic_alerts_not_yet_sent(session: Session, settings: Settings) -> None:
    clinic = make_clinic(session)
    for name, phone in (("Ana", "+13125556201"), ("Luis", "+13125556202")):
        sms(
            session, settings, make_patient(session, clinic, first_name=name, phone=phone), "I fell"
        )
    sent = session.scalars(select(ClinicAlert).order_by(ClinicAlert.id)).first()
    assert sent is not None
    sent.status = AlertStatus.SENT
    session.flush()

    found = collect_status(session=session, settings=settings, now=NOW)

    assert found["clinic_alerts_unsent"] == 1
