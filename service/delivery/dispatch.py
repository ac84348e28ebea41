"""The dispatcher: turn due plan items into reminder rows, once.

One pass (``ptnudge tick``; beat runs it every ``PTNUDGE_TICK_SECONDS``):

1. Claim due plan items in a batch (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the
   transaction began with ``BEGIN IMMEDIATE``, which serialises dispatchers).
2. For each claimed patient, take in their other items due less than the minimum gap after
   the first due one, so that reminders close together leave as one message (the scheduler's
   ``group_close``: the same messages the preview shows and the daily limit counts). Items
   in the look-ahead that would start a message of their own stay for their own time.
3. Write one reminder row per occurrence and channel. The unique key (plan item, due time,
   channel) makes a second dispatcher or a re-run a no-op. Occurrences missed while the
   system was down are written as ``expired``; at most the latest one of a run is sent.
4. Advance each item's next due time, and queue one-off reminders (snoozes, welcomes) that
   came due.
5. Return the ids to send. The caller commits first and enqueues after: a send task never
   sees a reminder that is not in the database yet.

Look-ahead: with ``DispatchRules.ahead`` (beat's pass uses one tick period) a pass also claims
what falls due before ``now + ahead`` and returns when each of those is due
(``DispatchResult.send_at``), so the caller can hand it to the worker to leave at its own
instant instead of waiting for the next pass. Such a reminder is ``queued`` with
``queued_at`` at its due time: the sweeper counts its wait from then, not from the claim.
Everything that can change before the due instant (opt-out, pause, completion, the waking
window) is checked again by the send task when it is due; the send task never sends early.

Its cost follows the number of due items, not the number of patients (an idle pass is one
probe, ``ticking.pending``), and per due item it is mostly the database's: claimed patients
are read as plain rows (``due``), patients whose plans differ only in their item ids share
one computation of what is due and when it is next due (``_PlanWork``: a program's patients
due in the same minute are one computation, not thousands), reminders go in with the bulk
loader (COPY, then one ``INSERT … SELECT … ON CONFLICT DO NOTHING``), and next due times
move with one UPDATE per distinct pair of times.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Select, Table, bindparam, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from service.db.dialects import among, bulk_loader, for_update_skip_locked
from service.delivery.due import DueItem, DuePatient, item_ids, load_due, plan_key, ranked
from service.delivery.rendering import QUESTION_KINDS
from service.enrollment.optouts import (
    Addressed,
    Key,
    listed,
    opted_out_among,
    patient_addresses,
)
from service.enrollment.plans import schedule_for
from service.enrollment.scheduling import (
    Occurrence,
    PatientSchedule,
    WakingWindow,
    day_occurrences,
    group_close,
    may_send_at,
    next_due_by_item,
    next_waking_minute,
    occurrences,
    travels_with,
)
from service.models import (
    Channel,
    ChannelChoice,
    Patient,
    PlanItem,
    Reminder,
    ReminderStatus,
)

# Written and read by Core, not through the ORM (see ``due``): the tables themselves.
_REMINDERS = cast("Table", Reminder.__table__)
_PLAN_ITEMS = cast("Table", PlanItem.__table__)

# A plan item due longer ago than this has missed occurrences that are only written as
# expired, newest first, up to this many: enough for the record, bounded after long outages.
MAX_MISSED_ROWS_PER_ITEM = 48


@dataclass(frozen=True)
class DispatchRules:
    stale_after: dt.timedelta
    min_gap: dt.timedelta
    batch_size: int
    ahead: dt.timedelta = dt.timedelta(0)  # claim what falls due this much after now


@dataclass
class DispatchResult:
    claimed: int = 0
    items: int = 0
    created: int = 0
    expired: int = 0
    merged: int = 0
    to_send: list[int] = field(default_factory=list)
    # When each id of ``to_send`` that was claimed ahead falls due (absent: due already).
    send_at: dict[int, dt.datetime] = field(default_factory=dict)


def dispatch_due(
    *, session: Session, rules: DispatchRules, now: dt.datetime, one_offs: bool = True
) -> DispatchResult:
    """One dispatcher pass inside the caller's transaction (see the module docstring).
    ``one_offs=False``: the caller knows no one-off message is due, and the claim for them
    is skipped."""
    result = DispatchResult()
    until = now + rules.ahead
    # Oldest first: under a backlog the longest-waiting items go before the newly due.
    due = select(PlanItem.id).where(PlanItem.next_due_at <= until).order_by(PlanItem.next_due_at)
    claimed = _claim(session, due, rules)
    result.claimed = len(claimed)
    if claimed:
        patients = load_due(session, claimed)
        addresses = [a for p in patients for a in patient_addresses(p)]
        opted_out = opted_out_among(session=session, addresses=addresses)
        first_out = first_reminders_out(session=session, patients=patients, now=now)
        run = _Pass(session, rules, now, until, opted_out, first_out, result)
        for patient in patients:
            run.dispatch_patient(patient)
        # One multi-row INSERT … RETURNING for the whole batch, not one per patient.
        _insert(session, run.rows, {p.id: p for p in patients}, rules, result, now=now)
        _store_advances(session, run.advances)
        _clear_due(session, run.cleared)
    if one_offs:
        result.to_send.extend(_queue_one_offs(session, rules, now, result))
    return result


def _claim(session: Session, query: Select[Any], rules: DispatchRules) -> list[int]:
    query = for_update_skip_locked(query.limit(rules.batch_size), session=session)
    return list(session.scalars(query))


class Contact(Addressed, Protocol):
    """What ``channels_for`` reads of a patient: a ``Patient`` or the dispatcher's row."""

    @property
    def channel(self) -> ChannelChoice: ...
    @property
    def phone_invalid_code(self) -> str | None: ...


