"""Sending reminders: record, then send, then record.

A send task takes a small batch of reminder ids (the dispatcher queues them in chunks), so
the database work of a message is a share of three statements, not a dozen round trips.

1. Claim, in one transaction: lock the batch's rows that are still ``queued`` (``FOR UPDATE
   SKIP LOCKED`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises claims), check each
   again at this moment (opt-out ledger, pause, waking window, staleness), and move the
   wanted ones to ``sending`` with the rendered body's digest and the address. A duplicate
   task (broker redelivery, the sweeper) finds nothing ``queued`` and stops there. Outside
   the waking window (``scheduling.may_send_at``) a planned reminder expires (the plan's
   next one is coming); any other message (welcome, re-engagement) waits, scheduled again
   for the window's next waking minute. A reminder whose due time has not come yet (the
   dispatcher claims one tick ahead) is never sent early: it stays ``queued`` and its
   result says how long to wait (``EARLY`` with ``retry_in``).
2. Call the transport for each, outside any transaction. Before each call the rest of the
   batch is read again (ledger and patients' status, at most every ``RECHECK_AFTER``): a
   STOP, pause or removal that arrives while the batch is in flight still wins.
3. Record the provider ids and errors, in one transaction. A transient error before the
   provider accepted the message puts the reminder back in ``queued`` for a retry with
   backoff; one after it may have been accepted leaves it in ``sending`` for
   reconciliation: never re-sent blindly.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.orm import Session, joinedload, sessionmaker

from config.settings import Settings
from service import metrics
from service.db import transaction
from service.db.dialects import commit_without_waiting_for_disk, for_update_skip_locked
from service.delivery import verdicts
from service.delivery.links import UrlBuilder
from service.delivery.messages import Composition, body_digest, compose, merged_kinds, outbound
from service.delivery.ratelimit import NoLimit, RateLimiter
from service.enrollment import optouts
from service.enrollment.patients import program_adherence
from service.enrollment.plans import CLOSING_KIND, is_paused_at, waking_window
from service.enrollment.scheduling import may_send_at, next_waking_minute
from service.models import Channel, Patient, Reminder, ReminderStatus, utcnow
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
    RESCHEDULED = "rescheduled"  # outside the waking window: scheduled for its next minute
    EARLY = "early"  # handed over before its due time: still queued, to be sent then


@dataclass(frozen=True)
class Transports:
    sms: Transport
    email: Transport
    sms_limit: RateLimiter = field(default_factory=NoLimit)

    def for_channel(self, channel: Channel) -> Transport:
        return self.sms if channel is Channel.SMS else self.email


# Attempts made so far -> wait before the next one, or None when this was the last.
RetryPolicy = Callable[[int], dt.timedelta | None]


@dataclass(frozen=True)
class SendResult:
    outcome: SendOutcome
    retry_in: dt.timedelta | None = None  # with RETRY: when the retry should run


def send_reminder(
    *,
    sessions: sessionmaker[Session],
    settings: Settings,
    transports: Transports,
    urls: UrlBuilder,
    reminder_id: int,
    retry_in: dt.timedelta | None,
    clock: Callable[[], dt.datetime] = utcnow,
) -> SendOutcome:
    """Send one queued reminder at most once. ``retry_in`` is how long until the next
    attempt if this one hits a transient error (None: this is the last attempt)."""
    results = send_reminders(
        sessions=sessions,
        settings=settings,
        transports=transports,
        urls=urls,
        reminder_ids=[reminder_id],
        retry_policy=lambda _attempts: retry_in,
        clock=clock,
    )
    return results[reminder_id].outcome


def send_reminders(
    *,
    sessions: sessionmaker[Session],
    settings: Settings,
    transports: Transports,
    urls: UrlBuilder,
    reminder_ids: Sequence[int],
    retry_policy: RetryPolicy,
    clock: Callable[[], dt.datetime] = utcnow,
) -> dict[int, SendResult]:
    """Send each queued reminder of the batch at most once (see the module docstring).
    Every id gets a result; ids that were not ``queued`` get NOT_CLAIMED."""
    results = {rid: SendResult(SendOutcome.NOT_CLAIMED) for rid in reminder_ids}
    with transaction(sessions) as session:
        claims = _claim(session, settings, reminder_ids, clock(), results, urls=urls)
    sent: list[tuple[_Claimed, Receipt]] = []
    failed: list[tuple[_Claimed, TransportError]] = []
    canceled: list[tuple[_Claimed, str]] = []
    recheck = _Recheck(sessions=sessions, pending=claims, checked_at=clock())
    for claim in claims:
        reason = recheck.unwanted(claim, now=clock())
        if reason is not None:
            canceled.append((claim, reason))
            continue
        message = outbound(
            settings=settings,
            composition=claim.composition,
            channel=claim.channel,
            to=claim.address,
            reminder_id=claim.reminder_id,
            urls=urls,
        )
        if claim.channel is Channel.SMS:
            transports.sms_limit.acquire()
        try:
            sent.append((claim, transports.for_channel(claim.channel).send(message)))
        except TransportError as error:
            failed.append((claim, error))
    if sent or failed or canceled:
        _record(
            sessions,
            sent=sent,
            failed=failed,
            canceled=canceled,
            retry_policy=retry_policy,
            now=clock(),
            results=results,
        )
    return results


@dataclass(frozen=True)
class _Claimed:
    reminder_id: int
    patient_id: int
    address: str
    channel: Channel
    composition: Composition
    attempts: int  # including this one


# A STOP, pause or removal committed after the claim still wins while the batch is in flight:
# before each provider call the rest of the batch is checked again, at most this often (a
# fast provider sends a batch of 20 in well under this; a slow one gets a check per message).
RECHECK_AFTER = dt.timedelta(milliseconds=250)


@dataclass
class _Recheck:
    """The opt-out ledger and the patients' status, read again for the claims not yet sent:
    one short read per check (patients and ledger), never one per message of the batch."""

    sessions: sessionmaker[Session]
    pending: list[_Claimed]
    checked_at: dt.datetime
    found: dict[int, str] = field(default_factory=dict)  # reminder id -> why not to send

    def unwanted(self, claim: _Claimed, *, now: dt.datetime) -> str | None:
        if now - self.checked_at >= RECHECK_AFTER:
            rest = self.pending[self.pending.index(claim) :]
            self.found |= _unwanted_now(self.sessions, rest, now)
            self.checked_at = now
        return self.found.get(claim.reminder_id)


def _unwanted_now(
    sessions: sessionmaker[Session], claims: list[_Claimed], now: dt.datetime
) -> dict[int, str]:
    with sessions() as session:
        ledger = optouts.opted_out_among(
            session=session, addresses=((c.channel, c.address) for c in claims)
        )
        ids = {c.patient_id for c in claims}
        patients = {p.id: p for p in session.scalars(select(Patient).where(Patient.id.in_(ids)))}
    found = {}
    for claim in claims:
        patient = patients.get(claim.patient_id)
        if optouts.listed(ledger, claim.channel, claim.address):
            found[claim.reminder_id] = "opted out while the batch was being sent"
        elif patient is None or is_paused_at(patient, now):
            state = patient.status.value if patient is not None else "removed"
            found[claim.reminder_id] = f"patient {state} while the batch was being sent"
    return found


def _claim(
    session: Session,
    settings: Settings,
    reminder_ids: Sequence[int],
    now: dt.datetime,
    results: dict[int, SendResult],
    *,
    urls: UrlBuilder,
) -> list[_Claimed]:
    query = (
        select(Reminder)
        .where(Reminder.id.in_(reminder_ids), Reminder.status == ReminderStatus.QUEUED)
        .options(
            joinedload(Reminder.patient, innerjoin=True).joinedload(Patient.clinic, innerjoin=True),
        )
        .order_by(Reminder.id)
    )
    reminders = list(session.scalars(for_update_skip_locked(query, session=session, of=Reminder)))
    opted_out = optouts.opted_out_among(session=session, addresses=map(_keyed, reminders))
    merged = merged_kinds(session=session, head_ids=[reminder.id for reminder in reminders])
    claims = []
    for reminder in reminders:
        if reminder.due_at > now:
            # Never before its time: a task that arrives early (clock skew, a countdown
            # not honoured) leaves it queued and comes back when it is due.
            results[reminder.id] = SendResult(SendOutcome.EARLY, retry_in=reminder.due_at - now)
            continue
        verdict = _still_wanted(reminder, settings, now, opted_out)
        if verdict is None and not may_send_at(waking_window(reminder.patient), now):
            _wait_for_waking(reminder, now)
            results[reminder.id] = SendResult(SendOutcome.RESCHEDULED)
            continue
        if verdict is not None:
            status, detail = verdict
            reminder.status, reminder.status_at, reminder.error_detail = status, now, detail
            outcome = (
                SendOutcome.EXPIRED if status is ReminderStatus.EXPIRED else SendOutcome.CANCELED
            )
            results[reminder.id] = SendResult(outcome)
            continue
        address = _address(reminder)  # today's number: the clinic may have corrected it
        if address is None:  # refused by _still_wanted already; this narrows the type
            continue
        extra = _closing_figures(session, reminder)
        composition = _compose(settings, urls, reminder, merged.get(reminder.id, []), extra)
        claims.append(_mark_sending(reminder, address, composition, now))
    return claims


def _mark_sending(
    reminder: Reminder, address: str, composition: Composition, now: dt.datetime
) -> _Claimed:
    """``sending``, with what is about to leave: committed before the provider is called."""
    reminder.status = ReminderStatus.SENDING
    reminder.status_at = reminder.claimed_at = now
    reminder.attempts += 1
    reminder.to_address = address
    reminder.body_digest = body_digest(composition.body)
    return _Claimed(
        reminder.id, reminder.patient_id, address, reminder.channel, composition, reminder.attempts
    )


def _still_wanted(
    reminder: Reminder, settings: Settings, now: dt.datetime, opted_out: set[optouts.Key]
) -> tuple[ReminderStatus, str] | None:
    """Why this reminder must not go out now, or None when it should."""
    patient = reminder.patient
    address = _address(reminder)
    checks = (
        # Opt-out is checked at the moment of sending, in the claim's own transaction: a STOP
        # committed before this point wins; one after it finds the reminder already leaving.
        (
            optouts.listed(opted_out, reminder.channel, address),
            ReminderStatus.CANCELED,
            "opted out",
        ),
        (
            now - reminder.due_at > dt.timedelta(seconds=settings.stale_after_seconds),
            ReminderStatus.EXPIRED,
            "stale: due long ago",
        ),
        (
            is_paused_at(patient, now, message=reminder.kind),
            ReminderStatus.CANCELED,
            f"patient {patient.status.value}",
        ),
        (
            reminder.channel is Channel.SMS and patient.phone_invalid_code is not None,
            ReminderStatus.CANCELED,
            f"phone invalid ({patient.phone_invalid_code})",
        ),
        (not address, ReminderStatus.CANCELED, f"no {reminder.channel.value} address"),
        (
            # A planned reminder is not worth sending late: the plan's next one is coming.
            reminder.actionable and not may_send_at(waking_window(patient), now),
            ReminderStatus.EXPIRED,
            "outside the waking window",
        ),
    )
    for failed, status, detail in checks:
        if failed:
            return status, detail
    return None


def _wait_for_waking(reminder: Reminder, now: dt.datetime) -> None:
    """Back to ``scheduled``, due at the next waking minute: the dispatcher queues it then."""
    reminder.status = ReminderStatus.SCHEDULED
    reminder.status_at = now
    reminder.queued_at = None
    reminder.due_at = next_waking_minute(waking_window(reminder.patient), after=now)


def _keyed(reminder: Reminder) -> tuple[Channel, str | None]:
    return (reminder.channel, _address(reminder))


def _address(reminder: Reminder) -> str | None:
    patient = reminder.patient
    return patient.phone if reminder.channel is Channel.SMS else patient.email


def _closing_figures(session: Session, reminder: Reminder) -> dict[str, object]:
    """The closing message names the patient's adherence as it stands when it leaves."""
    if reminder.kind != CLOSING_KIND:
        return {}
    done, delivered = program_adherence(session=session, patient=reminder.patient)
    return {"done": done, "sent": delivered}


