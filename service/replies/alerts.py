"""The clinic alert: an email to the clinic when a patient's reply carries a warning sign.

An alert is a ``ClinicAlert`` row, written by ``service.replies.inbound`` in the same
transaction as the warning-sign reply (``record_alerts``): one per clinic with a patient on
the number, naming that clinic's patients on it, so that a phone shared by a family alerts
each clinic once, about its own patients only. The rows are then sent from the database,
so no broker outage or worker crash loses one:

1. The web app has the worker send the alerts of the reply right after its commit (the fast
   path, ``send_alerts`` with the inbound id).
2. The sweeper sends whatever is still unsent after a short while (``send_unsent``): pending
   for longer than ``RETRY_AFTER``, or claimed by a worker that never finished.
3. Each send first claims its row with a conditional UPDATE (pending, or a stale claim, to
   sending) in its own transaction: two workers never both send one alert. The provider is
   called with no transaction open, and the row is marked sent after.
"""

from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from config.settings import Settings
from service import audit
from service.db import rows_changed, transaction
from service.delivery.rendering import render_email
from service.models import AlertStatus, Channel, ClinicAlert, InboundMessage, Patient, utcnow
from service.transports.base import OutboundMessage, Transport, TransportError

log = logging.getLogger(__name__)

ALERT_SENT = "clinic_alert_sent"
# Pending this long: the fast path did not happen (broker down, web app gone), sweep it.
RETRY_AFTER = dt.timedelta(seconds=30)
# Claimed this long ago and not sent: the worker died mid-send; send it again.
CLAIM_EXPIRES = dt.timedelta(minutes=5)
UNSENT = (AlertStatus.PENDING, AlertStatus.SENDING)


def alert_address(*, settings: Settings, patient: Patient) -> str | None:
    """The clinic's own address, else the deployment's fallback for every clinic."""
    return patient.clinic.email or settings.alert_email or settings.email_from


def record_alerts(
    *, session: Session, settings: Settings, inbound: InboundMessage, patients: list[Patient]
) -> int:
    """One pending alert per clinic with a patient on the number, in the caller's
    transaction; ``patients`` come first-addressed first, and the first of each clinic is
    the alert's patient. Returns how many were written."""
    written = 0
    for lead in _first_of_each_clinic(patients):
        to = alert_address(settings=settings, patient=lead)
        if to is None:
            log.error("no address for the clinic alert of patient %s", lead.id)
            continue
        session.add(
            ClinicAlert(
                inbound_id=inbound.id,
                clinic_id=lead.clinic_id,
                patient_id=lead.id,
                to_address=to,
                status=AlertStatus.PENDING,
                attempts=0,
                created_at=inbound.received_at,
            )
        )
        written += 1
    return written


def _first_of_each_clinic(patients: list[Patient]) -> list[Patient]:
    leads: dict[int, Patient] = {}
    for patient in patients:
        leads.setdefault(patient.clinic_id, patient)
    return list(leads.values())


def send_alerts(
    *,
    sessions: sessionmaker[Session],
    transport: Transport,
    inbound_id: int,
    now: dt.datetime | None = None,
) -> int:
    """Send the pending alerts of one reply (the fast path). Returns how many were sent;
    a transient TransportError is raised after the rest were tried (the caller may retry:
    the sweeper will as well)."""
    with sessions() as session:
        ids = list(
            session.scalars(
                select(ClinicAlert.id).where(
                    ClinicAlert.inbound_id == inbound_id,
                    ClinicAlert.status == AlertStatus.PENDING,
                )
            )
        )
    return _send_each(sessions, transport, ids, now or utcnow())


def send_unsent(
    *, sessions: sessionmaker[Session], transport: Transport, now: dt.datetime | None = None
) -> int:
    """The sweeper's part: send what the fast path left (see the module docstring)."""
    moment = now or utcnow()
    with sessions() as session:
        ids = list(session.scalars(select(ClinicAlert.id).where(_due(moment))))
    try:
        return _send_each(sessions, transport, ids, moment)
    except TransportError as error:
        log.warning("clinic alerts: mail server unavailable (%s); next sweep", error.code)
        return 0


def count_unsent(*, session: Session) -> int:
    query = select(func.count()).select_from(ClinicAlert).where(ClinicAlert.status.in_(UNSENT))
    return int(session.scalar(query) or 0)