def channels_for(patient: Contact, opted_out: set[Key]) -> list[tuple[Channel, str]]:
    """The channels a reminder can still go out on, with the address for each."""
    found = []
    for channel in patient.channel.channels():
        address = patient.phone if channel is Channel.SMS else patient.email
        if channel is Channel.SMS and patient.phone_invalid_code:
            continue
        if address and not listed(opted_out, channel, address):
            found.append((channel, address))
    return found


def channels_for_kind(kind: str, channels: list[tuple[Channel, str]]) -> list[tuple[Channel, str]]:
    """A question is answered with a number by text: it goes out by SMS only."""
    if kind not in QUESTION_KINDS:
        return channels
    return [channel for channel in channels if channel[0] is Channel.SMS]


@dataclass(frozen=True)
class _PlanWork:
    """What a pass does for one plan with its items' due times, computed once for every
    patient who shares them (``due.plan_key``), in the plan's own item numbers
    (``due.ranked``)."""

    schedule: PatientSchedule | None  # None: the patient gets nothing (paused, ended)
    due: int  # items due by the look-ahead
    missed: list[Occurrence]  # written as expired
    groups: list[list[Occurrence]]  # the messages that start by the end of the claimed span
    # Items that move on: (item, due time as claimed, next due time).
    moves: list[tuple[int, dt.datetime | None, dt.datetime | None]]