def _compose(
    settings: Settings,
    urls: UrlBuilder,
    reminder: Reminder,
    merged: list[str],
    extra: dict[str, object],
) -> Composition:
    # ``merged``: the kinds the dispatcher merged into this message (service/delivery/dispatch.py).
    kinds = [reminder.kind, *(kind for kind in merged if kind != reminder.kind)]
    return compose(
        settings=settings,
        patient=reminder.patient,
        clinic=reminder.patient.clinic,
        kinds=kinds,
        channel=reminder.channel,
        seed=reminder.id,
        urls=urls,
        reminder_id=reminder.id,
        extra=extra,
    )


def _record(
    sessions: sessionmaker[Session],
    *,
    sent: list[tuple[_Claimed, Receipt]],
    failed: list[tuple[_Claimed, TransportError]],
    canceled: list[tuple[_Claimed, str]],
    retry_policy: RetryPolicy,
    now: dt.datetime,
    results: dict[int, SendResult],
) -> None:
    with transaction(sessions) as session:
        # Losing this commit in a database crash cannot cause a second message: the reminders
        # would still be "sending" and the sweeper would find them at the provider. So the
        # commit need not wait for the disk, which halves the database time per message.
        commit_without_waiting_for_disk(session)
        if sent:
            _record_sent(session, sent, now, results)
        for claim, error in failed:
            results[claim.reminder_id] = _record_error(
                session, claim, error, retry_policy(claim.attempts), now
            )
        _record_canceled(session, canceled, now, results)


