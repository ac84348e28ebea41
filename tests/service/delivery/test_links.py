"""Signed email action links: one salt per action, an id and nothing else, an age limit."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest

from config.settings import Settings
from service.delivery.links import (
    LinkAction,
    LinkError,
    LinkTarget,
    action_links,
    make_token,
    read_token,
)
from service.web.urls import PublicUrls
from tests.conftest import make_settings


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
