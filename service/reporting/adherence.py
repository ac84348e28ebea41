"""Who keeps up: adherence per patient, per kind of exercise and per week, from the database.

Definitions (the clinic reads these numbers, so they are kept simple and stated once):

- **delivered**: actionable reminders due in the period that went out (``models.went_out``:
  sent or delivered, or merged into a combined message that was, so every kind a combined
  SMS names counts). Only these could have been answered; failed, expired or canceled ones
  never reached anyone.
- **done** / **skipped**: delivered reminders the patient answered DONE / skipped.
- **unanswered**: delivered, no outcome, and due longer ago than the reply window (a DONE can
  still arrive for a reminder inside the window, so it is **pending**, not unanswered).
- **adherence** = done / delivered; ``None`` when nothing was delivered (no data is not 0%).
- **streak**: consecutive local days, counting back from today, on which the patient kept up:
  the day's own adherence (done / delivered that day) reached the threshold. Today counts
  once it qualifies (the day is not over, so a today that does not yet qualify does not end
  the streak). Days on which nothing actionable was delivered (a pause, a rest day of the
  program) are passed over: they neither count nor break the streak.
- **pain trend**: the period's scores (answers to the pain question and PAIN n), the first,
  the latest and their mean, and the least-squares slope in points per week; "improving" at
  -0.5/week or steeper, "worsening" at +0.5/week or steeper.
- **self-reported days**: the period's answers to the weekly check-in ("how many days did
  you do your exercises this week?", 0-7), the latest and their mean: what the patient says,
  beside what the DONE replies show. Questions are not actionable, so they never enter the
  delivered/done figures above.
- **flags**: ``warning_sign`` (a reply classed as a warning sign in the period), ``waiting``
  (a reply still open in the inbox: it needs the clinic and nobody has closed it with
  ``ptnudge replies ack``; the report quotes each one beside the patient),
  ``below_threshold`` (adherence under the threshold, 50% by default), ``silent`` (nothing
  heard for 3+ days although reminders kept going out; a DONE through an email link counts
  as hearing from them).

Counting happens in SQL, grouped by patient, kind and *local* day: a clinic can have
thousands of patients with ten reminders a day each, and the per-day rows are all the
weekly and streak figures need; the database converts to the patient's zone itself
(``service.db.dialects.local_date``).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from service.db.dialects import local_date
from service.models import (
    CheckinAnswer,
    Clinic,
    InboundMessage,
    Outcome,
    PainScore,
    Patient,
    PatientStatus,
    Reminder,
    went_out,
)
from service.replies.parser import Command

DEFAULT_THRESHOLD = 0.5
DEFAULT_DAYS = 28  # four weeks: enough for a trend, short enough to reflect the current plan
DEFAULT_REPLY_WINDOW = dt.timedelta(hours=12)
SILENT_AFTER = dt.timedelta(days=3)
# Recorded reply commands that mean "the clinic should look at this now".
WARNING_COMMANDS = frozenset({Command.WARNING.value})
PAIN_TREND_STEP = 0.5  # points per week before a trend counts as a change


class Flag(enum.StrEnum):
    """Why a patient may need a call, most urgent first."""

    WARNING_SIGN = "warning_sign"
    WAITING = "waiting"
    BELOW_THRESHOLD = "below_threshold"
    SILENT = "silent"


def ratio(done: int, delivered: int) -> float | None:
    return done / delivered if delivered else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclass(frozen=True)
class Counts:
    delivered: int = 0
    done: int = 0
    skipped: int = 0
    unanswered: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            delivered=self.delivered + other.delivered,
            done=self.done + other.done,
            skipped=self.skipped + other.skipped,
            unanswered=self.unanswered + other.unanswered,
        )

    @property
    def adherence(self) -> float | None:
        return ratio(self.done, self.delivered)

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "done": self.done,
            "skipped": self.skipped,
            "unanswered": self.unanswered,
            "adherence": _rounded(self.adherence),
        }


@dataclass(frozen=True)
class KindStats:
    kind: str
    counts: Counts

    @property
    def adherence(self) -> float | None:
        return self.counts.adherence

    def to_dict(self) -> dict[str, Any]:
        return self.counts.to_dict()


@dataclass(frozen=True)
class WeekStats:
    week: str  # ISO week, "2026-W47"
    start: dt.date  # its Monday
    counts: Counts

    @property
    def adherence(self) -> float | None:
        return self.counts.adherence

    def to_dict(self) -> dict[str, Any]:
        return {"week": self.week, "start": self.start.isoformat(), **self.counts.to_dict()}


@dataclass(frozen=True)
class PainPoint:
    at: dt.datetime
    score: int


@dataclass(frozen=True)
class PainTrend:
    points: tuple[PainPoint, ...] = ()

    @property
    def first(self) -> PainPoint | None:
        return self.points[0] if self.points else None

    @property
    def latest(self) -> PainPoint | None:
        return self.points[-1] if self.points else None

    @property
    def mean(self) -> float | None:
        return mean_of([p.score for p in self.points])

    @property
    def slope_per_week(self) -> float | None:
        return pain_slope_per_week(self.points)

    @property
    def direction(self) -> str | None:
        slope = self.slope_per_week
        if slope is None:
            return None
        if slope <= -PAIN_TREND_STEP:
            return "improving"
        if slope >= PAIN_TREND_STEP:
            return "worsening"
        return "steady"

    def to_dict(self) -> dict[str, Any]:
        latest = self.latest
        slope = self.slope_per_week
        first = self.first
        return {
            "latest": latest.score if latest else None,
            "latest_at": _iso(latest.at) if latest else None,
            "count": len(self.points),
            "slope_per_week": None if slope is None else round(slope, 3),
            "direction": self.direction,
            "points": [{"at": _iso(p.at), "score": p.score} for p in self.points],
            "first": first.score if first else None,
            "mean": _mean_rounded(self.mean),
        }


@dataclass(frozen=True)
class CheckinPoint:
    at: dt.datetime
    days: int  # 0-7: days of exercise that week, as the patient tells it


@dataclass(frozen=True)
class SelfReport:
    """The weekly check-in answers of the period, oldest first."""

    points: tuple[CheckinPoint, ...] = ()

    @property
    def latest(self) -> CheckinPoint | None:
        return self.points[-1] if self.points else None

    @property
    def mean(self) -> float | None:
        return mean_of([p.days for p in self.points])

    def to_dict(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "latest": latest.days if latest else None,
            "latest_at": _iso(latest.at) if latest else None,
            "mean": _mean_rounded(self.mean),
            "count": len(self.points),
            "points": [{"at": _iso(p.at), "days": p.days} for p in self.points],
        }


def mean_of(values: Sequence[int]) -> float | None:
    return sum(values) / len(values) if values else None


def _mean_rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@dataclass(frozen=True)
class LastReply:
    at: dt.datetime | None = None
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"at": _iso(self.at), "command": self.command}


@dataclass(frozen=True)
class OpenReply:
    """A reply that needs someone at the clinic and nobody has closed yet (the inbox's open
    replies), quoted beside the patient so that staff read their words with their figures."""

    id: int
    at: dt.datetime
    text: str
    reading: str  # what the parser read it as (free_text, warning_sign, symptom, ...)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": _iso(self.at), "text": self.text, "reading": self.reading}


@dataclass(frozen=True)
class PatientAdherence:
    patient_id: int
    first_name: str
    clinic: str  # the clinic's slug
    counts: Counts
    pending: int  # delivered, no outcome yet, still inside the reply window
    streak: int
    silent_days: int | None  # whole days since we last heard from them; None: nothing to go by
    per_kind: tuple[KindStats, ...]
    weekly: tuple[WeekStats, ...]
    pain: PainTrend
    last_reply: LastReply
    flags: tuple[Flag, ...]
    open_replies: tuple[OpenReply, ...] = ()  # oldest first
    self_reported: SelfReport = field(default_factory=SelfReport)  # weekly check-in answers

    @property
    def delivered(self) -> int:
        return self.counts.delivered

    @property
    def done(self) -> int:
        return self.counts.done

    @property
    def skipped(self) -> int:
        return self.counts.skipped

    @property
    def unanswered(self) -> int:
        return self.counts.unanswered

    @property
    def adherence(self) -> float | None:
        return self.counts.adherence

    def to_dict(self) -> dict[str, Any]:
        return {
            "patient_id": self.patient_id,
            "first_name": self.first_name,
            "clinic": self.clinic,
            **self.counts.to_dict(),
            "pending": self.pending,
            "streak": self.streak,
            "silent_days": self.silent_days,
            "per_kind": {kind.kind: kind.to_dict() for kind in self.per_kind},
            "weekly": [week.to_dict() for week in self.weekly],
            "pain": self.pain.to_dict(),
            "last_reply": self.last_reply.to_dict(),
            "flags": [flag.value for flag in self.flags],
            "open_replies": [reply.to_dict() for reply in self.open_replies],
            "self_reported_days": self.self_reported.to_dict(),
        }


@dataclass(frozen=True)
class Summary:
    patients: int
    average_adherence: float | None  # mean of the patients' adherence: each patient counts once
    needing_call: int  # patients with at least one flag

    def to_dict(self) -> dict[str, Any]:
        return {
            "patients": self.patients,
            "average_adherence": _rounded(self.average_adherence),
            "needing_call": self.needing_call,
        }


@dataclass(frozen=True)
class AdherenceReport:
    """Everything a report shows: the period, the patients (worst first), clinic-wide kinds."""

    title: str  # the clinic's name, or "All clinics"
    since: dt.datetime
    now: dt.datetime
    timezone: str  # the zone the period is shown in
    threshold: float
    patients: tuple[PatientAdherence, ...]
    kinds: tuple[KindStats, ...] = field(default=())
    summary: Summary = field(default_factory=lambda: Summary(0, None, 0))


# --- the public entry points -------------------------------------------------------------


def patient_adherence(
    *,
    session: Session,
    clinic_id: int | None = None,
    since: dt.datetime,
    now: dt.datetime,
    threshold: float = DEFAULT_THRESHOLD,
    reply_window: dt.timedelta = DEFAULT_REPLY_WINDOW,
) -> list[PatientAdherence]:
    """Adherence of every current patient (all clinics, or one), worst first.

    1. Load the patients (removed ones are left out).
    2. Count delivered/done/skipped/unanswered per patient, kind and local day, in SQL.
    3. Load pain scores of the period, the last reply and reply flags per patient.
    4. Fold the day rows into totals, kinds, weeks and the streak; set the flags.
    """
    _require_aware(since=since, now=now)
    patients = _patients(session=session, clinic_id=clinic_id)
    days = _day_counts(
        session=session, clinic_id=clinic_id, since=since, now=now, reply_window=reply_window
    )
    pain = _pain_points(session=session, clinic_id=clinic_id, since=since, now=now)
    checkins = _checkin_points(session=session, clinic_id=clinic_id, since=since, now=now)
    replies = _last_replies(session=session, clinic_id=clinic_id)
    warnings = _warning_counts(session=session, clinic_id=clinic_id, since=since)
    waiting = _open_replies(session=session, clinic_id=clinic_id)
    results = [
        _assemble(
            row=row,
            days=days.get(row.id, []),
            pain=pain.get(row.id, ()),
            checkins=checkins.get(row.id, ()),
            last_reply=replies.get(row.id, LastReply()),
            warnings=warnings.get(row.id, 0),
            open_replies=waiting.get(row.id, ()),
            since=since,
            now=now,
            threshold=threshold,
        )
        for row in patients
    ]
    return sorted(results, key=worst_first)


def build_report(
    *,
    session: Session,
    clinic: Clinic | None = None,
    since: dt.datetime,
    now: dt.datetime,
    threshold: float = DEFAULT_THRESHOLD,
    reply_window: dt.timedelta = DEFAULT_REPLY_WINDOW,
    timezone: str = "UTC",
) -> AdherenceReport:
    """The report for one clinic (in its zone) or for every clinic (in ``timezone``)."""
    patients = patient_adherence(
        session=session,
        clinic_id=clinic.id if clinic else None,
        since=since,
        now=now,
        threshold=threshold,
        reply_window=reply_window,
    )
    return AdherenceReport(
        title=clinic.name if clinic else "All clinics",
        since=since,
        now=now,
        timezone=clinic.timezone if clinic else timezone,
        threshold=threshold,
        patients=tuple(patients),
        kinds=kind_totals(patients),
        summary=summarize(patients),
    )


def period_start(
    day: dt.date | None, *, zone: str, now: dt.datetime, days: int = DEFAULT_DAYS
) -> dt.datetime:
    """Local midnight of ``day`` in ``zone`` (default: ``days`` local days back, today
    included), as UTC. Raises ValueError when that is not before ``now``."""
    tz = ZoneInfo(zone)
    first = day if day is not None else now.astimezone(tz).date() - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time(0), tz)
    if start >= now:
        raise ValueError(f"the period must start before now (it starts on {first})")
    return start.astimezone(dt.UTC)


def worst_first(patient: PatientAdherence) -> tuple[int, float, int, int]:
    """Lowest adherence first; patients with nothing delivered last; more flags first."""
    adherence = patient.adherence
    return (
        adherence is None,
        adherence if adherence is not None else 0.0,
        -len(patient.flags),
        patient.patient_id,
    )


def kind_totals(patients: Iterable[PatientAdherence]) -> tuple[KindStats, ...]:
    """Clinic-wide counts per kind of reminder, by kind name."""
    totals: dict[str, Counts] = defaultdict(Counts)
    for patient in patients:
        for kind in patient.per_kind:
            totals[kind.kind] += kind.counts
    return tuple(KindStats(kind, totals[kind]) for kind in sorted(totals))


def summarize(patients: Sequence[PatientAdherence]) -> Summary:
    values = [p.adherence for p in patients if p.adherence is not None]
    return Summary(
        patients=len(patients),
        average_adherence=sum(values) / len(values) if values else None,
        needing_call=sum(1 for p in patients if p.flags),
    )


def current_streak(
    days: Mapping[dt.date, Counts], *, today: dt.date, first_day: dt.date, threshold: float
) -> int:
    """Consecutive days kept up, back from today (see the module docstring)."""

    def kept_up(counts: Counts) -> bool:
        return counts.delivered > 0 and counts.done >= threshold * counts.delivered

    streak = 0
    day = today if kept_up(days.get(today, Counts())) else today - dt.timedelta(days=1)
    while day >= first_day:
        counts = days.get(day, Counts())
        if counts.delivered:
            if not kept_up(counts):
                break
            streak += 1
        day -= dt.timedelta(days=1)
    return streak


def pain_slope_per_week(points: Sequence[PainPoint]) -> float | None:
    """Least-squares slope of score over time, in points per week; None under two moments."""
    if len(points) < 2:
        return None
    origin = points[0].at
    xs = [(p.at - origin) / dt.timedelta(weeks=1) for p in points]
    ys = [float(p.score) for p in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def iso_weeks(first: dt.date, last: dt.date) -> list[tuple[str, dt.date]]:
    """Every ISO week touching first..last, as (label, Monday)."""
    monday = first - dt.timedelta(days=first.weekday())
    weeks = []
    while monday <= last:
        year, week, _ = monday.isocalendar()
        weeks.append((f"{year}-W{week:02d}", monday))
        monday += dt.timedelta(weeks=1)
    return weeks


# --- queries --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PatientRow:
    id: int
    first_name: str
    timezone: str
    last_reply_at: dt.datetime | None
    clinic_slug: str


@dataclass(frozen=True)
class _DayRow:
    kind: str
    day: dt.date
    counts: Counts
    pending: int
    last_due_at: dt.datetime
    first_due_at: dt.datetime
    last_outcome_at: dt.datetime | None


def _in_scope(clinic_id: int | None) -> list[ColumnElement[bool]]:
    conditions = [Patient.status != PatientStatus.REMOVED]
    if clinic_id is not None:
        conditions.append(Patient.clinic_id == clinic_id)
    return conditions


def _patients(*, session: Session, clinic_id: int | None) -> list[_PatientRow]:
    stmt = (
        select(Patient.id, Patient.first_name, Patient.timezone, Patient.last_reply_at, Clinic.slug)
        .join(Clinic, Clinic.id == Patient.clinic_id)
        .where(*_in_scope(clinic_id))
        .order_by(Patient.id)
    )
    return [_PatientRow(*row) for row in session.execute(stmt)]


def _day_counts(
    *,
    session: Session,
    clinic_id: int | None,
    since: dt.datetime,
    now: dt.datetime,
    reply_window: dt.timedelta,
) -> dict[int, list[_DayRow]]:
    """One row per patient, kind and local day with anything delivered (ix_reminders_patient_due
    narrows each patient's reminders to the period)."""
    stmt = _day_counts_query(
        session=session, clinic_id=clinic_id, since=since, now=now, reply_window=reply_window
    )
    rows: dict[int, list[_DayRow]] = defaultdict(list)
    for patient_id, *counted in session.execute(stmt):
        rows[patient_id].append(_day_row(counted))
    return rows


def _day_counts_query(
    *,
    session: Session,
    clinic_id: int | None,
    since: dt.datetime,
    now: dt.datetime,
    reply_window: dt.timedelta,
) -> Select[Any]:
    day = local_date(Reminder.due_at, Patient.timezone, session=session).label("day")
    no_outcome = Reminder.outcome.is_(None)
    answerable_until = now - reply_window
    return (
        select(
            Reminder.patient_id,
            Reminder.kind,
            day,
            func.count(),
            _count_if(Reminder.outcome == Outcome.DONE),
            _count_if(Reminder.outcome == Outcome.SKIPPED),
            _count_if(and_(no_outcome, Reminder.due_at < answerable_until)),
            _count_if(and_(no_outcome, Reminder.due_at >= answerable_until)),
            func.max(Reminder.due_at),
            func.min(Reminder.due_at),
            func.max(Reminder.outcome_at),
        )
        .join(Patient, Patient.id == Reminder.patient_id)
        .where(
            *_in_scope(clinic_id),
            Reminder.actionable.is_(True),
            went_out(),
            Reminder.due_at >= since,
            Reminder.due_at <= now,
        )
        .group_by(Reminder.patient_id, Reminder.kind, day)
    )


def _day_row(row: Sequence[Any]) -> _DayRow:
    """A row of ``_day_counts_query``, after the patient id."""
    kind, day, total, done, skipped, unanswered, pending, last_due, first_due, last_outcome = row
    return _DayRow(
        kind=kind,
        day=day,
        counts=Counts(total, int(done), int(skipped), int(unanswered)),
        pending=int(pending),
        last_due_at=last_due,
        first_due_at=first_due,
        last_outcome_at=last_outcome,
    )


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _pain_points(
    *, session: Session, clinic_id: int | None, since: dt.datetime, now: dt.datetime
) -> dict[int, tuple[PainPoint, ...]]:
    columns = (PainScore.patient_id, PainScore.recorded_at, PainScore.score, PainScore.id)
    found = _series(session, columns, clinic_id=clinic_id, since=since, now=now)
    return {pid: tuple(PainPoint(at, score) for at, score in rows) for pid, rows in found.items()}


def _checkin_points(
    *, session: Session, clinic_id: int | None, since: dt.datetime, now: dt.datetime
) -> dict[int, tuple[CheckinPoint, ...]]:
    columns = (
        CheckinAnswer.patient_id,
        CheckinAnswer.received_at,
        CheckinAnswer.days,
        CheckinAnswer.id,
    )
    found = _series(session, columns, clinic_id=clinic_id, since=since, now=now)
    return {pid: tuple(CheckinPoint(at, days) for at, days in rows) for pid, rows in found.items()}


_SeriesColumns = tuple[
    InstrumentedAttribute[int],
    InstrumentedAttribute[dt.datetime],
    InstrumentedAttribute[int],
    InstrumentedAttribute[int],
]


def _series(
    session: Session,
    columns: _SeriesColumns,
    *,
    clinic_id: int | None,
    since: dt.datetime,
    now: dt.datetime,
) -> dict[int, list[tuple[dt.datetime, int]]]:
    """(moment, value) per patient in the period, oldest first, from a table of answers
    given as its (patient id, moment, value, id) columns."""
    patient_id, at, value, row_id = columns
    stmt = (
        select(patient_id, at, value)
        .join(Patient, Patient.id == patient_id)
        .where(*_in_scope(clinic_id), at >= since, at <= now)
        .order_by(patient_id, at, row_id)
    )
    found: dict[int, list[tuple[dt.datetime, int]]] = defaultdict(list)
    for pid, moment, number in session.execute(stmt):
        found[pid].append((moment, number))
    return found


def _last_replies(*, session: Session, clinic_id: int | None) -> dict[int, LastReply]:
    """Each patient's latest inbound message (a window function: one pass over the index)."""
    rank = (
        func.row_number()
        .over(
            partition_by=InboundMessage.patient_id,
            order_by=(InboundMessage.received_at.desc(), InboundMessage.id.desc()),
        )
        .label("rank")
    )
    latest = (
        select(
            Patient.id.label("patient_id"), InboundMessage.received_at, InboundMessage.command, rank
        )
        .join(Patient, Patient.id == InboundMessage.patient_id)
        .where(*_in_scope(clinic_id))
        .subquery()
    )
    stmt = select(latest.c.patient_id, latest.c.received_at, latest.c.command).where(
        latest.c.rank == 1
    )
    return {pid: LastReply(at, command) for pid, at, command in session.execute(stmt)}


def _warning_counts(
    *, session: Session, clinic_id: int | None, since: dt.datetime
) -> dict[int, int]:
    """Per patient: warning-sign replies in the period."""
    stmt = (
        select(Patient.id, func.count())
        .select_from(InboundMessage)
        .join(Patient, Patient.id == InboundMessage.patient_id)
        .where(
            *_in_scope(clinic_id),
            InboundMessage.command.in_(WARNING_COMMANDS),
            InboundMessage.received_at >= since,
        )
        .group_by(Patient.id)
    )
    return {pid: int(count) for pid, count in session.execute(stmt)}


def _open_replies(*, session: Session, clinic_id: int | None) -> dict[int, tuple[OpenReply, ...]]:
    """Per patient: the replies still open in the inbox, of any age (waiting is waiting,
    until staff close it with ``ptnudge replies ack``), oldest first."""
    stmt = (
        select(
            Patient.id,
            InboundMessage.id,
            InboundMessage.received_at,
            InboundMessage.body,
            InboundMessage.command,
        )
        .join(Patient, Patient.id == InboundMessage.patient_id)
        .where(
            *_in_scope(clinic_id),
            InboundMessage.open,
        )
        .order_by(InboundMessage.received_at, InboundMessage.id)
    )
    found: dict[int, list[OpenReply]] = defaultdict(list)
    for pid, reply_id, at, body, command in session.execute(stmt):
        found[pid].append(OpenReply(reply_id, at, body, command))
    return {pid: tuple(replies) for pid, replies in found.items()}


# --- folding day rows into one patient's figures -----------------------------------------


def _assemble(
    *,
    row: _PatientRow,
    days: Sequence[_DayRow],
    pain: tuple[PainPoint, ...],
    checkins: tuple[CheckinPoint, ...],
    last_reply: LastReply,
    warnings: int,
    open_replies: tuple[OpenReply, ...],
    since: dt.datetime,
    now: dt.datetime,
    threshold: float,
) -> PatientAdherence:
    zone = ZoneInfo(row.timezone)
    today, first_day = now.astimezone(zone).date(), since.astimezone(zone).date()
    by_day: dict[dt.date, Counts] = defaultdict(Counts)
    by_kind: dict[str, Counts] = defaultdict(Counts)
    for day_row in days:
        by_day[day_row.day] += day_row.counts
        by_kind[day_row.kind] += day_row.counts
    counts = sum(by_kind.values(), Counts())
    silent_days, sent_since = _silence(row=row, days=days, last_reply=last_reply, now=now)
    flags = _flags(
        adherence=counts.adherence,
        threshold=threshold,
        silent=sent_since and silent_days is not None and silent_days >= SILENT_AFTER.days,
        warnings=warnings,
        waiting=len(open_replies),
    )
    return PatientAdherence(
        patient_id=row.id,
        first_name=row.first_name,
        clinic=row.clinic_slug,
        counts=counts,
        pending=sum(day_row.pending for day_row in days),
        streak=current_streak(by_day, today=today, first_day=first_day, threshold=threshold),
        silent_days=silent_days,
        per_kind=tuple(KindStats(kind, by_kind[kind]) for kind in sorted(by_kind)),
        weekly=_weekly(by_day, first_day=first_day, last_day=today),
        pain=PainTrend(pain),
        last_reply=last_reply,
        flags=flags,
        open_replies=open_replies,
        self_reported=SelfReport(checkins),
    )


def _weekly(
    by_day: Mapping[dt.date, Counts], *, first_day: dt.date, last_day: dt.date
) -> tuple[WeekStats, ...]:
    """Every week of the period, empty ones included, so patients' charts line up."""
    weeks = []
    for label, monday in iso_weeks(first_day, last_day):
        week_days = (monday + dt.timedelta(days=offset) for offset in range(7))
        total = sum((by_day.get(day, Counts()) for day in week_days), Counts())
        weeks.append(WeekStats(label, monday, total))
    return tuple(weeks)


def _silence(
    *, row: _PatientRow, days: Sequence[_DayRow], last_reply: LastReply, now: dt.datetime
) -> tuple[int | None, bool]:
    """Whole days since we last heard from the patient (a reply or an answered reminder), and
    whether that silence counts: only while reminders kept going out after it (a paused
    patient is quiet, not silent). Never heard from: counted from the period's first
    delivered reminder; nothing heard and nothing sent: None.
    """
    heard = [t for t in (row.last_reply_at, last_reply.at) if t is not None]
    heard += [d.last_outcome_at for d in days if d.last_outcome_at is not None]
    last_heard = max(heard) if heard else None
    if last_heard is None and not days:
        return None, False
    start = last_heard if last_heard is not None else min(d.first_due_at for d in days)
    silent_days = max((now - start) // dt.timedelta(days=1), 0)
    sent_since = any(last_heard is None or d.last_due_at > last_heard for d in days)
    return silent_days, sent_since


def _flags(
    *,
    adherence: float | None,
    threshold: float,
    silent: bool,
    warnings: int,
    waiting: int,
) -> tuple[Flag, ...]:
    flags = []
    if warnings:
        flags.append(Flag.WARNING_SIGN)
    if waiting:
        flags.append(Flag.WAITING)
    if adherence is not None and adherence < threshold:
        flags.append(Flag.BELOW_THRESHOLD)
    if silent:
        flags.append(Flag.SILENT)
    return tuple(flags)


def _require_aware(**moments: dt.datetime) -> None:
    for name, moment in moments.items():
        if moment.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
