"""One dispatcher pass and one sweep, each in its own transaction, with the settings' rules.

Entry points (beat's tasks, ``ptnudge tick``, the demo) call these and enqueue the returned
ids only after they return, that is after the commit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, ScalarSelect, Select, Table, bindparam, func, select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from service import metrics
from service.db import transaction
from service.delivery.dispatch import DispatchResult, DispatchRules, dispatch_due
from service.delivery.sweeping import (
    SweepResult,
    SweepRules,
    ask_provider,
    reconcile,
    requeue_lost,
    stuck_details,
    stuck_sending,
)
from service.enrollment.patients import advance_programs
from service.models import Patient, PlanItem, Reminder, ReminderStatus, utcnow
from service.transports.base import Reconciler, Transport, TransportError
from service.transports.registry import sms_reconciler

log = logging.getLogger(__name__)

# A tick that finds more than this many full batches leaves the rest to the next tick.
MAX_BATCHES = 1000

# Core on the tables: an idle pass is mostly SQLAlchemy's work around its statement.
_PATIENTS = cast("Table", Patient.__table__)
_PLAN_ITEMS = cast("Table", PlanItem.__table__)
_REMINDERS = cast("Table", Reminder.__table__)


def dispatch_rules(settings: Settings) -> DispatchRules:
    return DispatchRules(
        stale_after=dt.timedelta(seconds=settings.stale_after_seconds),
        min_gap=dt.timedelta(minutes=settings.min_gap_minutes),
        batch_size=settings.dispatch_batch_size,
    )


# The longest look-ahead, whatever the tick period: a countdown this long is still far inside
# the broker's visibility timeout (service/broker.py, an hour), so Redis never hands a task
# that is counting down to a second worker.
MAX_LOOK_AHEAD = dt.timedelta(minutes=5)


def look_ahead(settings: Settings) -> dt.timedelta:
    """How far ahead beat's pass claims: one tick period, at most ``MAX_LOOK_AHEAD``."""
    return min(dt.timedelta(seconds=settings.tick_seconds), MAX_LOOK_AHEAD)


def run_tick(
    *,
    settings: Settings,
    sessions: sessionmaker[Session],
    now: dt.datetime | None = None,
    ahead: dt.timedelta = dt.timedelta(0),
    after_commit: Callable[[DispatchResult], None] | None = None,
) -> DispatchResult:
    """Dispatch until nothing due is left, each batch its own short transaction.

    ``ahead`` also claims what falls due that much later (beat's pass: one tick period), each
    with its due instant in ``send_at``. ``after_commit`` gets each batch (its ``to_send``
    and ``send_at``) as soon as that batch is committed, so sending starts while later
    batches are still being dispatched.
    """
    started = time.perf_counter()
    rules = dataclasses.replace(dispatch_rules(settings), ahead=ahead)
    total = DispatchResult()
    for number in range(MAX_BATCHES):
        with transaction(sessions) as session:
            if number == 0:
                found = _open_pass(session, settings=settings, now=now or utcnow(), ahead=ahead)
                if found.idle:
                    metrics.QUEUE_LAG.set(found.waiting)
                    break
            # The programs step may write one-offs (a new phase's note) due now; others that
            # come due while the pass runs go out with the next tick.
            batch = dispatch_due(
                session=session,
                rules=rules,
                now=now or utcnow(),
                one_offs=found.one_offs or found.programs,
            )
            last = batch.claimed < rules.batch_size or number == MAX_BATCHES - 1
            if last:
                metrics.QUEUE_LAG.set(waiting_to_send(session))
        total.items += batch.items
        total.created += batch.created
        total.expired += batch.expired
        total.merged += batch.merged
        total.to_send.extend(batch.to_send)
        total.send_at.update(batch.send_at)
        if after_commit is not None and batch.to_send:
            after_commit(batch)
        if last:
            break
    metrics.TICK_SECONDS.observe(time.perf_counter() - started)
    return total


@dataclass(frozen=True)
class Pending:
    """What a pass will find to do."""

    programs: bool  # a patient's plan changes by now (a phase begins, a program ends)
    items: bool  # plan items due by the look-ahead
    one_offs: bool  # one-off messages (welcome, snooze) due now
    waiting: int  # reminders queued or being sent

    @property
    def idle(self) -> bool:
        return not (self.programs or self.items or self.one_offs)


