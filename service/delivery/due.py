"""What the dispatcher reads of the patients it claimed: plain rows, not ORM objects.

Loaded as ORM objects (identity map, instance state, two relationships), a batch of patients
cost a quarter of a pass in Python; the dispatcher changes none of them through the ORM, so
it reads columns into ``DuePatient`` and ``DueItem``. They carry the attributes the scheduler
(``plans.schedule_for``), the opt-out ledger and the back-off read, under the names
``Patient`` and ``PlanItem`` give them.

A program's patients share their plan: the same items in the same zone, waking window and
daily limit, due at the same times. ``plan_key`` is equal for two patients whose plans are
the same up to their plan item ids, and ``ranked`` numbers a plan's items 0, 1, … in the
order of their ids, so that work computed once for the plan (``dispatch._PlanWork``) is
every such patient's, once each number is read back as the patient's own item id. The
order of ids is kept because the scheduler breaks ties between equal due times by item id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from service.db.dialects import among
from service.models import ChannelChoice, Patient, PatientStatus, PlanItem


class DueItem(NamedTuple):
    """One plan item of a claimed patient, with its due time as the claim read it."""

    id: int
    position: int
    kind: str
    every_minutes: int | None
    at_times: list[str] | None
    days: list[str] | None
    next_due_at: dt.datetime | None


class DuePatient(NamedTuple):
    """A claimed patient and all of their plan items, by position."""

    plan_items: tuple[DueItem, ...]  # first: the other fields are a row's first columns
    id: int
    status: PatientStatus
    paused_until: dt.date | None
    start_date: dt.date
    timezone: str
    wake_start: dt.time
    wake_end: dt.time
    max_per_day: int
    channel: ChannelChoice
    phone: str | None
    email: str | None
    phone_invalid_code: str | None
    last_reply_at: dt.datetime | None


# Core, on the tables: selecting the mapped attributes instead would run every row through
# the ORM's loading. The columns are in the order of the fields above, so that a row is the
# fields' values (named tuples: built from a row at the cost of a tuple).
_PATIENTS = cast("Table", Patient.__table__)
_PLAN_ITEMS = cast("Table", PlanItem.__table__)
_PATIENT_COLUMNS = [_PATIENTS.c[name] for name in DuePatient._fields if name != "plan_items"]
_ITEM_COLUMNS = [_PLAN_ITEMS.c[name] for name in DueItem._fields]


def load_due(session: Session, item_ids: Sequence[int]) -> list[DuePatient]:
    """The patients who own these plan items, by id, each with every plan item of theirs:
    one query, a row per plan item."""
    items = _PLAN_ITEMS.c
    owners = select(items.patient_id).where(among(items.id, item_ids, session=session))
    query = (
        select(*_PATIENT_COLUMNS, *_ITEM_COLUMNS)
        .join_from(_PATIENTS, _PLAN_ITEMS, items.patient_id == _PATIENTS.c.id)
        .where(_PATIENTS.c.id.in_(owners))
        .order_by(_PATIENTS.c.id, items.position, items.id)
    )
    split = len(_PATIENT_COLUMNS)
    patients: list[DuePatient] = []
    found: list[DueItem] = []
    last: tuple[Any, ...] | None = None
    # All at once: psycopg builds the rows in C; fetched one by one, each costs a call.
    for row in session.execute(query).tuples().all():
        if last is not None and row[0] != last[0]:
            patients.append(DuePatient(tuple(found), *last[:split]))
            found = []
        found.append(DueItem(*row[split:]))
        last = row
    if last is not None:
        patients.append(DuePatient(tuple(found), *last[:split]))
    return patients


def plan_key(patient: DuePatient) -> Hashable:
    """Equal for patients whose plans, and their items' due times, differ only in ids."""
    return (
        patient.status,
        patient.paused_until,
        patient.start_date,
        patient.timezone,
        patient.wake_start,
        patient.wake_end,
        patient.max_per_day,
        tuple(
            (
                item.kind,
                item.every_minutes,
                tuple(item.at_times) if item.at_times is not None else None,
                tuple(item.days) if item.days is not None else None,
                item.next_due_at,
            )
            for item in _by_id(patient)
        ),
    )


def item_ids(patient: DuePatient) -> tuple[int, ...]:
    """The patient's plan item ids in order: item ``n`` of ``ranked`` is ``item_ids[n]``."""
    return tuple(item.id for item in _by_id(patient))


def ranked(patient: DuePatient) -> tuple[DueItem, ...]:
    """The patient's items numbered 0, 1, … in the order of their ids: the plan shared with
    every patient of the same ``plan_key``."""
    return tuple(item._replace(id=n) for n, item in enumerate(_by_id(patient)))


def _by_id(patient: DuePatient) -> list[DueItem]:
    return sorted(patient.plan_items, key=lambda item: item.id)