@dataclass
class _Pass:
    session: Session
    rules: DispatchRules
    now: dt.datetime
    until: dt.datetime  # claimed: due by this instant (now, plus the look-ahead)
    opted_out: set[Key]
    first_out: dict[int, dt.datetime]
    result: DispatchResult
    rows: list[tuple[object, ...]] = field(default_factory=list)  # in ``_ROW_COLUMNS``
    advances: list[tuple[int, dt.datetime | None, dt.datetime | None]] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)  # items of patients who get nothing
    plans: dict[Hashable, _PlanWork] = field(default_factory=dict)

    def dispatch_patient(self, patient: DuePatient) -> None:
        key = plan_key(patient)
        if key not in self.plans:
            self.plans[key] = self.plan_work(patient)
        work = self.plans[key]
        ids = item_ids(patient)
        if work.schedule is None:
            self.cleared.extend(ids)
            return
        self.result.items += work.due
        channels = channels_for(patient, self.opted_out)
        rows = [
            _row(
                patient, ids[occ.item_id], occ, channel, status=ReminderStatus.EXPIRED, now=self.now
            )
            for occ in work.missed
            for channel in channels_for_kind(occ.kind, channels)
        ]
        self.result.expired += len(rows)
        quiet = Engagement.for_patient(
            self.session, patient, work.schedule, self.now, first_out=self.first_out.get(patient.id)
        )
        for group in work.groups:
            stale = self.now - group[0].due_at > self.rules.stale_after
            status = (
                ReminderStatus.EXPIRED if stale else quiet.admit(self, patient, channels, group)
            )
            rows.extend(
                _row(patient, ids[o.item_id], o, channel, status=status, now=self.now)
                for o in group
                for channel in channels_for_kind(o.kind, channels)
            )
        self.rows.extend(rows)
        self.advances.extend((ids[item], last, upcoming) for item, last, upcoming in work.moves)

    def plan_work(self, patient: DuePatient) -> _PlanWork:
        """1. The occurrences due by the look-ahead, the one to send of each item and the
           missed ones before it.
        2. Grouped into messages; one that starts after the claimed span goes at its own
           time, on a later pass, with everything in it.
        3. The next due time of every other due item: past what travelled in this pass's
           messages, the minimum gap after the last one (after now, when all of them were
           due already), not after the look-ahead."""
        items = ranked(patient)
        schedule = schedule_for(patient, items, min_gap=self.rules.min_gap)
        if schedule is None:
            return _PlanWork(None, 0, [], [], [])
        lookahead = self.until + self.rules.min_gap
        due_items = [
            item for item in items if item.next_due_at is not None and item.next_due_at <= lookahead
        ]
        current, missed = _occurrences_due(schedule, due_items, self.until, lookahead)
        groups = group_close(current, gap=self.rules.min_gap)
        now_groups = [group for group in groups if group[0].due_at <= self.until]
        later = {occ.item_id for group in groups if group[0].due_at > self.until for occ in group}
        heads = [group[0].due_at for group in now_groups]
        after = max([self.now, *heads]) + self.rules.min_gap
        upcoming = next_due_by_item(schedule, after=after)
        moves = [
            (item.id, item.next_due_at, upcoming.get(item.id))
            for item in due_items
            if item.id not in later
        ]
        return _PlanWork(schedule, len(due_items), missed, now_groups, moves)

    def add_system_message(
        self, patient: DuePatient, kind: str, channels: list[tuple[Channel, str]]
    ) -> None:
        for channel, address in channels:
            reminder = Reminder(
                patient_id=patient.id,
                kind=kind,
                channel=channel,
                actionable=False,
                due_at=self.now,
                status=ReminderStatus.QUEUED,
                status_at=self.now,
                queued_at=self.now,
                to_address=address,
            )
            self.session.add(reminder)
            self.session.flush()
            self.result.to_send.append(reminder.id)


SILENT_AFTER = dt.timedelta(days=3)
BACKOFF_DETAIL = "back-off: no reply for 3 days"


