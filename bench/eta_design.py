"""The design ptnudge's pipeline is measured against: one Celery task per reminder, queued
ahead with an ETA, as Twilio's appointment-reminders sample does it
(TwilioDevEd/appointment-reminders-django, ``reminders/tasks.py``):

    send_sms_reminder.apply_async((appointment.pk,), eta=reminder_time)

and at the ETA the task reads its row, formats the body and calls ``client.messages.create``.
No claim, no record of what was sent, no opt-out or pause check, no retry: Celery's defaults
throughout (prefetch multiplier 4, early acknowledgement), a prefork pool as large as
ptnudge's (``BENCH_ETA_CONCURRENCY``). Used only by ``bench/pipeline_bench.py``, which runs
``celery -A bench.eta_design worker`` with:

- ``BENCH_ETA_BROKER_URL``: the Redis database of the run;
- ``BENCH_ETA_DATABASE_URL``: the scratch database whose ``patients`` the tasks read;
- ``BENCH_ETA_TWILIO_URL``: the fake Twilio server (account and token: the fake's defaults);
- ``BENCH_ETA_FROM``: the sender number.
"""

from __future__ import annotations

import os
from functools import cache

import sqlalchemy as sa
from celery import Celery
from celery.signals import worker_ready
from twilio.rest import Client

from tests.fakes.twilio_server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

QUEUE = "eta-design"
TASK = "bench.eta_design.send_sms_reminder"
READY = "eta-design worker ready"  # printed once the worker consumes (any log level)

app = Celery("eta_design", broker=os.environ.get("BENCH_ETA_BROKER_URL", "redis://"))
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    worker_concurrency=int(os.environ.get("BENCH_ETA_CONCURRENCY", 2 * (os.cpu_count() or 1))),
    timezone="UTC",
    enable_utc=True,
)


@cache
def _engine(pid: int) -> sa.Engine:
    """One engine per pool process (built after the fork)."""
    return sa.create_engine(os.environ["BENCH_ETA_DATABASE_URL"])


@cache
def _client(pid: int) -> Client:
    client = Client(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)
    client.edge = None
    client.region = None
    client.api.base_url = os.environ["BENCH_ETA_TWILIO_URL"]
    return client


@app.task(name=TASK)
def send_sms_reminder(patient_id: int) -> None:
    with _engine(os.getpid()).connect() as conn:
        row = conn.execute(
            sa.text("SELECT first_name, phone FROM patients WHERE id = :id"), {"id": patient_id}
        ).one_or_none()
    if row is None:  # removed since it was queued: the sample's only check
        return
    body = f"Hi {row.first_name}, time for your stretch: 10 slow knee-to-chest pulls."
    _client(os.getpid()).messages.create(
        body=body, to=row.phone, from_=os.environ["BENCH_ETA_FROM"]
    )


@worker_ready.connect
def _say_ready(**_: object) -> None:
    print(READY, flush=True)
