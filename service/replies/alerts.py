"""The clinic alert: an email to the clinic when a patient's reply carries a warning sign.

``service.replies.inbound`` records the warning and pauses everyone on the number; the web app
then has the worker run ``send_clinic_alert`` for that message, after its transaction commits.
"""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from service import audit
from service.delivery.rendering import render_email
from service.models import AuditEvent, Channel, InboundMessage, Patient
from service.replies.inbound import enrolled_at
from service.replies.parser import Command
from service.transports.base import OutboundMessage, Transport

log = logging.getLogger(__name__)

ALERT_SENT = "clinic_alert_sent"


def send_clinic_alert(
    *, session: Session, settings: Settings, inbound_id: int, transport: Transport
) -> None:
    """Email the clinic about a warning-sign reply: one email per patient on the number (they
    were all paused), to the clinic's address or, without one, to PTNUDGE_EMAIL_FROM.

    Runs in the worker, possibly more than once for one reply (a retried task, a retried
    webhook): a patient already alerted for this reply is skipped. A TransportError leaves
    the caller's transaction to roll back and the task to retry.
    """
    inbound = session.get(InboundMessage, inbound_id)
    if inbound is None or inbound.command != Command.WARNING.value:
        return
    for patient in _alert_patients(session, inbound):
        if _alerted(session, patient, inbound):
            continue
        to = patient.clinic.email or settings.email_from
        if not to:
            log.error("no address for the clinic alert of patient %s", patient.id)
            continue
        receipt = transport.send(_alert_message(inbound, patient, to))
        audit.record(
            session=session,
            actor="system",
            action=ALERT_SENT,
            clinic_id=patient.clinic_id,
            patient_id=patient.id,
            detail={"inbound_id": inbound.id, "message_id": receipt.provider_id},
        )


def _alert_patients(session: Session, inbound: InboundMessage) -> list[Patient]:
    if inbound.patient_id is None:
        return []
    patients = enrolled_at(session=session, address=inbound.from_address)
    first = session.get(Patient, inbound.patient_id)
    others = [p for p in patients if p.id != inbound.patient_id]
    return ([first] if first is not None else []) + others


def _alerted(session: Session, patient: Patient, inbound: InboundMessage) -> bool:
    details = session.scalars(
        select(AuditEvent.detail).where(
            AuditEvent.patient_id == patient.id, AuditEvent.action == ALERT_SENT
        )
    )
    return any((detail or {}).get("inbound_id") == inbound.id for detail in details)


def _alert_message(inbound: InboundMessage, patient: Patient, to: str) -> OutboundMessage:
    clinic = patient.clinic
    email = render_email(
        message="clinic_alert",
        locale="en",
        context={
            "clinic_name": clinic.name,
            "first_name": patient.first_name,
            "patient_id": patient.id,
            "reply_text": inbound.body,
            "received_at": inbound.received_at.astimezone(ZoneInfo(clinic.timezone)),
        },
    )
    return OutboundMessage(
        channel=Channel.EMAIL,
        to=to,
        body=email.text,
        reference=f"alert{inbound.id}-p{patient.id}",
        subject=email.subject,
        html=email.html,
    )