@dataclass
class Engagement:
    """Back-off for a patient who has answered nothing for three days since their first
    reminder went out: one re-engagement message, then one reminder a day, its kind in turn,
    until any reply restores the program."""

    silent: bool
    reengaged: bool = False
    sent_today: int = 0
    kind_today: str | None = None  # the kind of the day's one reminder

    @classmethod
    def for_patient(
        cls,
        session: Session,
        patient: DuePatient,
        schedule: PatientSchedule,
        now: dt.datetime,
        *,
        first_out: dt.datetime | None,
    ) -> Engagement:
        """1. Silent: three days without a reply, counted from the later of the last reply
           and the first reminder that went out (none out yet: not silent).
        2. Whether the re-engagement message was sent since.
        3. How many reminders are out today, and which kind today's one is."""
        heard = _last_heard(patient, first_out, now)
        if heard is None or now - heard < SILENT_AFTER:
            return cls(silent=False)
        zone = ZoneInfo(patient.timezone)
        today = now.astimezone(zone).date()
        silent_days = (today - (heard + SILENT_AFTER).astimezone(zone).date()).days
        return cls(
            silent=True,
            reengaged=_reengaged_since(session, patient, heard),
            sent_today=_sent_today(session, patient, today, zone),
            kind_today=backoff_kind(
                schedule=schedule, items=patient.plan_items, day=today, turn=silent_days
            ),
        )

    def admit(
        self,
        run: _Pass,
        patient: DuePatient,
        channels: list[tuple[Channel, str]],
        group: Sequence[Occurrence],
    ) -> ReminderStatus:
        """The status for the next group of reminders: queued, or canceled by the back-off
        (the first silent group is replaced by one re-engagement message)."""
        if not self.silent:
            return ReminderStatus.QUEUED
        if not self.reengaged:
            self.reengaged = True
            run.add_system_message(patient, "reengage", channels)
            return ReminderStatus.CANCELED
        wanted = self.kind_today is None or any(o.kind == self.kind_today for o in group)
        if self.sent_today == 0 and wanted:
            self.sent_today = 1
            return ReminderStatus.QUEUED
        return ReminderStatus.CANCELED


def backoff_kind(
    *, schedule: PatientSchedule, items: Sequence[DueItem], day: dt.date, turn: int
) -> str | None:
    """The kind of a backed-off patient's one reminder on ``day``, the ``turn``-th day of
    silence: the program's kinds in turn, the exercises (fixed sessions) before the position
    changes (repeating nudges), so that one a day does not always land on the day's first
    nudge. A kind with nothing that day passes its turn to the next."""
    # A question is no exercise: the one reminder of the day is never one.
    exercises = [item for item in items if item.kind not in QUESTION_KINDS]
    ordered = sorted(exercises, key=lambda item: (item.every_minutes is not None, item.position))
    kinds = list(dict.fromkeys(item.kind for item in ordered))
    that_day = {occurrence.kind for occurrence in day_occurrences(schedule, day)}
    for step in range(len(kinds)):
        kind = kinds[(turn + step) % len(kinds)]
        if kind in that_day:
            return kind
    return None


def _answered_lately(patient: DuePatient, now: dt.datetime) -> bool:
    return patient.last_reply_at is not None and now - patient.last_reply_at < SILENT_AFTER


def first_reminders_out(
    *, session: Session, patients: Sequence[DuePatient], now: dt.datetime
) -> dict[int, dt.datetime]:
    """When each patient's first reminder went out, in one query for the whole batch (one
    query per patient was half the cost of a pass). Patients who answered lately are left
    out: their back-off needs no history."""
    ids = [patient.id for patient in patients if not _answered_lately(patient, now)]
    if not ids:
        return {}
    first = (
        select(Reminder.sent_at)
        .where(
            Reminder.patient_id == Patient.id,
            Reminder.actionable.is_(True),
            Reminder.sent_at.is_not(None),
        )
        .order_by(Reminder.due_at)  # ix_reminders_patient_due: stops at the first one
        .limit(1)
        .correlate(Patient)
        .scalar_subquery()
    )
    patients_among = among(Patient.id, ids, session=session)
    rows = session.execute(select(Patient.id, first).where(patients_among)).all()
    return {patient_id: sent for patient_id, sent in rows if sent is not None}