def _due(now: dt.datetime) -> ColumnElement[bool]:
    return or_(
        (ClinicAlert.status == AlertStatus.PENDING) & (ClinicAlert.created_at < now - RETRY_AFTER),
        (ClinicAlert.status == AlertStatus.SENDING)
        & (ClinicAlert.claimed_at < now - CLAIM_EXPIRES),
    )


def _send_each(
    sessions: sessionmaker[Session], transport: Transport, ids: list[int], now: dt.datetime
) -> int:
    sent, transient = 0, None
    for alert_id in ids:
        try:
            sent += _send_one(sessions, transport, alert_id, now)
        except TransportError as error:
            transient = error
    if transient is not None:
        raise transient
    return sent


def _send_one(
    sessions: sessionmaker[Session], transport: Transport, alert_id: int, now: dt.datetime
) -> int:
    """1. Claim (own transaction). 2. Send, no transaction open. 3. Record the outcome."""
    message = _claim(sessions, alert_id, now)
    if message is None:
        return 0  # another worker has it, or it was sent already
    try:
        receipt = transport.send(message)
    except TransportError as error:
        _failed(sessions, alert_id, error)
        raise
    with transaction(sessions) as session:
        _mark_sent(session, alert_id, receipt.provider_id, now)
    return 1


def _claim(
    sessions: sessionmaker[Session], alert_id: int, now: dt.datetime
) -> OutboundMessage | None:
    with transaction(sessions) as session:
        claimable = or_(
            ClinicAlert.status == AlertStatus.PENDING,
            (ClinicAlert.status == AlertStatus.SENDING)
            & (ClinicAlert.claimed_at < now - CLAIM_EXPIRES),
        )
        claimed = rows_changed(
            session,
            update(ClinicAlert)
            .where(ClinicAlert.id == alert_id, claimable)
            .values(status=AlertStatus.SENDING, claimed_at=now, attempts=ClinicAlert.attempts + 1),
        )
        alert = session.get(ClinicAlert, alert_id) if claimed == 1 else None
        return _alert_message(session, alert) if alert is not None else None


def _failed(sessions: sessionmaker[Session], alert_id: int, error: TransportError) -> None:
    # Transient: back to pending for the next try; permanent: failed, for staff to see.
    status = AlertStatus.FAILED if error.permanent else AlertStatus.PENDING
    with transaction(sessions) as session:
        session.execute(
            update(ClinicAlert)
            .where(ClinicAlert.id == alert_id)
            .values(status=status, last_error=str(error)[:300])
        )
    log.error("clinic alert %s not sent (%s)", alert_id, error.code)


def _mark_sent(session: Session, alert_id: int, provider_id: str | None, now: dt.datetime) -> None:
    alert = session.get(ClinicAlert, alert_id)
    if alert is None:  # pragma: no cover - the patient was deleted mid-send
        return
    alert.status, alert.sent_at, alert.provider_id = AlertStatus.SENT, now, provider_id
    audit.record(
        session=session,
        actor="system",
        action=ALERT_SENT,
        clinic_id=alert.clinic_id,
        patient_id=alert.patient_id,
        detail={"inbound_id": alert.inbound_id, "message_id": provider_id},
    )


def _alert_message(session: Session, alert: ClinicAlert) -> OutboundMessage:
    inbound, patient, clinic = alert.inbound, alert.patient, alert.clinic
    email = render_email(
        message="clinic_alert",
        locale="en",
        context={
            "clinic_name": clinic.name,
            "first_name": patient.first_name,
            "patient_id": patient.id,
            "patients": _named(session, alert),
            "reply_text": inbound.body,
            "reply_id": inbound.id,
            "received_at": inbound.received_at.astimezone(ZoneInfo(clinic.timezone)),
        },
    )
    return OutboundMessage(
        channel=Channel.EMAIL,
        to=alert.to_address,
        body=email.text,
        reference=f"alert{inbound.id}-c{clinic.id}",
        subject=email.subject,
        html=email.html,
    )


def _named(session: Session, alert: ClinicAlert) -> list[dict[str, object]]:
    """The clinic's patients on the replying number, the alert's own patient first."""
    others = session.scalars(
        select(Patient)
        .where(
            Patient.clinic_id == alert.clinic_id,
            Patient.phone == alert.inbound.from_address,
            Patient.id != alert.patient_id,
        )
        .order_by(Patient.id)
    )
    return [{"first_name": p.first_name, "patient_id": p.id} for p in [alert.patient, *others]]
