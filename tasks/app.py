"""The Celery app: broker from settings, JSON only, no result backend, one beat schedule.

``celery -A tasks.app worker`` and ``celery -A tasks.app beat`` load this module; tests and the
``ptnudge`` command build their own app with ``create_app(settings)``. The settings an app was
built for travel in its own configuration (``settings_of(app)``): the worker's runtime and the
signal handlers below read them there, in whichever process the pool forked.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, worker_ready
from kombu import Exchange, Queue

from config.settings import Settings, settings_or_exit
from service import broker, logs, metrics

TASK_MODULES = ["tasks.digest", "tasks.reminders", "tasks.replies"]
# A worker that consumes only this queue (compose's ``control-worker``) runs beat's passes and
# clinic alerts on time while a burst of sends fills the send queue; a worker started without
# ``--queues`` consumes both.
CONTROL_QUEUE = "ptnudge.control"
CONTROL_TASKS = (
    "ptnudge.clinic_alert",
    "ptnudge.dispatch",
    "ptnudge.sweep",
    "ptnudge.weekly_digest",
)
SETTINGS_KEY = "ptnudge_settings"  # in app.conf, beside Celery's own (lower-case) settings


def create_app(settings: Settings) -> Celery:
    app = Celery("ptnudge", broker=settings.broker_url, include=TASK_MODULES)
    app.conf.update(
        accept_content=["json"],
        task_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        # A worker that dies mid-task gives the message back instead of dropping it; the
        # reminder's own status (not the broker) decides whether it is sent again.
        task_reject_on_worker_lost=True,
        # After a broker outage the worker lets running sends finish: their messages come back
        # from the broker and the claim turns the second delivery into a no-op. Cancelling them
        # instead would leave reminders mid-send, for the sweeper to reconcile.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # No prefetch limit. With one, kombu's Redis transport does not read its socket while
        # the limit is reached (``MultiChannelPoller.on_readable``), so a broker reply waiting
        # there wakes the worker's event loop without pause until a pool process is free: a
        # third of a core and more through every burst (docs/scaling.md, the send path).
        # Unlimited, the consumer reads what is queued into the pool's buffer and sleeps.
        # Nothing depends on the limit for safety: messages are acknowledged late, a dead
        # worker's are requeued by the sweeper, and the reminder's own claim makes a second
        # delivery a no-op. Several workers split a burst by how fast each takes messages
        # from Redis; a send task is a list of at most 20 ids, so a backlog held in memory
        # is small.
        worker_prefetch_multiplier=0,
        # Sends on Celery's default queue, beat's passes and clinic alerts on their own:
        # behind a burst of thousands of sends, the dispatcher's next pass and a
        # warning-sign alert would otherwise wait until the burst has drained.
        task_default_queue=broker.SEND_QUEUE,
        task_queues=[
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in (broker.SEND_QUEUE, CONTROL_QUEUE)
        ],
        task_routes={name: {"queue": CONTROL_QUEUE} for name in CONTROL_TASKS},
        worker_concurrency=settings.worker_concurrency or 2 * (os.cpu_count() or 1),
        broker_connection_retry_on_startup=True,
        broker_transport_options=broker.transport_options(settings),
        timezone="UTC",
        enable_utc=True,
        beat_schedule=beat_schedule(settings),
    )
    app.conf[SETTINGS_KEY] = settings
    return app


def settings_of(app: Celery) -> Settings:
    """The settings ``create_app`` built this app for."""
    settings = app.conf.get(SETTINGS_KEY)
    if not isinstance(settings, Settings):
        raise LookupError(f"the Celery app {app.main!r} was not built by tasks.app.create_app")
    return settings


def beat_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    # Alphabetised. Each periodic task is safe to run twice at once (claims are conditional
    # updates), so a second beat by mistake doubles work, never messages.
    return {
        "dispatch-due-reminders": {
            "task": "ptnudge.dispatch",
            "schedule": settings.tick_seconds,
        },
        "sweep-unfinished-reminders": {
            "task": "ptnudge.sweep",
            "schedule": max(settings.tick_seconds, settings.sweep_seconds),
        },
        "weekly-clinic-digest": {
            "task": "ptnudge.weekly_digest",
            "schedule": 3600.0,  # hourly check; each clinic gets one digest per week
        },
    }


app = create_app(settings_or_exit())


@after_setup_logger.connect
@after_setup_task_logger.connect
def _protect_worker_logs(logger: logging.Logger, **_: Any) -> None:
    """Worker and beat logs get our format (JSON in production) and the number filter."""
    settings = settings_of(app)  # logging is set up by ``celery -A tasks.app``: this app
    for handler in logger.handlers:
        logs.protect(handler, settings)


@worker_ready.connect
def _serve_worker_metrics(sender: Any, **_: Any) -> None:
    """With PTNUDGE_WORKER_METRICS_PORT set, the worker's main process serves ``/metrics``
    for Prometheus: the same metrics as the web app, summed over the pool's processes when
    PROMETHEUS_MULTIPROC_DIR is set. ``sender`` is the consumer of the worker that is ready."""
    port = settings_of(sender.app).worker_metrics_port
    if port is not None:
        metrics.serve(port)