_MARK_SENT = (
    update(Reminder.__table__)  # type: ignore[arg-type]
    .where(Reminder.__table__.c.id == bindparam("rid"))
    .values(
        # A status callback may already have moved it on (delivered); keep that.
        status=case(
            (
                Reminder.__table__.c.status == ReminderStatus.SENDING.value,
                ReminderStatus.SENT.value,
            ),
            else_=Reminder.__table__.c.status,
        ),
        status_at=bindparam("now"),
        provider_id=bindparam("provider_id"),
        sent_at=bindparam("now"),
    )
)


def _record_canceled(
    session: Session,
    canceled: list[tuple[_Claimed, str]],
    now: dt.datetime,
    results: dict[int, SendResult],
) -> None:
    """Claimed, never handed to the provider: canceled with the reason it was held back."""
    for claim, reason in canceled:
        session.execute(
            update(Reminder)
            .where(Reminder.id == claim.reminder_id, Reminder.status == ReminderStatus.SENDING)
            .values(status=ReminderStatus.CANCELED, status_at=now, error_detail=reason)
        )
        results[claim.reminder_id] = SendResult(SendOutcome.CANCELED)


def _record_sent(
    session: Session,
    sent: list[tuple[_Claimed, Receipt]],
    now: dt.datetime,
    results: dict[int, SendResult],
) -> None:
    session.connection().execute(
        _MARK_SENT,
        [
            {"rid": claim.reminder_id, "provider_id": receipt.provider_id, "now": now}
            for claim, receipt in sent
        ],
    )
    rows = session.execute(
        select(Reminder.id, Reminder.due_at).where(
            Reminder.id.in_([claim.reminder_id for claim, _ in sent])
        )
    )
    due: dict[int, dt.datetime] = {row.id: row.due_at for row in rows}
    for claim, _receipt in sent:
        results[claim.reminder_id] = SendResult(SendOutcome.SENT)
        metrics.MESSAGES_SENT.labels(channel=claim.channel.value).inc()
        lag = (now - due[claim.reminder_id]).total_seconds()
        metrics.SEND_LAG_SECONDS.observe(max(0.0, lag))
        log.info("sent reminder %s on %s", claim.reminder_id, claim.channel.value)