def _last_heard(
    patient: DuePatient, first_out: dt.datetime | None, now: dt.datetime
) -> dt.datetime | None:
    """The later of the last reply and the first reminder that went out; None while no
    reminder has gone out (a patient who starts next week is not silent this week)."""
    if _answered_lately(patient, now):
        return patient.last_reply_at
    if first_out is None:
        return None
    return max(first_out, patient.last_reply_at or first_out)


def _reengaged_since(session: Session, patient: DuePatient, heard: dt.datetime) -> bool:
    found = session.scalar(
        select(Reminder.id)
        .where(
            Reminder.patient_id == patient.id,
            Reminder.kind == "reengage",
            Reminder.due_at > heard,
        )
        .limit(1)
    )
    return found is not None


def _sent_today(session: Session, patient: DuePatient, today: dt.date, zone: ZoneInfo) -> int:
    local_midnight = dt.datetime.combine(today, dt.time(0), zone)
    count = session.scalar(
        select(func.count())
        .select_from(Reminder)
        .where(
            Reminder.patient_id == patient.id,
            Reminder.actionable.is_(True),
            Reminder.due_at >= local_midnight,
            Reminder.status.in_(_SENT_OR_GOING),
        )
    )
    return count or 0


_SENT_OR_GOING = (
    ReminderStatus.QUEUED,
    ReminderStatus.SENDING,
    ReminderStatus.SENT,
    ReminderStatus.DELIVERED,
)


def _occurrences_due(
    schedule: PatientSchedule,
    items: Sequence[DueItem],
    due_by: dt.datetime,
    lookahead: dt.datetime,
) -> tuple[list[Occurrence], list[Occurrence]]:
    """Split each item's occurrences since its due time into the one to send (the latest
    due by ``due_by``, or the next within the look-ahead) and the missed ones before it."""
    current: list[Occurrence] = []
    missed: list[Occurrence] = []
    if not items:
        return current, missed
    start = min(item.next_due_at for item in items if item.next_due_at is not None)
    found = occurrences(schedule, start=start, end=lookahead + dt.timedelta(microseconds=1))
    wanted = {item.id: item.next_due_at for item in items}
    by_item: dict[int, list[Occurrence]] = defaultdict(list)
    for occ in found:
        due = wanted.get(occ.item_id)
        if due is not None and occ.due_at >= due:
            by_item[occ.item_id].append(occ)
    for item_occurrences in by_item.values():
        past = [occ for occ in item_occurrences if occ.due_at <= due_by]
        # Send the latest one due by then, else the first inside the look-ahead (merged into
        # a message that is going out now).
        send = past[-1] if past else item_occurrences[0]
        current.append(send)
        missed.extend(past[:-1][-MAX_MISSED_ROWS_PER_ITEM:])
    return current, missed


_ROW_COLUMNS = (
    "patient_id",
    "plan_item_id",
    "kind",
    "channel",
    "actionable",
    "due_at",
    "status",
    "status_at",
    "queued_at",
    "error_detail",
    "to_address",
    "attempts",
)


def _row(
    patient: DuePatient,
    item_id: int,
    occ: Occurrence,
    channel: tuple[Channel, str],
    *,
    status: ReminderStatus,
    now: dt.datetime,
) -> tuple[object, ...]:
    """The reminder row (``_ROW_COLUMNS``) of an occurrence of the plan shared with others
    (``occ.item_id`` is the plan's number for the item), for the patient's own ``item_id``."""
    return (
        patient.id,
        item_id,
        occ.kind,
        channel[0],
        occ.kind not in QUESTION_KINDS,  # actionable: a question asks for a number, not DONE
        occ.due_at,
        status,
        now,
        # Claimed ahead: its wait (the sweeper's clock) starts when it is due.
        max(now, occ.due_at) if status is ReminderStatus.QUEUED else None,
        BACKOFF_DETAIL if status is ReminderStatus.CANCELED else None,
        channel[1],
        0,
    )


