"""A warning-sign reply while the broker is down still reaches the clinic's mailbox, once:
a real worker, its own redis-server (down when the reply comes, started after), aiosmtpd as the
mail server."""

from __future__ import annotations

import time

import httpx
import pytest
from celery import Celery
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from service.broker import SEND_QUEUE
from service.db import transaction
from service.models import AlertStatus, ClinicAlert
from service.web.factory import create_app as create_web_app
from tasks.app import CONTROL_QUEUE, create_app
from tasks.reminders import sweep
from tests.factories import make_clinic, make_patient
from tests.fakes.smtp import FakeSmtpServer, smtp_server
from tests.integration.conftest import Pipeline, RedisServer, wait_until
from tests.web.conftest import serve

pytestmark = pytest.mark.integration

CLINIC_EMAIL = "frontdesk@lakeside.example"
PHONE = "+13125556363"


def post_warning(pipeline: Pipeline, url: str) -> httpx.Response:
    settings = pipeline.settings
    params = {"MessageSid": "SM" + "7" * 32, "From": PHONE, "To": "+13125550000",
              "Body": "My legs went numb and I cannot feel them"}  # fmt: skip
    assert settings.twilio_auth_token is not None
    token = settings.twilio_auth_token.get_secret_value()
    signature = RequestValidator(token).compute_signature(
        settings.public_url + "/twilio/inbound", params
    )
    return httpx.post(
        url + "/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature}
    )


def run_sweep_task(celery: Celery) -> None:
    """Publish beat's sweep task to the worker, over this test's broker."""
    with celery.producer_or_acquire() as producer:
        sweep.apply_async(producer=producer)


def alert_rows(pipeline: Pipeline) -> list[ClinicAlert]:
    with pipeline.db.sessions() as session:
        return list(session.scalars(select(ClinicAlert)))


def test_a_warning_sign_while_the_broker_is_down_reaches_the_clinic_once_it_is_back(
    pipeline: Pipeline,
) -> None:
    broker = RedisServer(pipeline.tmp_path)
    pipeline.broker_url = broker.url  # not started: the broker is down when the reply comes
    with smtp_server() as smtp:
        pipeline.overrides.update(
            {"PTNUDGE_SMTP_URL": smtp.url, "PTNUDGE_EMAIL_FROM": "ptnudge@lakeside.example"}
        )
        with transaction(pipeline.db.sessions) as session:
            make_patient(session, make_clinic(session, email=CLINIC_EMAIL), phone=PHONE)
        try:
            with serve(create_web_app(pipeline.settings)) as url:
                assert post_warning(pipeline, url).status_code == 200
            assert [row.status for row in alert_rows(pipeline)] == [AlertStatus.PENDING]
            broker.start()
            pipeline.start_worker(concurrency=2)
            celery = create_app(pipeline.settings)
            # Beat's sweep, as often as beat runs it, until the mail is there and a bit after.
            deadline = time.monotonic() + 120
            while not smtp.mails and time.monotonic() < deadline:
                run_sweep_task(celery)
                time.sleep(2)
            wait_until(lambda: len(smtp.mails) >= 1, timeout=30, what="the clinic alert")
            for _ in range(3):
                run_sweep_task(celery)
                time.sleep(1)
        finally:
            for worker in pipeline.workers:
                worker.stop()
            broker.stop()
        assert [mail.rcpt_tos for mail in smtp.mails] == [(CLINIC_EMAIL,)]
    [row] = alert_rows(pipeline)
    assert (row.status, row.attempts) == (AlertStatus.SENT, 1)


def test_a_warning_sign_reaches_the_clinic_while_the_send_worker_is_held_up(
    pipeline: Pipeline,
) -> None:
    # As compose runs them: one worker on the send queue, one on the control queue. The send
    # worker stands frozen, as busy as a burst of thousands of sends would keep it.
    with smtp_server() as smtp:
        pipeline.overrides.update(
            {"PTNUDGE_SMTP_URL": smtp.url, "PTNUDGE_EMAIL_FROM": "ptnudge@lakeside.example"}
        )
        with transaction(pipeline.db.sessions) as session:
            make_patient(session, make_clinic(session, email=CLINIC_EMAIL), phone=PHONE)
        sends = pipeline.start_worker(concurrency=1, name="sends", queues=SEND_QUEUE)
        pipeline.start_worker(concurrency=1, name="control", queues=CONTROL_QUEUE)
        sends.freeze()
        with serve(create_web_app(pipeline.settings)) as url:
            assert post_warning(pipeline, url).status_code == 200
        wait_until(lambda: len(smtp.mails) >= 1, timeout=60, what="the clinic alert")
    assert [mail.rcpt_tos for mail in smtp.mails] == [(CLINIC_EMAIL,)]
    [row] = alert_rows(pipeline)
    assert (row.status, row.attempts) == (AlertStatus.SENT, 1)


def warning_with_mail_server_failing(
    pipeline: Pipeline, smtp: FakeSmtpServer, failures: int
) -> None:
    """A worker on the test's Redis, the mail server answering 451 to the next ``failures``
    messages, and a warning-sign reply through the web app (which publishes the alert task)."""
    pipeline.overrides.update(
        {"PTNUDGE_SMTP_URL": smtp.url, "PTNUDGE_EMAIL_FROM": "ptnudge@lakeside.example"}
    )
    with transaction(pipeline.db.sessions) as session:
        make_patient(session, make_clinic(session, email=CLINIC_EMAIL), phone=PHONE)
    smtp.fail_next_data("451 4.3.0 Try again later", n=failures)
    pipeline.start_worker(concurrency=1)
    with serve(create_web_app(pipeline.settings)) as url:
        assert post_warning(pipeline, url).status_code == 200


def test_a_clinic_alert_refused_for_now_is_retried_by_its_task_until_it_is_sent(
    pipeline: Pipeline,
) -> None:
    with smtp_server() as smtp:
        warning_with_mail_server_failing(pipeline, smtp, failures=2)
        wait_until(
            lambda: [row.status for row in alert_rows(pipeline)] == [AlertStatus.SENT],
            timeout=60,
            what="the clinic alert",
        )
    assert [mail.rcpt_tos for mail in smtp.mails] == [(CLINIC_EMAIL,)]
    [row] = alert_rows(pipeline)
    assert (row.status, row.attempts) == (AlertStatus.SENT, 3)  # two refusals, then sent
    [worker] = pipeline.workers
    assert worker.log().count(" retry: ") == 2


def test_the_alert_task_gives_up_after_five_retries_and_leaves_the_alert_to_the_sweeper(
    pipeline: Pipeline,
) -> None:
    with smtp_server() as smtp:
        warning_with_mail_server_failing(pipeline, smtp, failures=100)
        [worker] = pipeline.workers
        wait_until(
            lambda: "raised unexpected: TransientError" in worker.log(),
            timeout=120,
            what="the alert task to give up",
        )
        assert smtp.mails == []
    assert worker.log().count(" retry: ") == 5
    [row] = alert_rows(pipeline)
    # One try and five retries; pending again, for the sweeper's next pass.
    assert (row.status, row.attempts) == (AlertStatus.PENDING, 6)
