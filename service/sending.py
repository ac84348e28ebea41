"""Sending one reminder: record, then send, then record.

1. Claim: a conditional UPDATE moves the reminder from ``queued`` to ``sending`` and must
   change exactly one row; a duplicate task (broker redelivery, sweeper) changes none and
   stops there. The rendered body's digest and the address are stored with the claim, so
   the sweeper can recognise the message at the provider if this process dies.
2. Check again, at this moment: opt-out ledger, pause, waking window, staleness.
3. Call the transport, outside any transaction.
4. Record the provider id, or the error. A transient error before the provider accepted
   the message puts the reminder back in ``queued`` for a retry with backoff; one after it
   may have been accepted leaves it in ``sending`` for reconciliation: never re-sent blindly.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import case, text, update
from sqlalchemy.orm import Session, joinedload, sessionmaker

from config.settings import Settings
from service import delivery, metrics, optouts
from service.db import rows_changed, transaction
from service.messages import MERGED_KINDS, Composition, body_digest, compose, outbound
from service.models import Channel, Patient, Reminder, ReminderStatus, utcnow
from service.plans import is_paused_at, schedule_for
from service.scheduling import local_window_contains
from service.transports.base import Receipt, Transport, TransportError

log = logging.getLogger(__name__)


class SendOutcome(enum.StrEnum):
    SENT = "sent"
    NOT_CLAIMED = "not_claimed"  # another task has it, or it is already finished
    CANCELED = "canceled"
    EXPIRED = "expired"
    FAILED = "failed"
    RETRY = "retry"
    UNCERTAIN = "uncertain"  # the provider may have it; the sweeper reconciles


@dataclass(frozen=True)
class Transports:
    sms: Transport
    email: Transport

    def for_channel(self, channel: Channel) -> Transport:
        return self.sms if channel is Channel.SMS else self.email


def send_reminder(
    *,
    sessions: sessionmaker[Session],
    settings: Settings,
    transports: Transports,
    reminder_id: int,
    retry_in: dt.timedelta | None,
    clock: Callable[[], dt.datetime] = utcnow,
) -> SendOutcome:
    """Send one queued reminder at most once. ``retry_in`` is how long until the next
    attempt if this one hits a transient error (None: this is the last attempt)."""
    with transaction(sessions) as session:
        claimed = _claim(session, settings, reminder_id, clock())
    if isinstance(claimed, SendOutcome):
        return claimed
    message = outbound(
        settings=settings,
        composition=claimed.composition,
        channel=claimed.channel,
        to=claimed.address,
        reminder_id=reminder_id,
    )
    try:
        receipt = transports.for_channel(claimed.channel).send(message)
    except TransportError as error:
        return _record_error(sessions, reminder_id, error, retry_in, clock())
    _record_sent(sessions, reminder_id, receipt, clock())
    return SendOutcome.SENT


@dataclass(frozen=True)
class _Claimed:
    address: str
    channel: Channel
    composition: Composition


def _claim(
    session: Session, settings: Settings, reminder_id: int, now: dt.datetime
) -> SendOutcome | _Claimed:
    # One round trip for the reminder, its patient, clinic and plan (for the window check).
    reminder = session.get(
        Reminder,
        reminder_id,
        options=[
            joinedload(Reminder.patient).joinedload(Patient.clinic),
            joinedload(Reminder.patient).joinedload(Patient.plan_items),
        ],
    )
    if reminder is None or reminder.status is not ReminderStatus.QUEUED:
        return SendOutcome.NOT_CLAIMED
    verdict = _still_wanted(session, reminder, settings, now)
    if verdict is not None:
        status, detail = verdict
        if _move(session, reminder_id, ReminderStatus.QUEUED, status, now, detail=detail):
            return SendOutcome.EXPIRED if status is ReminderStatus.EXPIRED else SendOutcome.CANCELED
        return SendOutcome.NOT_CLAIMED
    address = _address(reminder)  # today's number: the clinic may have corrected it
    composition = _compose(settings, reminder)
    changed = rows_changed(
        session,
        update(Reminder)
        .where(Reminder.id == reminder_id, Reminder.status == ReminderStatus.QUEUED)
        .values(
            status=ReminderStatus.SENDING,
            status_at=now,
            claimed_at=now,
            attempts=Reminder.attempts + 1,
            to_address=address,
            body_digest=body_digest(composition.body),
        ),
    )
    if changed != 1 or address is None:
        return SendOutcome.NOT_CLAIMED
    return _Claimed(address=address, channel=reminder.channel, composition=composition)


def _still_wanted(
    session: Session, reminder: Reminder, settings: Settings, now: dt.datetime
) -> tuple[ReminderStatus, str] | None:
    """Why this reminder must not go out now, or None when it should."""
    patient = reminder.patient
    address = _address(reminder)
    schedule = schedule_for(patient)
    checks = (
        # Opt-out is checked at the moment of sending, in the claim's own transaction: a STOP
        # committed before this point wins; one after it finds the reminder already leaving.
        (
            address is not None and optouts.is_opted_out(session=session, address=address),
            ReminderStatus.CANCELED,
            "opted out",
        ),
        (
            now - reminder.due_at > dt.timedelta(seconds=settings.stale_after_seconds),
            ReminderStatus.EXPIRED,
            "stale: due long ago",
        ),
        (is_paused_at(patient, now), ReminderStatus.CANCELED, f"patient {patient.status.value}"),
        (
            reminder.channel is Channel.SMS and patient.phone_invalid_code is not None,
            ReminderStatus.CANCELED,
            f"phone invalid ({patient.phone_invalid_code})",
        ),
        (not address, ReminderStatus.CANCELED, f"no {reminder.channel.value} address"),
        (
            reminder.actionable
            and schedule is not None
            and not local_window_contains(schedule, now),
            ReminderStatus.EXPIRED,
            "outside the waking window",
        ),
    )
    for failed, status, detail in checks:
        if failed:
            return status, detail
    return None


def _address(reminder: Reminder) -> str | None:
    patient = reminder.patient
    return patient.phone if reminder.channel is Channel.SMS else patient.email


def _compose(settings: Settings, reminder: Reminder) -> Composition:
    extra = dict(reminder.context or {})
    # The dispatcher wrote the kinds merged into this message (see service/dispatch.py).
    merged = [str(kind) for kind in extra.pop(MERGED_KINDS, [])]
    kinds = [reminder.kind, *(kind for kind in merged if kind != reminder.kind)]
    return compose(
        settings=settings,
        patient=reminder.patient,
        clinic=reminder.patient.clinic,
        kinds=kinds,
        channel=reminder.channel,
        seed=reminder.id,
        reminder_id=reminder.id,
        extra=extra,
    )


def _move(
    session: Session,
    reminder_id: int,
    current: ReminderStatus,
    status: ReminderStatus,
    now: dt.datetime,
    *,
    detail: str | None = None,
    code: str | None = None,
) -> bool:
    statement = (
        update(Reminder)
        .where(Reminder.id == reminder_id, Reminder.status == current)
        .values(status=status, status_at=now, error_detail=detail, error_code=code)
    )
    return rows_changed(session, statement) == 1


def _record_sent(
    sessions: sessionmaker[Session], reminder_id: int, receipt: Receipt, now: dt.datetime
) -> None:
    with transaction(sessions) as session:
        # Losing this commit in a database crash cannot cause a second message: the reminder
        # would still be "sending" and the sweeper would find it at the provider. So the
        # commit need not wait for the disk, which halves the database time per message.
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        found = session.execute(
            update(Reminder)
            .where(Reminder.id == reminder_id)
            .values(
                # A status callback may already have moved it on (delivered); keep that.
                status=case(
                    (Reminder.status == ReminderStatus.SENDING, ReminderStatus.SENT),
                    else_=Reminder.status,
                ),
                status_at=now,
                provider_id=receipt.provider_id,
                sent_at=now,
            )
            .returning(Reminder.channel, Reminder.kind, Reminder.due_at)
        ).one_or_none()
    if found is None:
        return
    channel, kind, due_at = found
    metrics.MESSAGES_SENT.labels(channel=channel.value).inc()
    metrics.SEND_LAG_SECONDS.observe(max(0.0, (now - due_at).total_seconds()))
    log.info("sent reminder %s (%s) on %s", reminder_id, kind, channel.value)


def _record_error(
    sessions: sessionmaker[Session],
    reminder_id: int,
    error: TransportError,
    retry_in: dt.timedelta | None,
    now: dt.datetime,
) -> SendOutcome:
    with transaction(sessions) as session:
        reminder = session.get(Reminder, reminder_id)
        if reminder is None:
            return SendOutcome.FAILED
        channel = reminder.channel.value
        if not error.permanent and error.accepted_possible:
            log.warning(
                "reminder %s: provider may have it (%s); reconciling later", reminder_id, error.code
            )
            return SendOutcome.UNCERTAIN
        if not error.permanent and retry_in is not None:
            reminder.status = ReminderStatus.QUEUED
            reminder.status_at = now
            # The retry is already on its way: the sweeper must not requeue before it is due.
            reminder.queued_at = now + retry_in
            reminder.error_code = error.code
            log.info("reminder %s: transient %s, retry in %s", reminder_id, error.code, retry_in)
            return SendOutcome.RETRY
        reminder.status = ReminderStatus.FAILED
        reminder.status_at = now
        reminder.error_code = error.code
        reminder.error_detail = str(error)[:300]
        delivery.apply_provider_error(session=session, reminder=reminder, code=error.code, now=now)
        metrics.MESSAGES_FAILED.labels(channel=channel, reason=error.code or "error").inc()
        log.warning("reminder %s failed permanently: %s", reminder_id, error.code)
        return SendOutcome.FAILED
