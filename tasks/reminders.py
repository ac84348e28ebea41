"""What the worker runs for reminders: dispatch, send, sweep. Each parses ids, calls one
``service`` function and lets it commit; enqueuing happens only after the commit."""

from __future__ import annotations

import collections
import datetime as dt
import logging
from typing import Any

from celery import Celery, Task
from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy.exc import OperationalError

from config.settings import Settings
from service.delivery.dispatch import DispatchResult
from service.delivery.sending import RetryPolicy, SendOutcome, Transports, send_reminders
from service.delivery.status import broker_queue_depth
from service.delivery.sweeping import SweepResult
from service.delivery.ticking import look_ahead, run_sweep, run_tick
from service.models import utcnow
from service.replies.alerts import send_unsent
from tasks.app import app
from tasks.locks import single_flight
from tasks.runtime import get_runtime

log = logging.getLogger(__name__)
# Reminders per send task: enough to share the database work of a batch, few enough that
# one slow provider call delays little else and a crash leaves little to reconcile.
SEND_BATCH = 20
LOCK_TTL = 300  # seconds: longer than any pass takes, short enough to survive a crash
BACKOFF_MAX = 600  # well under the broker's visibility timeout: no long ETAs on Redis


def enqueue_sends(
    celery: Celery, reminder_ids: list[int], *, countdown: float | None = None
) -> None:
    """Publish send tasks, in batches, over one pooled connection of ``celery`` (an app
    built for the caller's settings, hence its broker; a tick can queue thousands)."""
    if not reminder_ids:
        return
    with celery.producer_or_acquire() as producer:
        for start in range(0, len(reminder_ids), SEND_BATCH):
            batch = reminder_ids[start : start + SEND_BATCH]
            send.apply_async(args=[batch], countdown=countdown, producer=producer)


def enqueue_when_due(
    celery: Celery, batch: DispatchResult, *, now: dt.datetime | None = None
) -> None:
    """Publish a dispatcher batch: what is due already at once, and what it claimed ahead
    in groups by due instant, each group with a countdown to its own instant.

    A countdown on Redis is safe only while it is short. Kombu's Redis transport hands a
    task with an ETA to a worker at once; the worker holds it unacknowledged until it is
    due, and Redis gives any message unacknowledged for longer than the visibility timeout
    (``broker.VISIBILITY_TIMEOUT``, an hour) to another worker: an ETA beyond that runs
    twice or more (celery/kombu#337, celery/celery#4766). These countdowns are at most the
    look-ahead, one tick period (``PTNUDGE_TICK_SECONDS``, 15 s by default; never more
    than ``ticking.MAX_LOOK_AHEAD``, five minutes), far inside it. A worker killed while
    holding one loses it only until the sweeper requeues the reminder, whose wait counts
    from its due time; the claim in the send task makes a late second delivery a no-op,
    and the send task defers any reminder handed over before it is due rather than
    sending it early."""
    moment = now or utcnow()
    by_instant: dict[dt.datetime | None, list[int]] = collections.defaultdict(list)
    for reminder_id in batch.to_send:
        by_instant[batch.send_at.get(reminder_id)].append(reminder_id)
    for instant, ids in by_instant.items():
        wait = None if instant is None else max(0.0, (instant - moment).total_seconds())
        enqueue_sends(celery, ids, countdown=wait or None)


def retry_policy(settings: Settings) -> RetryPolicy:
    """Exponential backoff with full jitter (5, 10, 20, 40… seconds by default), capped,
    for at most PTNUDGE_SEND_MAX_RETRIES retries of one reminder."""

    def wait(attempts: int) -> dt.timedelta | None:
        if attempts > settings.send_max_retries:
            return None
        seconds = get_exponential_backoff_interval(
            factor=settings.retry_backoff_seconds,
            retries=attempts - 1,
            maximum=BACKOFF_MAX,
            full_jitter=True,
        )
        return dt.timedelta(seconds=max(1, seconds))

    return wait


@app.task(name="ptnudge.dispatch", acks_late=True, ignore_result=True)
def dispatch() -> int:
    runtime = get_runtime(app)
    with single_flight(runtime.settings, "dispatch", ttl=LOCK_TTL) as mine:
        if not mine:
            return 0
        # One tick period ahead: each reminder leaves at its minute, not at the next tick.
        result = run_tick(
            settings=runtime.settings,
            sessions=runtime.sessions,
            ahead=look_ahead(runtime.settings),
            after_commit=lambda batch: enqueue_when_due(app, batch),
        )
    return len(result.to_send)


@app.task(
    name="ptnudge.send_reminders", bind=True, acks_late=True, ignore_result=True, max_retries=None
)
def send(self: Task[Any, Any], reminder_ids: list[int]) -> dict[str, int]:
    runtime = get_runtime(app)
    try:
        results = send_reminders(
            sessions=runtime.sessions,
            settings=runtime.settings,
            transports=Transports(
                sms=runtime.sms, email=runtime.email, sms_limit=runtime.sms_limit
            ),
            urls=runtime.urls,
            reminder_ids=reminder_ids,
            retry_policy=retry_policy(runtime.settings),
        )
    except OperationalError as error:
        # The database went away (restart, failover). Whatever step failed, a retry is
        # safe: a claimed reminder is never claimed twice.
        raise self.retry(exc=error, countdown=runtime.settings.retry_backoff_seconds) from error
    # Each transient failure is retried on its own, after its own backoff; reminders handed
    # over before their due time (clock skew, a countdown not honoured) wait for it.
    later: dict[float, list[int]] = collections.defaultdict(list)
    for reminder_id, result in results.items():
        if result.outcome in _LATER and result.retry_in is not None:
            later[result.retry_in.total_seconds()].append(reminder_id)
    for wait, ids in later.items():
        enqueue_sends(app, ids, countdown=wait)
    return dict(collections.Counter(result.outcome.value for result in results.values()))


_LATER = (SendOutcome.RETRY, SendOutcome.EARLY)


@app.task(name="ptnudge.sweep", acks_late=True, ignore_result=True)
def sweep() -> int:
    runtime = get_runtime(app)
    with single_flight(runtime.settings, "sweep", ttl=LOCK_TTL) as mine:
        if not mine:
            return 0
        depth = broker_queue_depth(runtime.settings)
        result = run_sweep(
            settings=runtime.settings,
            sessions=runtime.sessions,
            sms=runtime.sms,
            queue_empty=depth is None or depth == 0,
        )
        # Clinic alerts the web app could not hand over (broker down) or a worker dropped.
        send_unsent(sessions=runtime.sessions, transport=runtime.email)
    enqueue_sends(app, result.requeued)
    _log_sweep(result, depth)
    return len(result.requeued)


def _log_sweep(result: SweepResult, depth: int | None) -> None:
    """One line per sweep that found anything: what operators (and the fault tests) read to
    see a recovery happen."""
    lost = len(result.requeued) - result.reconciled_unsent
    if lost or result.reconciled_sent or result.reconciled_unsent or result.unknown:
        log.info(
            "sweep: queue_depth=%s requeued_lost=%d reconciled_sent=%d reconciled_unsent=%d "
            "unknown=%d",
            "unknown" if depth is None else depth,
            lost,
            result.reconciled_sent,
            result.reconciled_unsent,
            result.unknown,
        )