def pending(session: Session, *, now: dt.datetime, ahead: dt.timedelta) -> Pending:
    """One statement, each part of it a probe of a partial index (``ix_patients_plan_changes``,
    ``ix_plan_items_next_due``, ``ix_reminders_open``): an idle pass is this and its
    transaction, whatever the number of patients, instead of one statement per step. The
    steps themselves claim with row locks; this only says whether to take them."""
    found = session.execute(_PENDING, {"now": now, "until": now + ahead}).one()
    programs, items, one_offs, waiting = found
    # A comparison with no earliest time (nothing there) is NULL.
    return Pending(bool(programs), bool(items), bool(one_offs), int(waiting or 0))


def _open_pass(
    session: Session, *, settings: Settings, now: dt.datetime, ahead: dt.timedelta
) -> Pending:
    """The first batch's probe, then programs: a patient whose phase began or whose program
    ended at midnight gets today's plan (or nothing) before anything of theirs is
    dispatched."""
    found = pending(session, now=now, ahead=ahead)
    if found.programs:
        advance_programs(session=session, now=now, programs_dir=settings.programs_dir)
    return found


def waiting_to_send(session: Session) -> int:
    """Reminders queued or being sent: the backlog behind the dispatcher (a partial index
    covers exactly these rows)."""
    return int(session.scalar(_waiting()) or 0)


def _waiting() -> Select[tuple[int]]:
    return (
        select(func.count())
        .select_from(_REMINDERS)
        .where(_REMINDERS.c.status.in_((ReminderStatus.QUEUED, ReminderStatus.SENDING)))
    )


def _earliest(moment: ColumnElement[dt.datetime], *where: ColumnElement[bool]) -> ScalarSelect[Any]:
    return select(func.min(moment)).where(*where).scalar_subquery()


# Each probe compares the earliest time with the moment outside its subquery: with the moment
# inside (``EXISTS … WHERE next_due_at <= :until``), the generic plan of the prepared
# statement psycopg switches to after five runs reads the whole table when nothing is due
# (200 ms at 1,000,000 patients), while min() is one step into the partial index whatever
# the parameter. Built once: constructing it anew was about 8 % of an idle pass.
_PENDING = select(
    _earliest(_PATIENTS.c.plan_changes_at) <= bindparam("now"),
    _earliest(_PLAN_ITEMS.c.next_due_at) <= bindparam("until"),
    _earliest(_REMINDERS.c.due_at, _REMINDERS.c.status == ReminderStatus.SCHEDULED)
    <= bindparam("now"),
    _waiting().scalar_subquery(),
)


def run_sweep(
    *,
    settings: Settings,
    sessions: sessionmaker[Session],
    sms: Transport,
    now: dt.datetime | None = None,
    queue_empty: bool = True,
) -> SweepResult:
    """Requeue what the broker lost and settle what crashed workers left mid-send.

    ``queue_empty`` says whether the broker's send queue is empty: only then can a long
    "queued" mean a lost task; behind a backlog it only means the workers are busy, and
    requeueing would pile duplicate tasks onto the backlog.
    """
    rules = SweepRules(
        requeue_after=dt.timedelta(seconds=settings.requeue_after_seconds),
        reconcile_after=dt.timedelta(seconds=settings.reconcile_after_seconds),
    )
    result = SweepResult()
    reconciler = sms_reconciler(sms)
    moment = now or utcnow()
    with transaction(sessions) as session:
        if queue_empty:
            result.requeued.extend(requeue_lost(session=session, rules=rules, now=moment))
        stuck_ids = stuck_sending(session=session, rules=rules, now=moment)
    for reminder_id in stuck_ids:
        _reconcile_one(sessions, reminder_id, reconciler, moment, result)
    return result


def _reconcile_one(
    sessions: sessionmaker[Session],
    reminder_id: int,
    reconciler: Reconciler | None,
    now: dt.datetime,
    result: SweepResult,
) -> None:
    # Read, ask the provider with no transaction open, then settle in a short transaction.
    with sessions() as session:
        stuck = stuck_details(session=session, reminder_id=reminder_id)
    if stuck is None:
        return
    try:
        records = ask_provider(stuck, reconciler)
    except TransportError as error:
        log.warning("reconcile reminder %s: provider unreachable (%s)", reminder_id, error.code)
        return  # asked again on the next sweep
    with transaction(sessions) as session:
        reconcile(session=session, stuck=stuck, records=records, now=now, result=result)
