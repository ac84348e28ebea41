"""Signed email action links: one salt per action, an id and nothing else, an age limit."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
import time_machine
from sqlalchemy.orm import Session

from config.settings import Settings
from service.delivery.links import (
    LinkAction,
    LinkError,
    LinkTarget,
    action_links,
    apply_link,
    check_link,
    make_token,
    read_token,
)
from service.enrollment import optouts
from service.models import Channel, ChannelChoice, Reminder, ReminderStatus
from service.web.urls import PublicUrls
from tests.conftest import make_settings
from tests.factories import make_clinic, make_patient


@pytest.fixture
def link_settings(tmp_path: Path) -> Settings:
    return make_settings(
        database_url="sqlite://", tmp_path=tmp_path, public_url="https://pt.example.org"
    )


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_links_point_at_the_public_url(link_settings: Settings) -> None:
    links = action_links(link_settings, 42, urls=PublicUrls(link_settings.public_url))

    assert set(links) == {"done_url", "stop_url"}
    assert all(url.startswith("https://pt.example.org/e/") for url in links.values())
    assert links["done_url"] != links["stop_url"]


@pytest.mark.parametrize("action", list(LinkAction))
def test_a_token_says_which_action_it_was_made_for(
    link_settings: Settings, action: LinkAction
) -> None:
    token = make_token(link_settings, reminder_id=42, action=action)

    assert read_token(link_settings, token, now=now()) == LinkTarget(action, 42)


def test_a_token_carries_only_the_reminder_id(link_settings: Settings) -> None:
    token = make_token(link_settings, reminder_id=42, action=LinkAction.STOP)

    payload = token.split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))) == 42


def test_a_token_of_another_key_is_invalid(link_settings: Settings, tmp_path: Path) -> None:
    other = make_settings(
        database_url="sqlite://", tmp_path=tmp_path, secret_key="not-the-same-key-0123456789"
    )
    token = make_token(other, reminder_id=42, action=LinkAction.DONE)

    with pytest.raises(LinkError) as raised:
        read_token(link_settings, token, now=now())
    assert raised.value.reason == "invalid"


@pytest.mark.parametrize("token", ["", "abc", "NDI.x.y", "42"])
def test_garbage_is_invalid(link_settings: Settings, token: str) -> None:
    with pytest.raises(LinkError):
        read_token(link_settings, token, now=now())


@pytest.mark.parametrize(
    ("action", "fresh", "stale"),
    [(LinkAction.DONE, 13, 15), (LinkAction.STOP, 59, 61)],
)
def test_tokens_expire_after_their_actions_age_limit(
    link_settings: Settings, action: LinkAction, fresh: int, stale: int
) -> None:
    token = make_token(link_settings, reminder_id=7, action=action)

    assert read_token(link_settings, token, now=now() + dt.timedelta(days=fresh)).reminder_id == 7
    with pytest.raises(LinkError) as raised:
        read_token(link_settings, token, now=now() + dt.timedelta(days=stale))
    assert raised.value.reason == "expired"


@pytest.mark.parametrize("reminder_id", [2**63, 2**64 + 5, 0, -3])
def test_a_token_for_an_id_no_reminder_can_have_is_invalid(
    link_settings: Settings, reminder_id: int
) -> None:
    # Signed by us all the same (the key leaked, or an old bug): still never a database
    # error, whatever the number.
    token = make_token(link_settings, reminder_id=reminder_id, action=LinkAction.STOP)

    with pytest.raises(LinkError) as raised:
        read_token(link_settings, token, now=now())
    assert raised.value.reason == "invalid"


def test_a_token_dated_in_the_future_is_invalid(link_settings: Settings) -> None:
    with time_machine.travel(now() + dt.timedelta(days=1), tick=False):
        token = make_token(link_settings, reminder_id=7, action=LinkAction.DONE)

    with pytest.raises(LinkError) as raised:
        read_token(link_settings, token, now=now())
    assert raised.value.reason == "invalid"


def test_a_token_a_few_seconds_ahead_is_accepted(link_settings: Settings) -> None:
    # The web app's clock and the worker's can differ a little.
    with time_machine.travel(now() + dt.timedelta(seconds=30), tick=False):
        token = make_token(link_settings, reminder_id=7, action=LinkAction.DONE)

    assert read_token(link_settings, token, now=now()).reminder_id == 7


def sms_reminder(session: Session, *, email: str | None) -> Reminder:
    channel = ChannelChoice.SMS if email is None else ChannelChoice.BOTH
    patient = make_patient(session, make_clinic(session), email=email, channel=channel)
    reminder = Reminder(
        patient_id=patient.id,
        kind="stretch",
        channel=Channel.SMS,
        due_at=now(),
        status=ReminderStatus.DELIVERED,
        status_at=now(),
        to_address=patient.phone,
    )
    session.add(reminder)
    session.flush()
    return reminder


def test_a_stop_link_with_no_email_address_behind_it_says_so_and_changes_nothing(
    session: Session, link_settings: Settings
) -> None:
    reminder = sms_reminder(session, email=None)
    token = make_token(link_settings, reminder_id=reminder.id, action=LinkAction.STOP)

    for act in (check_link, apply_link):
        with pytest.raises(LinkError) as raised:
            act(session=session, settings=link_settings, token=token, now=now())
        assert raised.value.reason == "no_email"
    assert not optouts.is_opted_out(
        session=session, address=reminder.to_address, channel=Channel.SMS
    )


def test_a_stop_link_of_an_sms_reminder_unsubscribes_the_patients_email(
    session: Session, link_settings: Settings
) -> None:
    reminder = sms_reminder(session, email="ana@example.com")
    token = make_token(link_settings, reminder_id=reminder.id, action=LinkAction.STOP)

    result = apply_link(session=session, settings=link_settings, token=token, now=now())

    assert result.changed
    assert optouts.is_opted_out(session=session, address="ana@example.com", channel=Channel.EMAIL)
    assert not optouts.is_opted_out(
        session=session, address=reminder.to_address, channel=Channel.SMS
    )
