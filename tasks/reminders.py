"""What the worker runs for reminders: dispatch, send, sweep. Each parses ids, calls one
``service`` function and lets it commit; enqueuing happens only after the commit."""

from __future__ import annotations

import datetime as dt
from typing import Any

from celery import Celery, Task
from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy.exc import OperationalError

from service.sending import SendOutcome, Transports, send_reminder
from service.status import broker_queue_depth
from service.ticking import run_sweep, run_tick
from tasks.app import app
from tasks.locks import single_flight
from tasks.runtime import get_runtime

SEND_TASK = "ptnudge.send_reminder"
LOCK_TTL = 300  # seconds: longer than any pass takes, short enough to survive a crash
BACKOFF_MAX = 600  # well under the broker's visibility timeout: no long ETAs on Redis


def enqueue_sends(celery: Celery, reminder_ids: list[int]) -> None:
    """Publish send tasks over one pooled connection (a tick can queue thousands)."""
    if not reminder_ids:
        return
    with celery.producer_or_acquire() as producer:
        for reminder_id in reminder_ids:
            celery.send_task(SEND_TASK, args=[reminder_id], producer=producer)


@app.task(name="ptnudge.dispatch", acks_late=True, ignore_result=True)
def dispatch() -> int:
    runtime = get_runtime()
    with single_flight(runtime.settings, "dispatch", ttl=LOCK_TTL) as mine:
        if not mine:
            return 0
        result = run_tick(
            settings=runtime.settings,
            sessions=runtime.sessions,
            after_commit=lambda ids: enqueue_sends(app, ids),
        )
    return len(result.to_send)


@app.task(name=SEND_TASK, bind=True, acks_late=True, ignore_result=True, max_retries=None)
def send(self: Task[Any, Any], reminder_id: int) -> str:
    runtime = get_runtime()
    retries = int(self.request.retries or 0)
    last_attempt = retries >= runtime.settings.send_max_retries
    countdown = get_exponential_backoff_interval(
        # 5, 10, 20, 40… seconds (by default), with full jitter
        factor=runtime.settings.retry_backoff_seconds,
        retries=retries,
        maximum=BACKOFF_MAX,
        full_jitter=True,
    )
    try:
        outcome = send_reminder(
            sessions=runtime.sessions,
            settings=runtime.settings,
            transports=Transports(sms=runtime.sms, email=runtime.email),
            reminder_id=reminder_id,
            retry_in=None if last_attempt else dt.timedelta(seconds=countdown),
        )
    except OperationalError as error:
        # The database went away (restart, failover). Whatever step failed, a retry is
        # safe: a claimed reminder is never claimed twice.
        raise self.retry(exc=error, countdown=countdown) from error
    if outcome is SendOutcome.RETRY:
        raise self.retry(countdown=countdown)
    return outcome.value


@app.task(name="ptnudge.sweep", acks_late=True, ignore_result=True)
def sweep() -> int:
    runtime = get_runtime()
    with single_flight(runtime.settings, "sweep", ttl=LOCK_TTL) as mine:
        if not mine:
            return 0
        depth = broker_queue_depth(runtime.settings.broker_url)
        result = run_sweep(
            settings=runtime.settings,
            sessions=runtime.sessions,
            sms=runtime.sms,
            queue_empty=depth is None or depth == 0,
        )
    enqueue_sends(app, result.requeued)
    return len(result.requeued)
