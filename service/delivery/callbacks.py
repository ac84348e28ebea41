"""Twilio status callbacks: what happened to a message after Twilio took it.

Callbacks arrive late, twice, and out of order ("delivered" before "sent"): a status only
ever moves forward (``verdicts.advance_status``), and an error code has the same meaning as
when the send itself fails (``verdicts.apply_provider_error``: 21610 is an opt-out).
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import metrics
from service.delivery import verdicts
from service.models import Channel, Reminder, ReminderStatus

log = logging.getLogger(__name__)

TWILIO_STATUSES = {
    "accepted": ReminderStatus.SENT,
    "scheduled": ReminderStatus.SENT,
    "queued": ReminderStatus.SENT,
    "sending": ReminderStatus.SENT,
    "sent": ReminderStatus.SENT,
    "delivered": ReminderStatus.DELIVERED,
    "read": ReminderStatus.DELIVERED,
    "undelivered": ReminderStatus.UNDELIVERED,
    "failed": ReminderStatus.FAILED,
    "canceled": ReminderStatus.FAILED,
}
FAILURES = (ReminderStatus.UNDELIVERED, ReminderStatus.FAILED)
# A reminder the provider has (or may have) had: only these can have a status to report.
HANDED_OVER = frozenset(
    {
        ReminderStatus.SENDING,
        ReminderStatus.SENT,
        ReminderStatus.DELIVERED,
        ReminderStatus.UNDELIVERED,
        ReminderStatus.FAILED,
        ReminderStatus.UNKNOWN,
    }
)


def apply_status_callback(
    *,
    session: Session,
    message_sid: str,
    status: str,
    error_code: str | None,
    now: dt.datetime,
    reminder_id: int | None = None,
) -> bool:
    """Apply one callback. Returns False when no reminder has that MessageSid (the route
    still answers 200, or Twilio would keep retrying).

    ``reminder_id`` is the ``r`` our callback URL carries: a callback can overtake the
    worker recording the MessageSid, and then it is the only way to the reminder.
    """
    reminder = _find(session, message_sid=message_sid, reminder_id=reminder_id)
    if reminder is None:
        log.info("status callback for unknown message %s", message_sid)
        return False
    target = TWILIO_STATUSES.get(status.strip().lower())
    if target is None:
        return True  # a status we draw nothing from (receiving, received…)
    changed = _advance(reminder, target, now=now)
    if target is ReminderStatus.SENT and reminder.sent_at is None:
        reminder.sent_at = now
    if target in FAILURES and reminder.status is target:
        _record_failure(session, reminder, error_code, now=now, counted=changed)
    return True


def _find(session: Session, *, message_sid: str, reminder_id: int | None) -> Reminder | None:
    found = session.scalars(
        select(Reminder).where(Reminder.provider_id == message_sid).order_by(Reminder.id).limit(1)
    ).first()
    if found is not None or reminder_id is None:
        return found
    reminder = session.get(Reminder, reminder_id)
    if reminder is None or not _may_be(reminder, message_sid):
        return None
    reminder.provider_id = message_sid
    return reminder


def _may_be(reminder: Reminder, message_sid: str) -> bool:
    """Whether Twilio's message can be this reminder: an SMS handed to the provider that
    went out as no other message. The ``r`` of a signed URL is still only a claim: it must
    never move a reminder that was not sent (scheduled, canceled, expired…)."""
    return (
        reminder.channel is Channel.SMS
        and reminder.status in HANDED_OVER
        and reminder.provider_id in {None, message_sid}
    )


def _advance(reminder: Reminder, target: ReminderStatus, *, now: dt.datetime) -> bool:
    if reminder.status is ReminderStatus.UNKNOWN and target is ReminderStatus.SENT:
        # "Unknown" (a worker died mid-send) ranks with "sent"; Twilio just told us which.
        reminder.status = target
        reminder.status_at = now
        return True
    return verdicts.advance_status(reminder=reminder, status=target, now=now)


def _record_failure(
    session: Session, reminder: Reminder, code: str | None, *, now: dt.datetime, counted: bool
) -> None:
    # Twilio's codes are a few digits; anything else would not fit the column.
    code = (code or "").strip().replace("\x00", "")[:20] or None
    if code is not None and reminder.error_code != code:
        reminder.error_code = code
    if counted:
        reason = code or reminder.status.value
        metrics.MESSAGES_FAILED.labels(channel=reminder.channel.value, reason=reason).inc()
        log.warning("reminder %s %s (%s)", reminder.id, reminder.status.value, code)
    verdicts.apply_provider_error(session=session, reminder=reminder, code=code, now=now)
