"""The web app over HTTP: signed Twilio webhooks, email links, health and metrics."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest
from fastapi import FastAPI
from kombu.connection import Connection
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from config.settings import Settings, SettingsError, load_settings
from service.db import transaction
from service.delivery.links import action_links
from service.enrollment import optouts
from service.models import (
    Channel,
    ChannelChoice,
    InboundMessage,
    Outcome,
    Patient,
    PatientStatus,
    Reminder,
    ReminderStatus,
    utcnow,
)
from service.web.factory import create_app
from service.web.urls import PublicUrls
from tasks.app import CONTROL_QUEUE
from tests.conftest import PRODUCTION_SETTINGS, Database, make_settings
from tests.factories import make_clinic, make_patient
from tests.service.cli.test_patients import run
from tests.service.replies.test_inbound import add_reminder
from tests.web.conftest import serve

PUBLIC_URL = "https://ptnudge.example.org"
TOKEN = "test-auth-token-0123456789"
PHONE = "+13125557000"


@contextmanager
def client_for(app: FastAPI) -> Iterator[httpx.Client]:
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


@dataclass
class Web:
    client: httpx.Client
    db: Database
    settings: Settings
    alerts: list[int]
    now: list[dt.datetime]

    def signed(
        self, path: str, params: dict[str, str], *, url: str | None = None, token: str = TOKEN
    ) -> dict[str, str]:
        signature = RequestValidator(token).compute_signature(url or PUBLIC_URL + path, params)
        return {"X-Twilio-Signature": signature}

    def post_signed(self, path: str, params: dict[str, str], **signing: str) -> httpx.Response:
        return self.client.post(path, data=params, headers=self.signed(path, params, **signing))


def web_settings(database: Database, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"public_url": PUBLIC_URL, "twilio_auth_token": TOKEN}
    return make_settings(database_url=database.url, tmp_path=tmp_path, **(values | overrides))


@pytest.fixture
def web(committed_db: Database, tmp_path: Path) -> Iterator[Web]:
    settings = web_settings(committed_db, tmp_path)
    alerts: list[int] = []
    now = [utcnow()]
    app = create_app(settings, clock=lambda: now[0], enqueue_alert=alerts.append)
    with client_for(app) as client:
        yield Web(client, committed_db, settings, alerts, now)


@pytest.fixture
def patient_id(web: Web) -> int:
    with transaction(web.db.sessions) as session:
        patient = make_patient(
            session,
            make_clinic(session),
            phone=PHONE,
            email="ana@example.com",
            channel=ChannelChoice.BOTH,
            schedule_after=web.now[0],
        )
        return patient.id


def inbound(body: str, *, sid: str = "SM0001", sender: str = PHONE) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": "+13125550000",
        "Body": body,
        "NumMedia": "0",
    }


def count_inbound(web: Web) -> int:
    with transaction(web.db.sessions) as session:
        return session.scalar(select(func.count()).select_from(InboundMessage)) or 0


def opted_out(web: Web, address: str = PHONE) -> bool:
    with transaction(web.db.sessions) as session:
        channel = Channel.EMAIL if "@" in address else Channel.SMS
        return optouts.is_opted_out(session=session, address=address, channel=channel)


def add(web: Web, patient_id: int, **fields: object) -> int:
    with transaction(web.db.sessions) as session:
        patient = session.get_one(Patient, patient_id)
        return add_reminder(session, patient, **fields).id  # type: ignore[arg-type]


def reminder(web: Web, reminder_id: int) -> Reminder:
    with transaction(web.db.sessions) as session:
        return session.get_one(Reminder, reminder_id)


# --- /twilio/inbound -----------------------------------------------------------------------


def test_a_signed_inbound_stop_opts_the_number_out(web: Web, patient_id: int) -> None:
    queued = add(
        web, patient_id, status=ReminderStatus.QUEUED, due_at=web.now[0] + dt.timedelta(minutes=1)
    )

    response = web.post_signed("/twilio/inbound", inbound("STOP"))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    answer = ElementTree.fromstring(response.text)
    assert (answer.tag, len(answer)) == ("Response", 0)  # TwiML that texts nothing back
    assert opted_out(web)
    assert reminder(web, queued).status is ReminderStatus.CANCELED


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Twilio-Signature": ""},
        {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
    ],
    ids=["missing", "empty", "forged"],
)
def test_an_unsigned_or_forged_stop_is_refused_and_changes_nothing(
    web: Web, patient_id: int, headers: dict[str, str]
) -> None:
    response = web.client.post("/twilio/inbound", data=inbound("STOP"), headers=headers)

    assert response.status_code == 403
    assert not opted_out(web)
    assert count_inbound(web) == 0


def test_a_signature_made_with_another_token_is_refused(web: Web, patient_id: int) -> None:
    response = web.post_signed("/twilio/inbound", inbound("STOP"), token="someone-elses-token")

    assert response.status_code == 403
    assert not opted_out(web)


def test_a_signature_replayed_with_other_params_is_refused(web: Web, patient_id: int) -> None:
    headers = web.signed("/twilio/inbound", inbound("hello"))

    response = web.client.post("/twilio/inbound", data=inbound("STOP"), headers=headers)

    assert response.status_code == 403
    assert not opted_out(web)
    assert count_inbound(web) == 0


def test_a_signature_of_the_public_url_with_its_default_port_is_accepted(
    web: Web, patient_id: int
) -> None:
    # Twilio's back ends sign the URL as configured, or with its port spelled out: the
    # check of the URL as configured comes first, and the other form must still pass.
    with_port = PUBLIC_URL.replace(".org", ".org:443") + "/twilio/inbound"

    response = web.post_signed("/twilio/inbound", inbound("STOP"), url=with_port)

    assert response.status_code == 200
    assert opted_out(web)


def test_the_signature_is_checked_against_the_public_url_not_the_host_header(
    web: Web, patient_id: int
) -> None:
    # The request arrives at http://127.0.0.1:PORT; Twilio signed PTNUDGE_PUBLIC_URL.
    response = web.post_signed(
        "/twilio/inbound", inbound("STOP"), url=str(web.client.base_url) + "twilio/inbound"
    )

    assert response.status_code == 403
    assert not opted_out(web)


def test_no_auth_token_means_every_webhook_is_refused(
    committed_db: Database, tmp_path: Path
) -> None:
    settings = make_settings(database_url=committed_db.url, tmp_path=tmp_path)
    with client_for(create_app(settings, enqueue_alert=lambda _: None)) as client:
        signature = RequestValidator("").compute_signature(
            settings.public_url + "/twilio/inbound", inbound("STOP")
        )
        response = client.post(
            "/twilio/inbound", data=inbound("STOP"), headers={"X-Twilio-Signature": signature}
        )
    assert response.status_code == 403


def test_done_is_answered_with_twiml(web: Web, patient_id: int) -> None:
    reminder_id = add(web, patient_id, due_at=web.now[0] - dt.timedelta(minutes=10))

    response = web.post_signed("/twilio/inbound", inbound("Done!"))

    assert response.status_code == 200
    assert "<Response><Message>Nice work, Ana!" in response.text
    assert reminder(web, reminder_id).outcome is Outcome.DONE


def test_the_reply_text_is_escaped_for_xml(web: Web) -> None:
    with transaction(web.db.sessions) as session:
        make_patient(session, make_clinic(session), first_name="Ana & <Bo>", phone=PHONE)

    response = web.post_signed("/twilio/inbound", inbound("pain 3"))

    assert "Ana &amp; &lt;Bo&gt;" in response.text


def test_a_retried_webhook_gets_the_same_answer_and_is_stored_once(
    web: Web, patient_id: int
) -> None:
    add(web, patient_id, due_at=web.now[0] - dt.timedelta(minutes=10))
    first = web.post_signed("/twilio/inbound", inbound("done", sid="SM-retry"))

    again = web.post_signed("/twilio/inbound", inbound("done", sid="SM-retry"))

    assert again.text == first.text
    assert count_inbound(web) == 1


def test_the_same_webhook_twice_at_once_is_stored_once(web: Web, patient_id: int) -> None:
    add(web, patient_id, due_at=web.now[0] - dt.timedelta(minutes=10))
    params = inbound("done", sid="SM-twice")
    headers = web.signed("/twilio/inbound", params)
    base_url = str(web.client.base_url)

    def post() -> str:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            return client.post("/twilio/inbound", data=params, headers=headers).text

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: post(), range(4)))

    assert count_inbound(web) == 1
    assert len(set(answers)) == 1
    assert "Nice work" in answers[0]


def test_a_warning_sign_enqueues_the_clinic_alert_after_commit(
    committed_db: Database, tmp_path: Path
) -> None:
    settings = web_settings(committed_db, tmp_path)
    seen: list[tuple[int, str | None]] = []

    def enqueue(inbound_id: int) -> None:
        # A separate session: it sees the row only if the request's transaction committed.
        with transaction(committed_db.sessions) as session:
            row = session.get(InboundMessage, inbound_id)
            seen.append((inbound_id, row.command if row else None))

    with transaction(committed_db.sessions) as session:
        patient = make_patient(session, make_clinic(session), phone=PHONE)
        patient_id = patient.id
    with client_for(create_app(settings, enqueue_alert=enqueue)) as client:
        params = inbound("I can't feel my legs")
        signature = RequestValidator(TOKEN).compute_signature(
            PUBLIC_URL + "/twilio/inbound", params
        )
        response = client.post(
            "/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature}
        )

    assert response.status_code == 200
    assert "911" in response.text
    assert len(seen) == 1
    assert seen[0][1] == "warning"
    with transaction(committed_db.sessions) as session:
        assert session.get_one(Patient, patient_id).status is PatientStatus.PAUSED


def test_the_clinic_alert_task_reaches_the_broker(committed_db: Database, tmp_path: Path) -> None:
    # kombu's in-memory transport: real Celery publishing, and no shared broker to clean.
    settings = web_settings(committed_db, tmp_path, broker_url="memory://")
    with transaction(committed_db.sessions) as session:
        make_patient(session, make_clinic(session), phone=PHONE)
    with client_for(create_app(settings)) as client:
        params = inbound("I fell")
        signature = RequestValidator(TOKEN).compute_signature(
            PUBLIC_URL + "/twilio/inbound", params
        )
        client.post("/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature})

    with Connection("memory://") as connection:  # type: ignore[no-untyped-call]
        queue = connection.SimpleQueue(CONTROL_QUEUE)  # not behind a burst of sends
        message = queue.get(timeout=5)
        message.ack()
        queue.close()
    assert message.headers["task"] == "ptnudge.clinic_alert"
    with transaction(committed_db.sessions) as session:
        inbound_id = session.scalars(select(InboundMessage.id)).one()
    assert message.payload[0] == [inbound_id]


def test_a_broken_broker_does_not_fail_the_webhook(committed_db: Database, tmp_path: Path) -> None:
    settings = web_settings(committed_db, tmp_path)

    def broken(_: int) -> None:
        raise ConnectionRefusedError("broker down")

    with transaction(committed_db.sessions) as session:
        make_patient(session, make_clinic(session), phone=PHONE)
    with client_for(create_app(settings, enqueue_alert=broken)) as client:
        params = inbound("severe pain")
        signature = RequestValidator(TOKEN).compute_signature(
            PUBLIC_URL + "/twilio/inbound", params
        )
        response = client.post(
            "/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature}
        )

    assert response.status_code == 200
    with transaction(committed_db.sessions) as session:
        row = session.scalars(select(InboundMessage)).one()
        assert (row.command, row.needs_attention) == ("warning", True)


def test_a_signed_request_without_a_sender_is_a_bad_request(web: Web) -> None:
    response = web.post_signed("/twilio/inbound", {"Body": "hi"})

    assert response.status_code == 400


@pytest.mark.parametrize(
    "params",
    [
        inbound("hi", sid="SM" + "0" * 70),
        inbound("hi", sid="SM\x00"),
        inbound("hi", sender="+1\x00"),
    ],
    ids=["long-sid", "nul-in-sid", "nul-in-sender"],
)
def test_a_signed_request_with_values_twilio_never_sends_is_a_bad_request(
    web: Web, params: dict[str, str]
) -> None:
    response = web.post_signed("/twilio/inbound", params)

    assert response.status_code == 400
    assert count_inbound(web) == 0


def test_a_nul_in_the_body_is_dropped_not_fatal(web: Web, patient_id: int) -> None:
    response = web.post_signed("/twilio/inbound", inbound("hel\x00lo"))

    assert response.status_code == 200
    with transaction(web.db.sessions) as session:
        assert session.scalars(select(InboundMessage.body)).one() == "hello"


# --- /twilio/status ------------------------------------------------------------------------


def status_params(status: str, *, sid: str = "SM" + "c" * 32, code: str = "") -> dict[str, str]:
    params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32}
    if code:
        params["ErrorCode"] = code
    return params


def sent_with_sid(web: Web, patient_id: int, sid: str = "SM" + "c" * 32) -> int:
    reminder_id = add(web, patient_id, status=ReminderStatus.SENT)
    with transaction(web.db.sessions) as session:
        session.get_one(Reminder, reminder_id).provider_id = sid
    return reminder_id


def test_a_signed_status_callback_is_applied(web: Web, patient_id: int) -> None:
    reminder_id = sent_with_sid(web, patient_id)

    response = web.post_signed("/twilio/status", status_params("delivered"))

    assert response.status_code == 200
    assert reminder(web, reminder_id).status is ReminderStatus.DELIVERED


def test_the_callback_url_query_is_part_of_the_signature(web: Web, patient_id: int) -> None:
    reminder_id = add(web, patient_id, status=ReminderStatus.SENDING)
    path = f"/twilio/status?r={reminder_id}"

    response = web.post_signed(path, status_params("sent"))
    forged = web.client.post(
        f"/twilio/status?r={reminder_id + 1}",
        data=status_params("failed", code="21610"),
        headers=web.signed(path, status_params("failed", code="21610")),
    )

    assert (response.status_code, forged.status_code) == (200, 403)
    assert reminder(web, reminder_id).status is ReminderStatus.SENT
    assert not opted_out(web)


def test_an_out_of_order_callback_does_not_move_the_status_back(web: Web, patient_id: int) -> None:
    reminder_id = sent_with_sid(web, patient_id)
    web.post_signed("/twilio/status", status_params("delivered"))

    web.post_signed("/twilio/status", status_params("sent"))

    assert reminder(web, reminder_id).status is ReminderStatus.DELIVERED


def test_error_21610_in_a_callback_opts_the_number_out(web: Web, patient_id: int) -> None:
    reminder_id = sent_with_sid(web, patient_id)
    with transaction(web.db.sessions) as session:
        session.get_one(Reminder, reminder_id).to_address = PHONE

    web.post_signed("/twilio/status", status_params("failed", code="21610"))

    assert reminder(web, reminder_id).error_code == "21610"
    assert opted_out(web)


def test_a_callback_for_an_unknown_message_gets_200(web: Web) -> None:
    response = web.post_signed("/twilio/status", status_params("delivered", sid="SMunknown"))

    assert response.status_code == 200


def test_a_forged_status_callback_is_refused(web: Web, patient_id: int) -> None:
    reminder_id = sent_with_sid(web, patient_id)

    response = web.client.post("/twilio/status", data=status_params("failed", code="21610"))

    assert response.status_code == 403
    assert reminder(web, reminder_id).status is ReminderStatus.SENT


# --- /e/{token} ----------------------------------------------------------------------------


def email_links(web: Web, patient_id: int) -> tuple[int, str, str]:
    reminder_id = add(
        web, patient_id, channel=Channel.EMAIL, due_at=web.now[0] - dt.timedelta(hours=1)
    )
    links = action_links(web.settings, reminder_id, urls=PublicUrls(PUBLIC_URL))
    prefix = PUBLIC_URL
    return (
        reminder_id,
        links["done_url"].removeprefix(prefix),
        links["stop_url"].removeprefix(prefix),
    )


def test_get_on_a_stop_link_only_shows_a_page(web: Web, patient_id: int) -> None:
    _, _, stop = email_links(web, patient_id)

    response = web.client.get(stop)

    assert response.status_code == 200
    assert '<form method="post">' in response.text
    assert not opted_out(web, "ana@example.com")


def test_one_click_unsubscribe_works_without_cookies_or_redirects(
    web: Web, patient_id: int
) -> None:
    _, _, stop = email_links(web, patient_id)

    response = web.client.post(
        stop,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )

    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert opted_out(web, "ana@example.com")
    assert not opted_out(web)  # the phone is another channel


def test_get_on_a_done_link_changes_nothing_and_post_records_it(web: Web, patient_id: int) -> None:
    reminder_id, done, _ = email_links(web, patient_id)

    page = web.client.get(done)
    assert page.status_code == 200
    assert reminder(web, reminder_id).outcome is None

    response = web.client.post(done)
    assert response.status_code == 200
    assert "recorded" in response.text
    assert reminder(web, reminder_id).outcome is Outcome.DONE


def test_clicking_twice_is_harmless(web: Web, patient_id: int) -> None:
    _, done, stop = email_links(web, patient_id)

    for link in (done, done, stop, stop):
        assert web.client.post(link).status_code == 200


@pytest.mark.parametrize("which", ["done", "stop"])
def test_a_tampered_link_is_refused_and_changes_nothing(
    web: Web, patient_id: int, which: str
) -> None:
    reminder_id, done, stop = email_links(web, patient_id)
    link = done if which == "done" else stop
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")

    for response in (web.client.get(tampered), web.client.post(tampered)):
        assert response.status_code == 400
        assert "not valid" in response.text
    assert reminder(web, reminder_id).outcome is None
    assert not opted_out(web, "ana@example.com")


def test_a_link_signed_with_another_key_is_refused(
    web: Web, patient_id: int, tmp_path: Path
) -> None:
    reminder_id, _, _ = email_links(web, patient_id)
    other = web_settings(web.db, tmp_path, secret_key="another-secret-key-0123456789")
    stop = action_links(other, reminder_id, urls=PublicUrls(PUBLIC_URL))["stop_url"]
    stop = stop.removeprefix(PUBLIC_URL)

    assert web.client.post(stop).status_code == 400
    assert not opted_out(web, "ana@example.com")


@pytest.mark.parametrize(("which", "days"), [("done", 15), ("stop", 61)])
def test_an_expired_link_says_so_and_changes_nothing(
    web: Web, patient_id: int, which: str, days: int
) -> None:
    reminder_id, done, stop = email_links(web, patient_id)
    web.now[0] += dt.timedelta(days=days)

    response = web.client.post(done if which == "done" else stop)

    assert response.status_code == 400
    assert "expired" in response.text
    assert reminder(web, reminder_id).outcome is None
    assert not opted_out(web, "ana@example.com")


def test_a_stop_link_still_works_after_a_month(web: Web, patient_id: int) -> None:
    _, _, stop = email_links(web, patient_id)
    web.now[0] += dt.timedelta(days=30)

    assert web.client.post(stop).status_code == 200
    assert opted_out(web, "ana@example.com")


# --- /healthz and /metrics -------------------------------------------------------------------


def test_healthz_is_ok_when_database_and_broker_answer(web: Web) -> None:
    response = web.client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"database": "ok", "broker": "ok"})


def health(settings: Settings) -> tuple[int, dict[str, str]]:
    with client_for(create_app(settings, enqueue_alert=lambda _: None)) as client:
        response = client.get("/healthz")
    return response.status_code, response.json()


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = make_settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:5432/ptnudge_no_such_database",
        tmp_path=tmp_path,
    )

    status, body = health(settings)

    assert status == 503
    assert body["database"].startswith("error")
    assert body["broker"] == "ok"
    assert "ptnudge_no_such_database" not in str(body)


def test_healthz_is_503_when_the_broker_is_unreachable(database: Database, tmp_path: Path) -> None:
    settings = make_settings(
        database_url=database.url, tmp_path=tmp_path, broker_url="redis://127.0.0.1:1/0"
    )

    status, body = health(settings)

    assert status == 503
    assert body["database"] == "ok"
    assert body["broker"].startswith("error")


def test_metrics_expose_the_counters(web: Web, patient_id: int) -> None:
    web.post_signed("/twilio/inbound", inbound("done"))

    response = web.client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    for name in (
        "ptnudge_messages_sent_total",
        "ptnudge_messages_failed_total",
        "ptnudge_replies_total",
        "ptnudge_tick_duration_seconds",
        "ptnudge_send_lag_seconds",
        "ptnudge_due_backlog",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in response.text, name
    assert 'ptnudge_replies_total{command="done"}' in response.text


def test_metrics_add_up_every_process_in_multiprocess_mode(tmp_path: Path) -> None:
    # Each process writes its own files; /metrics in any process shows the sum.
    script = (
        "from service import metrics\n"
        "metrics.REPLIES.labels(command='stop').inc()\n"
        "print(metrics.exposition()[0].decode())\n"
    )
    env = os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def run() -> str:
        command = [sys.executable, "-c", script]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout

    run()
    output = run()

    assert 'ptnudge_replies_total{command="stop"} 2.0' in output


def test_signature_checking_cannot_be_turned_off_outside_development() -> None:
    for env in ("production", "test"):
        with pytest.raises(SettingsError, match="PTNUDGE_VERIFY_TWILIO_SIGNATURES"):
            load_settings(
                **(PRODUCTION_SETTINGS | {"env": env}),
                verify_twilio_signatures=False,
                _env_file=None,
            )
    assert not load_settings(
        env="development", verify_twilio_signatures=False, _env_file=None
    ).verify_twilio_signatures


# --- the staff inbox, from the webhook to the command ----------------------------------------


def test_a_free_text_reply_waits_in_the_inbox_until_staff_close_it(
    web: Web, patient_id: int
) -> None:
    answer = web.post_signed("/twilio/inbound", inbound("Can I swim instead of walking?"))
    opened = json.loads(run(web.db, "replies", "list", "--open", "--json").stdout)
    closed = run(web.db, "replies", "ack", str(opened[0]["id"]))
    after = json.loads(run(web.db, "replies", "list", "--open", "--json").stdout)

    assert answer.status_code == 200
    assert [(d["patient_id"], d["text"], d["open"]) for d in opened] == [
        (patient_id, "Can I swim instead of walking?", True)
    ]
    assert closed.exit_code == 0, closed.output
    assert after == []
