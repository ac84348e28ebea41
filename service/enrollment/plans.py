"""A patient's plan as the scheduler sees it, and keeping each plan item's next due time.

The dispatcher reads only ``plan_items.next_due_at``; everything that changes what a patient
should get (enrollment, pause, resume, opt-in, a tuned program, an edit) calls
``refresh_next_due``.

A program may end, and a progression changes programs at local midnight of each phase
boundary. ``patients.plan_changes_at`` holds the next such instant: next due times never
reach past it, and the tick's ``advance_programs`` step (``service/enrollment/patients.py``)
switches the plan or completes the patient when it comes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from service.enrollment.programs import Program, get_program, parse_time, tune, weekday_numbers
from service.enrollment.scheduling import (
    DEFAULT_MIN_GAP,
    ItemRule,
    Occurrence,
    PatientSchedule,
    WakingWindow,
    next_due_by_item,
    occurrences,
)
from service.models import Patient, PatientStatus, PlanItem

# The message that closes a completed program may still go out to the completed patient.
CLOSING_KIND = "program_complete"
PHASE_CHANGE_KIND = "phase_change"


class PlanLine(Protocol):
    """One line of a plan as the scheduler reads it: a ``PlanItem``, or the dispatcher's
    plain row of one (``service/delivery/due.py``)."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def every_minutes(self) -> int | None: ...
    @property
    def at_times(self) -> list[str] | None: ...
    @property
    def days(self) -> list[str] | None: ...


class PlanOwner(Protocol):
    """A patient as ``schedule_for`` reads them: a ``Patient``, or the dispatcher's row."""

    @property
    def status(self) -> PatientStatus: ...
    @property
    def paused_until(self) -> dt.date | None: ...
    @property
    def start_date(self) -> dt.date: ...
    @property
    def timezone(self) -> str: ...
    @property
    def wake_start(self) -> dt.time: ...
    @property
    def wake_end(self) -> dt.time: ...
    @property
    def max_per_day(self) -> int: ...
    @property
    def plan_items(self) -> Sequence[PlanLine]: ...


def item_rule(item: PlanLine) -> ItemRule:
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
    patient: PlanOwner,
    items: Sequence[PlanLine] | None = None,
    *,
    min_gap: dt.timedelta = DEFAULT_MIN_GAP,
) -> PatientSchedule | None:
    """The patient's schedule, or None while they get nothing (removed, completed, paused
    open-ended). ``min_gap`` is PTNUDGE_MIN_GAP_MINUTES: reminders closer than that leave as
    one message and count once against the daily limit."""
    if patient.status.ended:
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
    """Set every plan item's next due time to its first occurrence strictly after ``after``,
    and before the plan next changes (a new phase, the end).

    Plan items must have ids (flush first). Missed occurrences before ``after`` are never
    replayed: resuming or opting back in starts from now.
    """
    schedule = schedule_for(patient, min_gap=min_gap)
    upcoming = next_due_by_item(schedule, after=after) if schedule else {}
    for item in patient.plan_items:
        item.next_due_at = before_change(upcoming.get(item.id), patient.plan_changes_at)


def before_change(due: dt.datetime | None, change: dt.datetime | None) -> dt.datetime | None:
    """A due time, or None when it lies at or after the plan's next change."""
    if due is None or change is None or due < change:
        return due
    return None


def is_paused_at(patient: Patient, moment: dt.datetime, *, message: str | None = None) -> bool:
    """True when the patient should get nothing at this instant (checked again at send
    time). A completed patient still gets the message that closes their program."""
    if patient.status is PatientStatus.COMPLETED:
        return message != CLOSING_KIND
    if patient.status is PatientStatus.REMOVED:
        return True
    if patient.status is not PatientStatus.PAUSED:
        return False
    if patient.paused_until is None:
        return True
    return moment.astimezone(ZoneInfo(patient.timezone)).date() < patient.paused_until


# --- programs that end and progress ------------------------------------------------------


@dataclass(frozen=True)
class ProgramState:
    """Where a patient stands in their program on a local day."""

    phase: int | None  # 0-based; None outside a progression
    changes_on: dt.date | None  # the next local day the plan changes by itself
    ended: bool  # the day is past the program's end date


def program_state(
    *, program: Program, start: dt.date, end: dt.date | None, day: dt.date
) -> ProgramState:
    """The phase on ``day`` and the next day the plan changes: a later phase begins, or the
    day after the end date."""
    on = max(day, start)
    phase = program.phase_at(start=start, day=on) if program.phases else None
    changes = [begins for begins in program.phase_starts(start) if begins > on]
    if end is not None:
        changes = [begins for begins in changes if begins <= end]
        changes.append(end + dt.timedelta(days=1))
    return ProgramState(phase, min(changes, default=None), end is not None and day > end)


def local_midnight(day: dt.date, timezone: str) -> dt.datetime:
    """The first instant of a local date, in UTC (a day whose clocks jump at midnight starts
    at the end of the gap)."""
    zone = ZoneInfo(timezone)
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)


