"""A patient's plan as the scheduler sees it, and keeping each plan item's next due time.

The dispatcher reads only ``plan_items.next_due_at``; everything that changes what a patient
should get (enrollment, pause, resume, opt-in, a tuned program) calls ``refresh_next_due``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from service.enrollment.programs import parse_time, weekday_numbers
from service.enrollment.scheduling import (
    DEFAULT_MIN_GAP,
    ItemRule,
    PatientSchedule,
    WakingWindow,
    next_due_by_item,
)
from service.models import Patient, PatientStatus, PlanItem


def item_rule(item: PlanItem) -> ItemRule:
    return ItemRule(
        item_id=item.id,
        kind=item.kind,
        every_minutes=item.every_minutes,
        at_times=tuple(parse_time(value) for value in item.at_times or ()),
        days=weekday_numbers(item.days),
    )


def waking_window(patient: Patient) -> WakingWindow:
    """The hours the patient may get messages in (see ``scheduling.may_send_at``)."""
    return WakingWindow(patient.timezone, patient.wake_start, patient.wake_end)


def schedule_for(
    patient: Patient,
    items: Sequence[PlanItem] | None = None,
    *,
    min_gap: dt.timedelta = DEFAULT_MIN_GAP,
) -> PatientSchedule | None:
    """The patient's schedule, or None while they get nothing (removed, paused open-ended).
    ``min_gap`` is PTNUDGE_MIN_GAP_MINUTES: reminders closer than that leave as one message
    and count once against the daily limit."""
    if patient.status is PatientStatus.REMOVED:
        return None
    if patient.status is PatientStatus.PAUSED and patient.paused_until is None:
        return None
    not_before = patient.start_date
    if patient.status is PatientStatus.PAUSED and patient.paused_until is not None:
        not_before = max(not_before, patient.paused_until)
    return PatientSchedule(
        timezone=patient.timezone,
        wake_start=patient.wake_start,
        wake_end=patient.wake_end,
        items=tuple(item_rule(item) for item in (items or patient.plan_items)),
        max_per_day=patient.max_per_day,
        not_before=not_before,
        min_gap=min_gap,
    )


def refresh_next_due(
    *, patient: Patient, after: dt.datetime, min_gap: dt.timedelta = DEFAULT_MIN_GAP
) -> None:
    """Set every plan item's next due time to its first occurrence strictly after ``after``.

    Plan items must have ids (flush first). Missed occurrences before ``after`` are never
    replayed: resuming or opting back in starts from now.
    """
    schedule = schedule_for(patient, min_gap=min_gap)
    upcoming = next_due_by_item(schedule, after=after) if schedule else {}
    for item in patient.plan_items:
        item.next_due_at = upcoming.get(item.id)


def is_paused_at(patient: Patient, moment: dt.datetime) -> bool:
    """True when the patient should get nothing at this instant (checked again at send time)."""
    if patient.status is PatientStatus.REMOVED:
        return True
    if patient.status is not PatientStatus.PAUSED:
        return False
    if patient.paused_until is None:
        return True
    return moment.astimezone(ZoneInfo(patient.timezone)).date() < patient.paused_until
