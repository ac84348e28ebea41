"""Recording what a patient did about a reminder (done or skipped), wherever the answer came
from: an SMS reply or an email link. One occurrence can travel as several rows (SMS and
email for a "both" patient, reminders merged into one message, a snoozed re-send), and the
answer covers all of them, so adherence never counts the same exercise as missed elsewhere.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.orm import Session

from service.models import Outcome, Reminder, ReminderStatus


def record_outcome(
    *, session: Session, reminder: Reminder, outcome: Outcome, now: dt.datetime
) -> bool:
    """Set the outcome on the reminder and on every row of the same occurrence that has none
    yet, and cancel a snoozed re-send still waiting (it is answered). Returns False when the
    reminder had an outcome already (nothing changes: the first answer stands).

    One query reads both kinds of row, the database saying which each row is; they are set
    one by one (a handful of rows), so the session's objects stay current."""
    if reminder.outcome is not None:
        return False
    occurrence = _occurrence(reminder)
    waiting = _waiting(reminder)
    rows = session.execute(
        select(Reminder, occurrence, waiting)
        .where(Reminder.patient_id == reminder.patient_id, or_(occurrence, waiting))
        .order_by(Reminder.id)
    ).tuples()
    for row, in_occurrence, is_waiting in rows:
        if in_occurrence and row.outcome is None:
            row.outcome = outcome
            row.outcome_at = now
        if is_waiting:
            row.status = ReminderStatus.CANCELED
            row.status_at = now
            row.error_detail = "answered"
    return True


def _occurrence(reminder: Reminder) -> ColumnElement[bool]:
    """The reminder, the rows merged into it, its twin on the other channel, and the
    reminder a snoozed re-send stands for."""
    ids = [reminder.id] if reminder.snooze_of_id is None else [reminder.id, reminder.snooze_of_id]
    conditions = [Reminder.id.in_(ids), Reminder.merged_into_id == reminder.id]
    if reminder.plan_item_id is not None:
        conditions.append(
            (Reminder.plan_item_id == reminder.plan_item_id) & (Reminder.due_at == reminder.due_at)
        )
    return or_(*conditions)


def _waiting(reminder: Reminder) -> ColumnElement[bool]:
    """A re-send of the same plan item still waiting to go out."""
    if reminder.plan_item_id is None:
        return false()
    return and_(
        Reminder.plan_item_id == reminder.plan_item_id,
        Reminder.status == ReminderStatus.SCHEDULED,
        Reminder.actionable.is_(True),
    )