Member = tuple[int, int | None, dt.datetime]  # a reminder inserted: id, plan item, due time


def _insert(
    session: Session,
    rows: list[tuple[object, ...]],
    patients: dict[int, DuePatient],
    rules: DispatchRules,
    result: DispatchResult,
    *,
    now: dt.datetime,
) -> None:
    """Insert what is not there yet, then merge each group's members into its first row."""
    if not rows:
        return
    inserted = _insert_new(session, rows)
    result.created += len(inserted)
    by_patient: dict[tuple[int, Channel], list[Member]] = defaultdict(list)
    for reminder_id, patient_id, item_id, due_at, status, channel in inserted:
        if status is ReminderStatus.QUEUED:
            by_patient[patient_id, channel].append((reminder_id, item_id, due_at))
    merges: list[dict[str, int]] = []
    for (patient_id, _channel), members in by_patient.items():
        _group(members, patients[patient_id], rules, result, merges, now=now)
    _merge(session, merges, result)


def _group(
    members: list[Member],
    patient: DuePatient,
    rules: DispatchRules,
    result: DispatchResult,
    merges: list[dict[str, int]],
    *,
    now: dt.datetime,
) -> None:
    """Members of one patient and channel: those due within the minimum gap of a group's
    first leave as one message (the first), the others are merged into it."""
    groups = [members] if len(members) == 1 else _close_groups(members, patient, rules)
    for head, *rest in groups:
        result.to_send.append(head[0])
        if head[2] > now:
            result.send_at[head[0]] = head[2]  # claimed ahead: it leaves at its own instant
        merges.extend({"member": member[0], "head": head[0]} for member in rest)


def _close_groups(
    members: list[Member], patient: DuePatient, rules: DispatchRules
) -> list[list[Member]]:
    positions: dict[int | None, int] = {item.id: item.position for item in patient.plan_items}
    # A question leaves on its own: a combined message asks for DONE, a question for a number.
    asks = {item.id for item in patient.plan_items if item.kind in QUESTION_KINDS}
    members.sort(key=lambda m: (m[2], positions.get(m[1], 0)))
    groups: list[list[Member]] = []
    for member in members:
        last = groups[-1] if groups else None
        if (
            last is not None
            and last[0][1] not in asks
            and member[1] not in asks
            and travels_with(last[0][2], member[2], gap=rules.min_gap)
        ):
            groups[-1].append(member)
        else:
            groups.append([member])
    return groups


_MERGE = (
    update(_REMINDERS)
    .where(_REMINDERS.c.id == bindparam("member"))
    .values(status=ReminderStatus.MERGED, merged_into_id=bindparam("head"))
)


def _merge(session: Session, merges: list[dict[str, int]], result: DispatchResult) -> None:
    """Fold reminders into the first of their group: one message names them all (their
    kinds are read back through ``merged_into_id``, see ``messages.merged_kinds``). One
    executemany for the whole batch."""
    if merges:
        session.execute(_MERGE, merges)
        result.merged += len(merges)


def _insert_new(
    session: Session, rows: list[tuple[object, ...]]
) -> list[tuple[int, int, int | None, dt.datetime, ReminderStatus, Channel]]:
    # Core on the table, as the database takes many rows fastest (COPY on PostgreSQL): the
    # ORM's bulk INSERT, and psycopg parsing a multi-row INSERT's thousands of parameters,
    # cost far more Python per row than the server takes to store it.
    found = bulk_loader(session).insert_new(
        session,
        _REMINDERS,
        _ROW_COLUMNS,
        rows,
        unique=("plan_item_id", "due_at", "channel"),
        returning=(
            _REMINDERS.c.id,
            _REMINDERS.c.patient_id,
            _REMINDERS.c.plan_item_id,
            _REMINDERS.c.due_at,
            _REMINDERS.c.status,
            _REMINDERS.c.channel,
        ),
    )
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in found]


