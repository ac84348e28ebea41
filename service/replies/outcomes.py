"""Recording what a patient did about a reminder (done or skipped), wherever the answer came
from: an SMS reply or an email link. One occurrence can travel as several rows (SMS and
email for a "both" patient, reminders merged into one message, a snoozed re-send), and the
answer covers all of them, so adherence never counts the same exercise as missed elsewhere.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.models import Outcome, Reminder, ReminderStatus


def record_outcome(
    *, session: Session, reminder: Reminder, outcome: Outcome, now: dt.datetime
) -> bool:
    """Set the outcome on the reminder and on every row of the same occurrence that has none
    yet, and cancel a snoozed re-send still waiting (it is answered). Returns False when the
    reminder had an outcome already (nothing changes: the first answer stands)."""
    if reminder.outcome is not None:
        return False
    # Loaded and set one by one (a handful of rows): the session's objects stay current.
    for row in session.scalars(
        select(Reminder).where(
            Reminder.id.in_(sorted(_occurrence_ids(session, reminder))), Reminder.outcome.is_(None)
        )
    ):
        row.outcome = outcome
        row.outcome_at = now
    if reminder.plan_item_id is not None:
        waiting = select(Reminder).where(
            Reminder.patient_id == reminder.patient_id,
            Reminder.plan_item_id == reminder.plan_item_id,
            Reminder.status == ReminderStatus.SCHEDULED,
            Reminder.actionable.is_(True),
        )
        for row in session.scalars(waiting):
            row.status = ReminderStatus.CANCELED
            row.status_at = now
            row.error_detail = "answered"
    return True


def _occurrence_ids(session: Session, reminder: Reminder) -> set[int]:
    """The reminder, the rows merged into it, its twin on the other channel, and the
    reminder a snoozed re-send stands for."""
    ids = {reminder.id}
    if reminder.snooze_of_id is not None:
        ids.add(reminder.snooze_of_id)
    conditions = [Reminder.merged_into_id == reminder.id]
    if reminder.plan_item_id is not None:
        conditions.append(
            (Reminder.plan_item_id == reminder.plan_item_id) & (Reminder.due_at == reminder.due_at)
        )
    ids.update(
        session.scalars(
            select(Reminder.id).where(Reminder.patient_id == reminder.patient_id, or_(*conditions))
        )
    )
    return ids
