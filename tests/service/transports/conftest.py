"""Fixtures for the transport tests: the fake outside world and settings pointing at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from config.settings import Settings, load_settings
from service.transports.sms import TwilioSmsTransport
from tests.fakes.smtp import FakeSmtpServer, smtp_server
from tests.fakes.twilio_server import FakeTwilioServer, twilio_server

SMS_TIMEOUT = 2.0  # seconds; the slow-server test uses its own, shorter one

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    with twilio_server() as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[FakeSmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def twilio_settings(twilio: FakeTwilioServer) -> SettingsFactory:
    """Settings for the Twilio transport pointed at the fake; keyword overrides win."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "env": "test",
            "twilio_account_sid": twilio.account_sid,
            "twilio_auth_token": twilio.auth_token,
            "twilio_from_number": "+13125550000",
            "twilio_api_url": twilio.url,
            "_env_file": None,
        }
        return load_settings(**{**values, **overrides})

    return make


@pytest.fixture
def smtp_settings() -> SettingsFactory:
    """Settings for the SMTP transport; pass ``smtp_url`` (the fake's ``url``)."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "env": "test",
            "sms_backend": "console",
            "email_from": "Back Clinic <reminders@backclinic.example>",
            "_env_file": None,
        }
        return load_settings(**{**values, **overrides})

    return make


@pytest.fixture
def sms(twilio_settings: SettingsFactory) -> TwilioSmsTransport:
    return TwilioSmsTransport(twilio_settings(), timeout=SMS_TIMEOUT)
