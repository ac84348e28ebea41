"""The registry picks the real provider when one is configured and the console otherwise."""

from __future__ import annotations

from collections.abc import Callable

from config.settings import Settings, load_settings
from service.models import Channel
from service.transports.base import OutboundMessage
from service.transports.console import ConsoleEmailTransport, ConsoleSmsTransport
from service.transports.email import SmtpEmailTransport
from service.transports.registry import email_transport, sms_reconciler, sms_transport
from service.transports.sms import TwilioSmsTransport
from tests.fakes.smtp import FakeSmtpServer
from tests.fakes.twilio_server import FakeTwilioServer

SettingsFactory = Callable[..., Settings]


def plain_settings(**overrides: object) -> Settings:
    return load_settings(env="test", _env_file=None, **overrides)


def test_without_twilio_credentials_sms_go_to_the_console() -> None:
    settings = plain_settings()

    assert isinstance(sms_transport(settings), ConsoleSmsTransport)
    assert sms_reconciler(sms_transport(settings)) is None


def test_with_twilio_credentials_sms_go_to_twilio(twilio_settings: SettingsFactory) -> None:
    settings = twilio_settings()

    assert isinstance(sms_transport(settings), TwilioSmsTransport)
    assert isinstance(sms_reconciler(sms_transport(settings)), TwilioSmsTransport)


def test_console_backend_wins_over_twilio_credentials(twilio_settings: SettingsFactory) -> None:
    settings = twilio_settings(sms_backend="console")

    assert isinstance(sms_transport(settings), ConsoleSmsTransport)


def test_chosen_twilio_transport_sends_to_the_configured_api(
    twilio: FakeTwilioServer, twilio_settings: SettingsFactory
) -> None:
    message = OutboundMessage(channel=Channel.SMS, to="+13125550100", body="Walk.", reference="r1")

    sms_transport(twilio_settings()).send(message)

    assert [sent["body"] for sent in twilio.messages] == ["Walk."]


def test_without_smtp_url_email_goes_to_the_console() -> None:
    assert isinstance(email_transport(plain_settings()), ConsoleEmailTransport)


def test_with_smtp_url_email_goes_to_the_smtp_server(
    smtp: FakeSmtpServer, smtp_settings: SettingsFactory
) -> None:
    transport = email_transport(smtp_settings(smtp_url=smtp.url))
    message = OutboundMessage(
        channel=Channel.EMAIL, to="ana@example.com", body="Stretch.", reference="r2"
    )

    transport.send(message)

    assert isinstance(transport, SmtpEmailTransport)
    assert len(smtp.messages) == 1
