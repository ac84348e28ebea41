"""Publishing tasks from outside the worker: what the web app hands to the worker.

Each publisher takes the settings of the process that publishes (hence its broker) and
references its task by the task's own function object; callers call it only after the
transaction that stored what the task reads has committed.
"""

from __future__ import annotations

from collections.abc import Callable

from celery import Celery

from config.settings import Settings
from tasks.app import create_app
from tasks.replies import send_clinic_alert_task

# Publishing waits a little for a broker that blinks, then gives up: the webhook answers
# Twilio either way, and the reply stays flagged for the clinic in the database.
ALERT_RETRY_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 1}


def clinic_alert_publisher(settings: Settings) -> Callable[[int], None]:
    """A function that has the worker email the clinic about one warning-sign reply (by the
    inbound message's id). The Celery app is built on first use: a web app that never sees
    a warning sign never connects to the broker."""
    celery: Celery | None = None

    def publish(inbound_id: int) -> None:
        nonlocal celery
        celery = celery or create_app(settings)
        with celery.producer_or_acquire() as producer:
            send_clinic_alert_task.apply_async(
                args=[inbound_id], producer=producer, retry=True, retry_policy=ALERT_RETRY_POLICY
            )

    return publish
