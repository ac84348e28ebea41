"""One dispatcher pass and one sweep, each in its own transaction, with the settings' rules.

Entry points (beat's tasks, ``ptnudge tick``, the demo) call these and enqueue the returned
ids only after they return, that is after the commit.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import cast

from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from service import metrics
from service.db import transaction
from service.dispatch import DispatchResult, DispatchRules, dispatch_due
from service.models import utcnow
from service.sweeping import SweepResult, SweepRules, reconcile, requeue_lost, stuck_sending
from service.transports.base import Reconciler, Transport

# A tick that finds more than this many full batches leaves the rest to the next tick.
MAX_BATCHES = 1000


def dispatch_rules(settings: Settings) -> DispatchRules:
    return DispatchRules(
        stale_after=dt.timedelta(seconds=settings.stale_after_seconds),
        min_gap=dt.timedelta(minutes=settings.min_gap_minutes),
        batch_size=settings.dispatch_batch_size,
    )


def run_tick(
    *, settings: Settings, sessions: sessionmaker[Session], now: dt.datetime | None = None
) -> DispatchResult:
    """Dispatch until nothing due is left (each batch its own short transaction)."""
    started = time.perf_counter()
    rules = dispatch_rules(settings)
    total = DispatchResult()
    for _ in range(MAX_BATCHES):
        with transaction(sessions) as session:
            batch = dispatch_due(session=session, rules=rules, now=now or utcnow())
        total.items += batch.items
        total.created += batch.created
        total.expired += batch.expired
        total.merged += batch.merged
        total.to_send.extend(batch.to_send)
        if batch.claimed < rules.batch_size:
            break
    metrics.TICK_SECONDS.observe(time.perf_counter() - started)
    return total


def run_sweep(
    *,
    settings: Settings,
    sessions: sessionmaker[Session],
    sms: Transport,
    now: dt.datetime | None = None,
) -> SweepResult:
    rules = SweepRules(
        requeue_after=dt.timedelta(seconds=settings.requeue_after_seconds),
        reconcile_after=dt.timedelta(seconds=settings.reconcile_after_seconds),
    )
    result = SweepResult()
    reconciler = cast(Reconciler, sms) if hasattr(sms, "find_sent") else None
    with transaction(sessions) as session:
        moment = now or utcnow()
        result.requeued.extend(requeue_lost(session=session, rules=rules, now=moment))
        for reminder in stuck_sending(session=session, rules=rules, now=moment):
            reconcile(
                session=session, reminder=reminder, reconciler=reconciler, now=moment, result=result
            )
    return result
