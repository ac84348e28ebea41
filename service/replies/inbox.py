"""The staff inbox: the replies that need a person at the clinic, and closing them.

A reply needs a person when the parser could not act on it alone: free text, a warning sign,
a symptom, a high pain score, an answer out of range (``InboundMessage.needs_attention``,
set where the reply is handled). It stays open until staff acknowledge it; who closed it,
when and with what note is kept on the row and in the audit trail.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from service import audit
from service.enrollment.clinics import NotFoundError
from service.models import Clinic, InboundMessage, Patient

ACK_ACTION = "reply_ack"
PREVIEW = 300  # characters of a reply quoted in an email or a report; the inbox has the rest


def preview(body: str) -> str:
    """A reply as quoted to staff: trimmed, and cut at ``PREVIEW`` characters with an ellipsis."""
    text = body.strip()
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1].rstrip() + "…"


@dataclass(frozen=True)
class InboxEntry:
    id: int
    patient_id: int | None
    first_name: str | None
    clinic: str | None
    received_at: dt.datetime  # in the clinic's zone (UTC for a sender nobody knows)
    text: str
    reading: str
    open: bool
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    note: str | None


def list_replies(
    *,
    session: Session,
    clinic: Clinic | None = None,
    open_only: bool = False,
    since: dt.datetime | None = None,
) -> list[InboxEntry]:
    """Replies that needed the clinic, newest first (outer joins: an unknown sender has no
    patient and no clinic)."""
    stmt = _inbox_query(clinic=clinic, open_only=open_only, since=since)
    return [_entry(inbound, patient, owner) for inbound, patient, owner in session.execute(stmt)]


def _inbox_query(
    *, clinic: Clinic | None, open_only: bool, since: dt.datetime | None
) -> Select[tuple[InboundMessage, Patient, Clinic]]:
    stmt = (
        select(InboundMessage, Patient, Clinic)
        .outerjoin(Patient, Patient.id == InboundMessage.patient_id)
        .outerjoin(Clinic, Clinic.id == InboundMessage.clinic_id)
        .where(InboundMessage.needs_attention.is_(True))
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
    )
    if clinic is not None:
        stmt = stmt.where(InboundMessage.clinic_id == clinic.id)
    if open_only:
        stmt = stmt.where(InboundMessage.acknowledged_at.is_(None))
    if since is not None:
        stmt = stmt.where(InboundMessage.received_at >= since)
    return stmt


def _entry(inbound: InboundMessage, patient: Patient | None, clinic: Clinic | None) -> InboxEntry:
    zone = ZoneInfo(clinic.timezone) if clinic is not None else dt.UTC
    return InboxEntry(
        id=inbound.id,
        patient_id=inbound.patient_id,
        first_name=patient.first_name if patient is not None else None,
        clinic=clinic.slug if clinic is not None else None,
        received_at=inbound.received_at.astimezone(zone),
        text=inbound.body,
        reading=inbound.command,
        open=inbound.open,
        acknowledged_at=inbound.acknowledged_at,
        acknowledged_by=inbound.acknowledged_by,
        note=inbound.ack_note,
    )


def acknowledge(
    *, session: Session, reply_id: int, actor: str, now: dt.datetime, note: str | None = None
) -> InboundMessage:
    """Close one reply. Closing a closed reply changes nothing (the first closing stands);
    a reply that never needed anyone cannot be closed."""
    inbound = session.get(InboundMessage, reply_id)
    if inbound is None:
        raise NotFoundError(f"no reply with id {reply_id}")
    if not inbound.needs_attention:
        raise ValueError(f"reply {reply_id} did not need the clinic: there is nothing to close")
    if inbound.acknowledged_at is not None:
        return inbound
    inbound.acknowledged_at, inbound.acknowledged_by, inbound.ack_note = now, actor, note
    audit.record(
        session=session,
        actor=actor,
        action=ACK_ACTION,
        clinic_id=inbound.clinic_id,
        patient_id=inbound.patient_id,
        detail={"inbound_id": inbound.id, "note": note},
    )
    return inbound
