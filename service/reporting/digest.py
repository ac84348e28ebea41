"""The weekly email to each clinic: who fell behind, who needs an answer, who left.

The digest covers the seven whole local days (the clinic's zone) that ended at the last
midnight, so consecutive digests sent a week apart cover consecutive weeks. Each clinic with
an email address gets at most one digest per seven days: every send is recorded as an audit
event ``digest_sent``, and that record is what the next run checks, so a beat that fires
hourly (or twice by mistake) sends nothing more.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnExpressionArgument, and_, func, or_, select
from sqlalchemy.orm import Session

from config.settings import Settings
from service import audit
from service.delivery.rendering import RenderedEmail, render_email
from service.masking import mask_email
from service.models import AuditEvent, Channel, Clinic, InboundMessage, OptOut, Patient
from service.replies.inbox import preview
from service.reporting.adherence import (
    DEFAULT_REPLY_WINDOW,
    DEFAULT_THRESHOLD,
    WARNING_COMMANDS,
    Flag,
    PatientAdherence,
    patient_adherence,
)
from service.transports.base import OutboundMessage, Transport, TransportError

log = logging.getLogger(__name__)

DIGEST_ACTION = "digest_sent"
DIGEST_EVERY = dt.timedelta(days=7)
PERIOD_DAYS = 7


@dataclass(frozen=True)
class LowAdherence:
    patient_id: int
    first_name: str
    adherence: float  # 0-1
    done: int
    sent: int  # actionable reminders delivered in the period


@dataclass(frozen=True)
class DigestReply:
    patient_id: int
    first_name: str
    received_at: dt.datetime  # in the clinic's zone
    text: str


@dataclass(frozen=True)
class DigestOptOut:
    patient_id: int
    first_name: str
    at: dt.datetime  # in the clinic's zone
    channel: str


@dataclass(frozen=True)
class SilentPatient:
    patient_id: int
    first_name: str
    days: int


@dataclass(frozen=True)
class DigestData:
    clinic_id: int
    clinic_name: str
    period_start: dt.date  # first local day covered
    period_end: dt.date  # last local day covered
    threshold: float
    below_threshold: tuple[LowAdherence, ...]
    warnings: tuple[DigestReply, ...]
    waiting: tuple[DigestReply, ...]
    opt_outs: tuple[DigestOptOut, ...]
    silent: tuple[SilentPatient, ...]

    def counts(self) -> dict[str, int]:
        return {
            "below_threshold": len(self.below_threshold),
            "warnings": len(self.warnings),
            "waiting": len(self.waiting),
            "opt_outs": len(self.opt_outs),
            "silent": len(self.silent),
        }

    def to_context(self) -> dict[str, Any]:
        """The ``clinic_digest`` template's context (see ``service.delivery.rendering``)."""
        return {
            "clinic_name": self.clinic_name,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "threshold": self.threshold,
            "low_adherence": [vars(row) for row in self.below_threshold],
            "warning_signs": [vars(row) for row in self.warnings],
            "free_text": [vars(row) for row in self.waiting],
            "opt_outs": [vars(row) for row in self.opt_outs],
            "silent": [vars(row) for row in self.silent],
        }


