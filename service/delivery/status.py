"""``ptnudge status``: is the pipeline keeping up? One read of the database and the broker."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import Settings
from service import broker
from service.delivery.ticking import waiting_to_send
from service.models import (
    AlertStatus,
    ClinicAlert,
    OptOut,
    PlanItem,
    Reminder,
    ReminderStatus,
    utcnow,
)


def collect_status(
    *, session: Session, settings: Settings, now: dt.datetime | None = None
) -> dict[str, Any]:
    now = now or utcnow()
    day_ago = now - dt.timedelta(hours=24)
    rows = session.execute(
        select(Reminder.status, func.count())
        .where(Reminder.due_at >= day_ago)
        .group_by(Reminder.status)
    )
    by_status: dict[ReminderStatus, int] = {row[0]: row[1] for row in rows}
    due_items = session.scalar(
        select(func.count()).select_from(PlanItem).where(PlanItem.next_due_at <= now)
    )
    waiting = waiting_to_send(session)
    last_dispatch = session.scalar(select(func.max(PlanItem.last_due_at)))
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    opt_outs = session.scalar(
        select(func.count()).select_from(OptOut).where(OptOut.created_at >= today)
    )
    return {
        "queue_depth": broker_queue_depth(settings),
        "due_backlog": {"plan_items_due": due_items or 0, "queued_or_sending": waiting or 0},
        "last_dispatched_occurrence": last_dispatch.isoformat() if last_dispatch else None,
        "reminders_last_24h": {status.value: count for status, count in by_status.items()},
        "opt_outs_today_utc": opt_outs or 0,
        "clinic_alerts_unsent": _unsent_alerts(session),
    }


def _unsent_alerts(session: Session) -> int:
    """Warning-sign alerts not yet at the clinic's mail server (pending, or mid-send)."""
    unsent = ClinicAlert.status.in_((AlertStatus.PENDING, AlertStatus.SENDING))
    return int(session.scalar(select(func.count()).select_from(ClinicAlert).where(unsent)) or 0)


def broker_queue_depth(settings: Settings) -> int | None:
    """Messages waiting in the send queue, or None when the broker cannot be asked."""
    try:
        with broker.connect(settings, timeout=3) as connection:
            # Not a passive declare: kombu checks a queue's existence with Redis EXISTS, which
            # its key prefix does not cover, so a prefixed queue would look absent. Declaring
            # the send queue (as every worker does) is harmless and counts the prefixed keys.
            declared = connection.default_channel.queue_declare(queue=broker.SEND_QUEUE)
            return int(declared.message_count)
    except Exception:  # noqa: BLE001 - status reports "unknown" rather than failing
        return None