def _record_error(
    session: Session,
    claim: _Claimed,
    error: TransportError,
    retry_in: dt.timedelta | None,
    now: dt.datetime,
) -> SendResult:
    reminder = session.get(Reminder, claim.reminder_id)
    if reminder is None:
        return SendResult(SendOutcome.FAILED)
    if not error.permanent and error.accepted_possible:
        log.warning(
            "reminder %s: provider may have it (%s); reconciling later", reminder.id, error.code
        )
        return SendResult(SendOutcome.UNCERTAIN)
    if not error.permanent and retry_in is not None:
        reminder.status = ReminderStatus.QUEUED
        reminder.status_at = now
        # The retry is already on its way: the sweeper must not requeue before it is due.
        reminder.queued_at = now + retry_in
        reminder.error_code = error.code
        log.info("reminder %s: transient %s, retry in %s", reminder.id, error.code, retry_in)
        return SendResult(SendOutcome.RETRY, retry_in)
    reminder.status = ReminderStatus.FAILED
    reminder.status_at = now
    reminder.error_code = error.code
    reminder.error_detail = str(error)[:300]
    verdicts.apply_provider_error(session=session, reminder=reminder, code=error.code, now=now)
    metrics.MESSAGES_FAILED.labels(channel=claim.channel.value, reason=error.code or "error").inc()
    log.warning("reminder %s failed permanently: %s", reminder.id, error.code)
    return SendResult(SendOutcome.FAILED)