def local_today(patient: Patient, now: dt.datetime) -> dt.date:
    return now.astimezone(ZoneInfo(patient.timezone)).date()


def set_program_state(*, patient: Patient, program: Program, now: dt.datetime) -> ProgramState:
    """Record the patient's phase and when their plan next changes, for today."""
    state = program_state(
        program=program,
        start=patient.start_date,
        end=patient.end_date,
        day=local_today(patient, now),
    )
    patient.phase = state.phase
    patient.plan_changes_at = (
        local_midnight(state.changes_on, patient.timezone) if state.changes_on else None
    )
    return state


def plan_item_values(program: Program) -> list[dict[str, Any]]:
    """The plan_items rows of a (tuned) program, by position, without patient or due time."""
    return [
        {
            "position": position,
            "kind": item.kind,
            "every_minutes": item.every_minutes,
            "at_times": [t.strftime("%H:%M") for t in item.at_times] or None,
            "days": list(item.days) if item.days is not None else None,
        }
        for position, item in enumerate(program.items)
    ]


def apply_plan(*, patient: Patient, program: Program) -> None:
    """Make the patient's plan items those of ``program`` (a tuned program with items). An
    item of a kind the patient already has stays the same row, so its reminders stay linked
    to it; items of kinds the program lacks are deleted (their reminders keep their kind)."""
    current = {item.kind: item for item in patient.plan_items}
    items = []
    for values in plan_item_values(program):
        item = current.pop(values["kind"], None) or PlanItem()
        for name, value in values.items():
            setattr(item, name, value)
        items.append(item)
    patient.plan_items = items
    patient.max_per_day = program.max_per_day


def wake_moment(patient: Patient, after: dt.datetime) -> dt.datetime:
    """The first instant at or after ``after`` inside the patient's waking window: when a
    message that is not a reminder (a new phase, the closing one) may go out."""
    zone = ZoneInfo(patient.timezone)
    local = after.astimezone(zone)
    if patient.wake_start <= local.time() <= patient.wake_end:
        return after
    day = local.date() if local.time() < patient.wake_start else local.date() + dt.timedelta(1)
    return dt.datetime.combine(day, patient.wake_start, tzinfo=zone).astimezone(dt.UTC)


def patient_program(patient: Patient, programs_dir: Path | None) -> Program:
    """The patient's program as tuned for them, every phase of it (raises ProgramError when
    the file is gone or no longer takes their tuning)."""
    program = get_program(patient.program_id, programs_dir)
    if not patient.tunings and patient.tuned_max_per_day is None:
        return program
    return tune(program, patient.tunings or (), max_per_day=patient.tuned_max_per_day)


def program_occurrences(
    *,
    patient: Patient,
    program: Program | None,
    start: dt.datetime,
    end: dt.datetime,
    min_gap: dt.timedelta = DEFAULT_MIN_GAP,
) -> list[Occurrence]:
    """The occurrences from ``start`` to ``end`` as the program will run them: a later
    phase's items from local midnight of its first day, nothing after the end date.
    ``program`` is ``patient_program``; without it the current plan goes on to the end."""
    schedule = schedule_for(patient, min_gap=min_gap)
    if schedule is None:
        return []
    found: list[Occurrence] = []
    for begins, ends, phase in _segments(patient, program, start, end):
        phase_schedule = _phase_schedule(schedule, patient, program, phase)
        found.extend(occurrences(phase_schedule, start=begins, end=ends))
    return found


def _segments(
    patient: Patient, program: Program | None, start: dt.datetime, end: dt.datetime
) -> Iterator[tuple[dt.datetime, dt.datetime, int | None]]:
    """``start``..``end`` cut at each phase's first local midnight, each piece with its
    phase; nothing after the end date."""
    if patient.end_date is not None:
        end = min(end, local_midnight(patient.end_date + dt.timedelta(days=1), patient.timezone))
    phase: int | None = None
    cuts: list[tuple[dt.datetime, int]] = []
    if program is not None and program.phases:
        phase = program.phase_at(start=patient.start_date, day=local_today(patient, start))
        starts = program.phase_starts(patient.start_date)
        cuts = [(local_midnight(day, patient.timezone), n) for n, day in enumerate(starts)]
    piece = start
    for at, number in cuts:
        if piece < at < end:
            yield piece, at, phase
            piece, phase = at, number
    if piece < end:
        yield piece, end, phase


def _phase_schedule(
    schedule: PatientSchedule, patient: Patient, program: Program | None, phase: int | None
) -> PatientSchedule:
    """The current phase runs on the patient's own plan items; another phase on its tuned
    program, with stand-in item ids (its plan items do not exist yet)."""
    if program is None or phase is None or phase == patient.phase:
        return schedule
    tuned = program.phase_program(phase)
    rules = tuple(
        ItemRule(
            item_id=-(1000 * (phase + 1) + position),
            kind=item.kind,
            every_minutes=item.every_minutes,
            at_times=item.at_times,
            days=weekday_numbers(item.days),
        )
        for position, item in enumerate(tuned.items)
    )
    return replace(schedule, items=rules, max_per_day=tuned.max_per_day)
