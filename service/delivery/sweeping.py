"""The sweeper: every reminder reaches a terminal state.

- ``queued`` for too long: the broker lost the task (a Redis restart without persistence,
  for one). Enqueue it again; the send task's claim makes a duplicate harmless.
- ``sending`` for too long: a worker died between claiming and recording. The message may or
  may not be at the provider, so it is never re-sent blindly: ask the provider (Twilio's
  message list for that number since the claim) and mark it sent, or put it back in the
  queue when the provider has no such message. Where the provider cannot be asked (email),
  the reminder is marked ``unknown``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.db.dialects import for_update_skip_locked, get_for_update
from service.delivery.messages import body_digest
from service.models import Channel, Reminder, ReminderStatus
from service.transports.base import ProviderRecord, Reconciler

PROVIDER_STATUS = {
    "delivered": ReminderStatus.DELIVERED,
    "read": ReminderStatus.DELIVERED,
    "undelivered": ReminderStatus.UNDELIVERED,
    "failed": ReminderStatus.FAILED,
    "canceled": ReminderStatus.FAILED,
}
# A clock difference between us and the provider must not hide a message it took.
CLOCK_SLACK = dt.timedelta(minutes=2)
BATCH = 500


@dataclass(frozen=True)
class SweepRules:
    requeue_after: dt.timedelta
    reconcile_after: dt.timedelta


@dataclass
class SweepResult:
    requeued: list[int] = field(default_factory=list)
    reconciled_sent: int = 0
    reconciled_unsent: int = 0
    unknown: int = 0


def requeue_lost(*, session: Session, rules: SweepRules, now: dt.datetime) -> list[int]:
    """Queued reminders whose task should have run by now: refresh and return their ids."""
    query = (
        select(Reminder.id)
        .where(
            Reminder.status == ReminderStatus.QUEUED,
            Reminder.queued_at < now - rules.requeue_after,
        )
        .limit(BATCH)
    )
    ids = list(session.scalars(for_update_skip_locked(query, session=session)))
    if ids:
        session.execute(update(Reminder).where(Reminder.id.in_(ids)).values(queued_at=now))
    return ids


def stuck_sending(*, session: Session, rules: SweepRules, now: dt.datetime) -> list[int]:
    """Ids of reminders a worker left in ``sending`` for longer than ``reconcile_after``."""
    query = (
        select(Reminder.id)
        .where(
            Reminder.status == ReminderStatus.SENDING,
            Reminder.claimed_at < now - rules.reconcile_after,
        )
        .order_by(Reminder.claimed_at)
        .limit(BATCH)
    )
    return list(session.scalars(query))


@dataclass(frozen=True)
class Stuck:
    """What reconciling needs to know of a stuck reminder, read outside any lock."""

    id: int
    channel: Channel
    to_address: str | None
    since: dt.datetime
    digest: str | None


def stuck_details(*, session: Session, reminder_id: int) -> Stuck | None:
    reminder = session.get(Reminder, reminder_id)
    if reminder is None or reminder.status is not ReminderStatus.SENDING:
        return None
    return Stuck(
        id=reminder.id,
        channel=reminder.channel,
        to_address=reminder.to_address,
        since=(reminder.claimed_at or reminder.due_at) - CLOCK_SLACK,
        digest=reminder.body_digest,
    )


def ask_provider(stuck: Stuck, reconciler: Reconciler | None) -> list[ProviderRecord] | None:
    """The provider's messages to that address since the claim; None when the provider cannot
    be asked (email, console). Raises TransportError when it is unreachable. Called with no
    transaction open: a slow provider must not hold locks that claims wait on."""
    if stuck.channel is not Channel.SMS or reconciler is None or not stuck.to_address:
        return None
    return reconciler.find_sent(to=stuck.to_address, since=stuck.since)


def reconcile(
    *,
    session: Session,
    stuck: Stuck,
    records: list[ProviderRecord] | None,
    now: dt.datetime,
    result: SweepResult,
) -> None:
    """Settle one reminder left in ``sending`` with what the provider said, if it is still
    ``sending`` (a late status callback may have settled it meanwhile)."""
    reminder = get_for_update(session, Reminder, stuck.id)
    if reminder is None or reminder.status is not ReminderStatus.SENDING:
        return
    if records is None:
        _settle(reminder, ReminderStatus.UNKNOWN, now, "worker stopped mid-send; provider unknown")
        result.unknown += 1
        return
    match = _matching(records, stuck.digest)
    if match is None:
        # The provider never took it: safe to send now (the send task re-checks staleness).
        reminder.status = ReminderStatus.QUEUED
        reminder.status_at = now
        reminder.queued_at = now
        result.requeued.append(reminder.id)
        result.reconciled_unsent += 1
        return
    reminder.provider_id = match.provider_id
    reminder.sent_at = match.created_at
    _settle(reminder, PROVIDER_STATUS.get(match.status, ReminderStatus.SENT), now, None)
    result.reconciled_sent += 1


def _matching(records: list[ProviderRecord], digest: str | None) -> ProviderRecord | None:
    for record in records:
        if digest is not None and body_digest(record.body) == digest:
            return record
    return None


def _settle(
    reminder: Reminder, status: ReminderStatus, now: dt.datetime, detail: str | None
) -> None:
    reminder.status = status
    reminder.status_at = now
    if detail:
        reminder.error_detail = detail