def digest_period(*, clinic: Clinic, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The seven local days that ended at the clinic's last midnight, as UTC instants."""
    zone = ZoneInfo(clinic.timezone)
    end_day = now.astimezone(zone).date()
    start = dt.datetime.combine(end_day - dt.timedelta(days=PERIOD_DAYS), dt.time(0), zone)
    end = dt.datetime.combine(end_day, dt.time(0), zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def build_digest(
    *,
    session: Session,
    clinic: Clinic,
    now: dt.datetime,
    threshold: float = DEFAULT_THRESHOLD,
    reply_window: dt.timedelta = DEFAULT_REPLY_WINDOW,
) -> DigestData:
    """What the clinic should look at from last week, each list oldest or worst first."""
    start, end = digest_period(clinic=clinic, now=now)
    zone = ZoneInfo(clinic.timezone)
    patients = patient_adherence(
        session=session,
        clinic_id=clinic.id,
        since=start,
        now=end,
        threshold=threshold,
        reply_window=reply_window,
    )
    return DigestData(
        clinic_id=clinic.id,
        clinic_name=clinic.name,
        period_start=start.astimezone(zone).date(),
        period_end=(end - dt.timedelta(days=1)).astimezone(zone).date(),
        threshold=threshold,
        below_threshold=_below_threshold(patients, threshold),
        warnings=_replies(session=session, clinic=clinic, start=start, end=end, warnings=True),
        waiting=_replies(session=session, clinic=clinic, start=None, end=now, warnings=False),
        opt_outs=_opt_outs(session=session, clinic=clinic, start=start, end=end),
        silent=tuple(
            SilentPatient(p.patient_id, p.first_name, p.silent_days or 0)
            for p in sorted(patients, key=lambda p: -(p.silent_days or 0))
            if Flag.SILENT in p.flags
        ),
    )


def send_weekly_digests(
    *, session: Session, settings: Settings, transport: Transport, now: dt.datetime
) -> int:
    """Email each clinic its digest unless it got one in the last seven days; returns how
    many went out. The caller commits (the ``digest_sent`` records go with it).

    1. Pick the clinics with an email address and no digest in the last seven days.
    2. Build and render every digest before sending any: a broken template stops the run
       before a single email leaves, so no clinic gets one twice on the retry.
    3. Send each; a refused send is logged and left for the next run (nothing recorded).
    4. Record each send as an audit event.
    """
    due = [
        clinic
        for clinic in _clinics_with_email(session)
        if not _sent_recently(session=session, clinic=clinic, now=now)
    ]
    reply_window = dt.timedelta(hours=settings.reply_window_hours)
    prepared = []
    for clinic in due:
        digest = build_digest(session=session, clinic=clinic, now=now, reply_window=reply_window)
        prepared.append((clinic, digest, _render(digest)))
    sent = 0
    for clinic, digest, email in prepared:
        if _send(transport=transport, clinic=clinic, digest=digest, email=email):
            _record(session=session, clinic=clinic, digest=digest, now=now)
            sent += 1
    session.flush()
    return sent


# --- queries --------------------------------------------------------------------------------


def _below_threshold(
    patients: list[PatientAdherence], threshold: float
) -> tuple[LowAdherence, ...]:
    return tuple(
        LowAdherence(p.patient_id, p.first_name, p.adherence, p.done, p.delivered)
        for p in patients  # already worst first
        if p.adherence is not None and p.adherence < threshold
    )


def _replies(
    *,
    session: Session,
    clinic: Clinic,
    start: dt.datetime | None,
    end: dt.datetime,
    warnings: bool,
) -> tuple[DigestReply, ...]:
    """Warning-sign replies of the period, or free-text replies still waiting (any age, up to
    now: waiting is waiting, until staff close it with ``ptnudge replies ack``). A warning
    sign is listed once, under warnings."""
    is_warning = InboundMessage.command.in_(WARNING_COMMANDS)
    conditions: list[ColumnExpressionArgument[bool]] = [
        Patient.clinic_id == clinic.id,
        InboundMessage.received_at < end,
    ]
    if warnings:
        conditions.append(is_warning)
    else:
        conditions += [InboundMessage.open, ~is_warning]
    if start is not None:
        conditions.append(InboundMessage.received_at >= start)
    stmt = (
        select(Patient.id, Patient.first_name, InboundMessage.received_at, InboundMessage.body)
        .join(Patient, Patient.id == InboundMessage.patient_id)
        .where(*conditions)
        .order_by(InboundMessage.received_at, InboundMessage.id)
    )
    zone = ZoneInfo(clinic.timezone)
    return tuple(
        DigestReply(pid, name, at.astimezone(zone), preview(body))
        for pid, name, at, body in session.execute(stmt)
    )


def _opt_outs(
    *, session: Session, clinic: Clinic, start: dt.datetime, end: dt.datetime
) -> tuple[DigestOptOut, ...]:
    """Opt-outs are per address: each of the clinic's patients at an address that opted out
    in the period (a shared family phone lists everyone on it)."""
    on_address = or_(
        and_(OptOut.channel == Channel.SMS, OptOut.address == Patient.phone),
        and_(OptOut.channel == Channel.EMAIL, OptOut.address == func.lower(Patient.email)),
    )
    stmt = (
        select(Patient.id, Patient.first_name, OptOut.created_at, OptOut.channel)
        .join(OptOut, on_address)
        .where(Patient.clinic_id == clinic.id, OptOut.created_at >= start, OptOut.created_at < end)
        .order_by(OptOut.created_at, Patient.id)
    )
    zone = ZoneInfo(clinic.timezone)
    return tuple(
        DigestOptOut(pid, name, at.astimezone(zone), channel.value)
        for pid, name, at, channel in session.execute(stmt)
    )


def _clinics_with_email(session: Session) -> list[Clinic]:
    return list(
        session.scalars(select(Clinic).where(Clinic.email.is_not(None)).order_by(Clinic.id))
    )


def _sent_recently(*, session: Session, clinic: Clinic, now: dt.datetime) -> bool:
    stmt = select(AuditEvent.id).where(
        AuditEvent.action == DIGEST_ACTION,
        AuditEvent.clinic_id == clinic.id,
        AuditEvent.at > now - DIGEST_EVERY,
    )
    return session.execute(stmt.limit(1)).first() is not None


# --- sending --------------------------------------------------------------------------------


def _render(digest: DigestData) -> RenderedEmail:
    return render_email(message="clinic_digest", locale="en", context=digest.to_context())


def _send(
    *, transport: Transport, clinic: Clinic, digest: DigestData, email: RenderedEmail
) -> bool:
    assert clinic.email is not None  # chosen by _clinics_with_email
    message = OutboundMessage(
        channel=Channel.EMAIL,
        to=clinic.email,
        body=email.text,
        subject=email.subject,
        html=email.html,
        reference=f"digest-{clinic.id}-{digest.period_end.isoformat()}",
    )
    try:
        transport.send(message)
    except TransportError as exc:
        log.warning(
            "weekly digest for clinic %s to %s failed (%s, code %s); next run tries again",
            clinic.slug,
            mask_email(clinic.email),
            "permanent" if exc.permanent else "transient",
            exc.code,
        )
        return False
    log.info("weekly digest sent to clinic %s", clinic.slug)
    return True


def _record(*, session: Session, clinic: Clinic, digest: DigestData, now: dt.datetime) -> None:
    event = audit.record(
        session=session,
        actor="ptnudge",
        action=DIGEST_ACTION,
        clinic_id=clinic.id,
        detail={
            "period_start": digest.period_start.isoformat(),
            "period_end": digest.period_end.isoformat(),
            **digest.counts(),
        },
    )
    event.at = now  # the clock the caller runs on, so the seven days are measured on it
