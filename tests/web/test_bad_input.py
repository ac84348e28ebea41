"""Input that is signed or well-formed and still wrong, at the web edge: every answer is a
clear refusal or a page that tells the truth, never a 500 and never a change it should not
make."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import time_machine
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from config.settings import Settings
from service.db import transaction
from service.delivery.links import LinkAction, make_token
from service.enrollment import optouts
from service.models import Channel, ChannelChoice, InboundMessage, Reminder, ReminderStatus, utcnow
from service.web.factory import create_app
from tests.conftest import Database, make_settings
from tests.factories import make_clinic, make_patient
from tests.web.conftest import serve

PUBLIC_URL = "https://ptnudge.example.org"
AUTH_TOKEN = "test-auth-token-0123456789"
PHONE = "+13125557100"


@dataclass
class Edge:
    client: httpx.Client
    db: Database
    settings: Settings

    def post_signed(self, path: str, params: dict[str, str]) -> httpx.Response:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + path, params)
        return self.client.post(path, data=params, headers={"X-Twilio-Signature": signature})

    def token(self, reminder_id: int, action: LinkAction) -> str:
        return "/e/" + make_token(self.settings, reminder_id=reminder_id, action=action)


@pytest.fixture
def edge(committed_db: Database, tmp_path: Path) -> Iterator[Edge]:
    settings = make_settings(
        database_url=committed_db.url,
        tmp_path=tmp_path,
        public_url=PUBLIC_URL,
        twilio_auth_token=AUTH_TOKEN,
    )
    app = create_app(settings, enqueue_alert=lambda _: None)
    with serve(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield Edge(client, committed_db, settings)


def add_reminder(edge: Edge, *, status: ReminderStatus, email: str | None = None) -> int:
    with transaction(edge.db.sessions) as session:
        channel = ChannelChoice.SMS if email is None else ChannelChoice.BOTH
        patient = make_patient(
            session, make_clinic(session), phone=PHONE, email=email, channel=channel
        )
        reminder = Reminder(
            patient_id=patient.id,
            kind="stretch",
            channel=Channel.SMS,
            due_at=utcnow() + dt.timedelta(hours=1),
            status=status,
            status_at=utcnow(),
            to_address=PHONE,
        )
        session.add(reminder)
        session.flush()
        return reminder.id


def stored(edge: Edge, reminder_id: int) -> Reminder:
    with transaction(edge.db.sessions) as session:
        return session.get_one(Reminder, reminder_id)


def test_a_status_callback_by_id_does_not_deliver_a_reminder_that_was_never_sent(
    edge: Edge,
) -> None:
    reminder_id = add_reminder(edge, status=ReminderStatus.SCHEDULED)
    path = f"/twilio/status?r={reminder_id}"

    response = edge.post_signed(path, {"MessageSid": "SM" + "c" * 32, "MessageStatus": "delivered"})

    assert response.status_code == 200  # nothing Twilio could fix by retrying
    found = stored(edge, reminder_id)
    assert (found.status, found.provider_id) == (ReminderStatus.SCHEDULED, None)


@pytest.mark.parametrize("reminder_id", [2**64 + 1, 2**63])
def test_a_link_for_an_id_beyond_64_bits_is_a_clear_400(edge: Edge, reminder_id: int) -> None:
    link = edge.token(reminder_id, LinkAction.STOP)

    for response in (edge.client.get(link), edge.client.post(link)):
        assert response.status_code == 400
        assert "not valid" in response.text


def test_a_link_dated_in_the_future_is_refused(edge: Edge) -> None:
    reminder_id = add_reminder(edge, status=ReminderStatus.DELIVERED, email="ana@example.com")
    with time_machine.travel(utcnow() + dt.timedelta(days=2), tick=False):
        link = edge.token(reminder_id, LinkAction.STOP)

    response = edge.client.post(link)

    assert response.status_code == 400
    assert "not valid" in response.text
    with transaction(edge.db.sessions) as session:
        assert not optouts.is_opted_out(
            session=session, address="ana@example.com", channel=Channel.EMAIL
        )


def test_a_stop_link_with_no_email_behind_it_tells_the_truth(edge: Edge) -> None:
    reminder_id = add_reminder(edge, status=ReminderStatus.DELIVERED)
    link = edge.token(reminder_id, LinkAction.STOP)

    for response in (edge.client.get(link), edge.client.post(link)):
        assert response.status_code == 400
        assert "nothing was unsubscribed" in response.text
        assert "reply STOP" in response.text
        assert "<form" not in response.text
    with transaction(edge.db.sessions) as session:
        assert not optouts.is_opted_out(session=session, address=PHONE, channel=Channel.SMS)


def test_a_megabyte_inbound_body_is_stored_cut_and_marked(edge: Edge) -> None:
    add_reminder(edge, status=ReminderStatus.DELIVERED)
    params = {"MessageSid": "SM" + "d" * 32, "From": PHONE, "To": "+13125550000"}

    response = edge.post_signed("/twilio/inbound", params | {"Body": "z" * 1_000_000})

    assert response.status_code == 200
    with transaction(edge.db.sessions) as session:
        body = session.scalars(select(InboundMessage.body)).one()
    assert len(body) == 2000
    assert body.endswith("… [cut]")


@pytest.mark.parametrize(
    ("sender", "reason"),
    [
        ("whatsapp:+13125557100", "phone number"),
        ("ana@example.com", "phone number"),
        ("3125557100", "phone number"),
    ],
)
def test_an_inbound_from_that_is_not_a_phone_number_is_refused_and_nothing_stored(
    edge: Edge, sender: str, reason: str
) -> None:
    add_reminder(edge, status=ReminderStatus.DELIVERED, email="ana@example.com")
    params = {"MessageSid": "SM" + "e" * 32, "From": sender, "To": "+13125550000", "Body": "STOP"}

    response = edge.post_signed("/twilio/inbound", params)

    assert response.status_code == 400
    assert reason in response.text
    with transaction(edge.db.sessions) as session:
        assert list(session.scalars(select(InboundMessage))) == []
        for channel in Channel:
            assert not optouts.is_opted_out(session=session, address=sender, channel=channel)
            assert not optouts.is_opted_out(
                session=session, address="ana@example.com", channel=channel
            )


def test_an_inbound_from_written_with_spaces_is_stored_in_e164(edge: Edge) -> None:
    add_reminder(edge, status=ReminderStatus.DELIVERED)
    params = {"MessageSid": "SM" + "f" * 32, "From": "+1 312-555-7100", "To": "+13125550000"}

    response = edge.post_signed("/twilio/inbound", params | {"Body": "STOP"})

    assert response.status_code == 200
    with transaction(edge.db.sessions) as session:
        row = session.scalars(select(InboundMessage)).one()
        assert row.from_address == PHONE
        assert optouts.is_opted_out(session=session, address=PHONE, channel=Channel.SMS)