def _store_advances(
    session: Session, moves: list[tuple[int, dt.datetime | None, dt.datetime | None]]
) -> None:
    """Move each item to its next due time: one UPDATE per distinct pair of times, since
    the patients of a program due in one minute move together (a batch is one statement or
    a few, not one per item)."""
    by_times: dict[tuple[dt.datetime | None, dt.datetime | None], list[int]] = defaultdict(list)
    for item_id, last, upcoming in moves:
        by_times[last, upcoming].append(item_id)
    for (last, upcoming), ids in by_times.items():
        session.execute(
            update(_PLAN_ITEMS)
            .where(among(_PLAN_ITEMS.c.id, ids, session=session))
            .values(last_due_at=last, next_due_at=upcoming)
        )
        _loaded_items_see(session, ids, last_due_at=last, next_due_at=upcoming)


def _clear_due(session: Session, item_ids: list[int]) -> None:
    """Nothing is due for patients who get nothing (paused without end, ended)."""
    if item_ids:
        session.execute(
            update(_PLAN_ITEMS)
            .where(among(_PLAN_ITEMS.c.id, item_ids, session=session))
            .values(next_due_at=None)
        )
        _loaded_items_see(session, item_ids, next_due_at=None)


def _loaded_items_see(session: Session, item_ids: list[int], **values: object) -> None:
    """Plan items this session has loaded as objects (the tick's programs step, a caller's
    own) take the values just stored by Core, as stored: marked dirty instead, the ORM
    would write them again."""
    if not session.identity_map:
        return
    for item_id in item_ids:
        item = session.identity_map.get(identity_key(PlanItem, item_id))
        if item is not None:
            for name, value in values.items():
                set_committed_value(item, name, value)


def _ready_to_go(session: Session, ids: list[int], now: dt.datetime) -> list[int]:
    """The one-offs that may go out now; the others move to their next waking minute.

    Snoozes (actionable) are only ever scheduled inside the window, and the send path
    expires one that drifted out of it, as it does any planned reminder."""
    if not ids:
        return []
    rows = session.execute(
        select(Reminder.id, Reminder.actionable, Patient.timezone, Patient.wake_start)
        .add_columns(Patient.wake_end)
        .join(Patient, Patient.id == Reminder.patient_id)
        .where(Reminder.id.in_(ids))
    ).all()
    ready = []
    for reminder_id, actionable, timezone, wake_start, wake_end in rows:
        window = WakingWindow(timezone, wake_start, wake_end)
        if actionable or may_send_at(window, now):
            ready.append(reminder_id)
            continue
        waking = next_waking_minute(window, after=now)
        session.execute(update(Reminder).where(Reminder.id == reminder_id).values(due_at=waking))
    return ready


def _queue_one_offs(
    session: Session, rules: DispatchRules, now: dt.datetime, result: DispatchResult
) -> list[int]:
    """Scheduled one-off messages (welcome, snooze) that came due: queue, or expire if stale.
    A message outside the patient's waking window waits for its next waking minute."""
    ids = _claim(
        session,
        select(Reminder.id).where(
            Reminder.status == ReminderStatus.SCHEDULED, Reminder.due_at <= now
        ),
        rules,
    )
    ids = _ready_to_go(session, ids, now)
    if not ids:
        return []
    stale_before = now - rules.stale_after
    expired = (
        session.execute(
            update(Reminder)
            .where(Reminder.id.in_(ids), Reminder.due_at < stale_before)
            .values(status=ReminderStatus.EXPIRED, status_at=now)
            .returning(Reminder.id)
        )
        .scalars()
        .all()
    )
    result.expired += len(expired)
    fresh = [i for i in ids if i not in set(expired)]
    if fresh:
        session.execute(
            update(Reminder)
            .where(Reminder.id.in_(fresh))
            .values(status=ReminderStatus.QUEUED, status_at=now, queued_at=now)
        )
    return fresh
