"""The Twilio transport against a Twilio-compatible server on loopback, through the real
twilio client: what arrives, and how each failure is classified."""

from __future__ import annotations

import datetime as dt
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from config.settings import Settings
from service.models import Channel
from service.transports.base import OutboundMessage, TransportError
from service.transports.sms import TwilioSmsTransport
from tests.fakes.twilio_server import FakeTwilioServer

SettingsFactory = Callable[..., Settings]

PATIENT = "+13125550100"
CALLBACK = "https://ptnudge.example/twilio/status?d=42"


def sms_to(
    to: str = PATIENT, body: str = "Ana, time to stand up and walk for 2 minutes."
) -> OutboundMessage:
    return OutboundMessage(
        channel=Channel.SMS, to=to, body=body, reference="r42", status_callback=CALLBACK
    )


def send_error(sms: TwilioSmsTransport, message: OutboundMessage | None = None) -> TransportError:
    with pytest.raises(TransportError) as caught:
        sms.send(message or sms_to())
    return caught.value


def test_send_hands_twilio_the_recipient_sender_body_and_status_callback(
    sms: TwilioSmsTransport, twilio: FakeTwilioServer
) -> None:
    sms.send(sms_to(body="Ana, pelvic tilts now: 10 slow ones."))

    [sent] = twilio.messages
    assert sent["to"] == PATIENT
    assert sent["from"] == "+13125550000"
    assert sent["body"] == "Ana, pelvic tilts now: 10 slow ones."
    assert sent["status_callback"] == CALLBACK


def test_send_returns_the_message_sid_as_sent(
    sms: TwilioSmsTransport, twilio: FakeTwilioServer
) -> None:
    receipt = sms.send(sms_to())

    assert receipt.status == "sent"
    assert receipt.provider_id == twilio.messages[0]["sid"]
    assert str(receipt.provider_id).startswith("SM")


def test_send_through_a_messaging_service_names_the_service_not_a_number(
    twilio: FakeTwilioServer,
    twilio_settings: SettingsFactory,
) -> None:
    service_sid = "MG" + "ab" * 16
    settings = twilio_settings(twilio_from_number=None, twilio_messaging_service_sid=service_sid)

    receipt = TwilioSmsTransport(settings).send(sms_to())

    [sent] = twilio.messages
    assert sent["messaging_service_sid"] == service_sid
    assert sent["from"] is None
    assert receipt.status == "sent"  # Twilio answered "accepted"


def test_send_without_status_callback_sends_none(
    sms: TwilioSmsTransport, twilio: FakeTwilioServer
) -> None:
    sms.send(OutboundMessage(channel=Channel.SMS, to=PATIENT, body="Stretch.", reference="r1"))

    assert twilio.messages[0]["status_callback"] is None


def test_rate_limit_is_transient_with_twilio_code(
    sms: TwilioSmsTransport, twilio: FakeTwilioServer
) -> None:
    twilio.fail_next(status=429, code=20429)

    error = send_error(sms)

    assert not error.permanent
    assert error.code == "20429"
    assert not error.accepted_possible
    assert twilio.messages == []


def test_send_succeeds_once_the_rate_limit_passes(
    sms: TwilioSmsTransport, twilio: FakeTwilioServer
) -> None:
    twilio.fail_next(1, status=429, code=20429)
    send_error(sms)

    sms.send(sms_to())

    assert len(twilio.messages_to(PATIENT)) == 1


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_transient_and_maybe_accepted(
    sms: TwilioSmsTransport, twilio: FakeTwilioServer, status: int
) -> None:
    twilio.fail_next(status=status, code=None)

    error = send_error(sms)

    assert not error.permanent
    assert error.code == str(status)
    # A 5xx says nothing about whether the message was taken: it is settled against the
    # provider's message list, never resent blindly.
    assert error.accepted_possible


@pytest.mark.parametrize("status", [502, 504])
def test_a_proxy_error_after_twilio_took_the_message_is_maybe_accepted(
    sms: TwilioSmsTransport, twilio: FakeTwilioServer, status: int
) -> None:
    twilio.fail_after_accept(status=status)

    error = send_error(sms)

    assert not error.permanent
    assert error.code == str(status)
    assert error.accepted_possible
    assert len(twilio.messages_to(PATIENT)) == 1  # Twilio had it all along


def test_opted_out_recipient_is_permanent_with_code_21610(
    sms: TwilioSmsTransport, twilio: FakeTwilioServer
) -> None:
    twilio.fail_for(PATIENT, status=400, code=21610)

    error = send_error(sms)

    assert error.permanent
    assert error.code == "21610"


def test_invalid_number_is_permanent_with_code_21211(sms: TwilioSmsTransport) -> None:
    error = send_error(sms, sms_to(to="+1555"))  # the fake validates To as Twilio does

    assert error.permanent
    assert error.code == "21211"


@pytest.mark.parametrize("code", [21408, 21606, 21612, 21614])
def test_numbers_twilio_cannot_reach_are_permanent(
    sms: TwilioSmsTransport, twilio: FakeTwilioServer, code: int
) -> None:
    twilio.fail_for(PATIENT, status=400, code=code)

    error = send_error(sms)

    assert error.permanent
    assert error.code == str(code)


def test_wrong_credentials_are_transient_so_the_reminder_waits_for_a_fix(
    twilio: FakeTwilioServer,
    twilio_settings: SettingsFactory,
) -> None:
    sms = TwilioSmsTransport(twilio_settings(twilio_auth_token="wrong-token-123456"))

    error = send_error(sms)

    assert not error.permanent
    assert error.code == "20003"


def test_answer_slower_than_timeout_is_transient_and_maybe_accepted(
    twilio: FakeTwilioServer,
    twilio_settings: SettingsFactory,
) -> None:
    sms = TwilioSmsTransport(twilio_settings(), timeout=0.3)
    twilio.slow(1.5)

    error = send_error(sms)

    assert not error.permanent
    assert error.code == "timeout"
    assert error.accepted_possible
    assert len(twilio.messages_to(PATIENT)) == 1  # Twilio had it all along


def test_connection_dropped_after_the_request_is_maybe_accepted(
    sms: TwilioSmsTransport, twilio: FakeTwilioServer
) -> None:
    twilio.drop_next()

    error = send_error(sms)

    assert not error.permanent
    assert error.code == "connection"
    assert error.accepted_possible


def test_connection_refused_is_transient_and_surely_not_accepted(
    twilio: FakeTwilioServer,
    twilio_settings: SettingsFactory,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    sms = TwilioSmsTransport(twilio_settings(twilio_api_url=f"http://127.0.0.1:{port}"))

    error = send_error(sms)

    assert not error.permanent
    assert error.code == "connection"
    assert not error.accepted_possible


def test_errors_do_not_carry_the_full_number_or_the_provider_exception(
    sms: TwilioSmsTransport,
) -> None:
    error = send_error(sms, sms_to(to="+1 312 555 0100"))  # 21211, and Twilio quotes it back

    assert error.code == "21211"
    assert "555 0100" not in str(error)
    assert "***0100" in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_logs_never_hold_the_full_number_or_the_body(
    sms: TwilioSmsTransport, twilio: FakeTwilioServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = "Ana, chin tucks: 10 gentle ones."
    sms.send(sms_to(body=body))
    twilio.fail_for(PATIENT, code=21610)
    send_error(sms, sms_to(body=body))
    sms.find_sent(to=PATIENT, since=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))

    assert "***0100" in caplog.text
    assert "3125550100" not in caplog.text
    assert body not in caplog.text


def test_find_sent_returns_what_twilio_holds_for_the_number(
    sms: TwilioSmsTransport, twilio: FakeTwilioServer
) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    receipt = sms.send(sms_to(body="Walk for 2 minutes."))
    sms.send(sms_to(to="+13125550199"))

    [record] = sms.find_sent(to=PATIENT, since=before)

    assert record.provider_id == receipt.provider_id
    assert record.to == PATIENT
    assert record.body == "Walk for 2 minutes."
    assert record.status == "sent"
    assert before <= record.created_at <= dt.datetime.now(dt.UTC)


def test_find_sent_leaves_out_messages_created_before_since(sms: TwilioSmsTransport) -> None:
    sms.send(sms_to())

    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)

    assert sms.find_sent(to=PATIENT, since=later) == []


def test_find_sent_accepts_any_timezone_for_since(sms: TwilioSmsTransport) -> None:
    sms.send(sms_to())
    chicago_now = dt.datetime.now(dt.timezone(dt.timedelta(hours=-6)))

    found = sms.find_sent(to=PATIENT, since=chicago_now - dt.timedelta(seconds=5))

    assert len(found) == 1


def test_find_sent_sees_a_message_still_queued_at_twilio(
    sms: TwilioSmsTransport, twilio: FakeTwilioServer
) -> None:
    twilio.set_hold_in_queue(hold=True)  # no date_sent yet, as behind a throttled service
    sms.send(sms_to())

    [record] = sms.find_sent(to=PATIENT, since=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))

    assert record.status == "queued"


def test_find_sent_refuses_a_naive_since(sms: TwilioSmsTransport) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sms.find_sent(to=PATIENT, since=dt.datetime(2026, 1, 1))  # noqa: DTZ001


def test_find_sent_failure_is_a_transport_error(
    twilio: FakeTwilioServer, twilio_settings: SettingsFactory
) -> None:
    sms = TwilioSmsTransport(twilio_settings(twilio_auth_token="wrong-token-123456"))

    with pytest.raises(TransportError) as caught:
        sms.find_sent(to=PATIENT, since=dt.datetime.now(dt.UTC))

    assert caught.value.code == "20003"


# --- the environment's proxy and CA settings, read once when the transport is built ------------

PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)


@pytest.fixture
def clean_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_http_proxy_from_the_environment_carries_every_send(
    twilio_settings: SettingsFactory,
    twilio: FakeTwilioServer,
    clean_proxy_environment: pytest.MonkeyPatch,
) -> None:
    # The fake answers absolute-form requests as a forward proxy would pass them on; the API
    # host itself does not resolve, so the message arrives only through the proxy.
    clean_proxy_environment.setenv("HTTP_PROXY", twilio.url)
    sms = TwilioSmsTransport(
        twilio_settings(twilio_api_url="http://api.twilio.invalid"), timeout=2.0
    )

    sms.send(sms_to())
    sms.send(sms_to(to="+13125550101"))

    assert [sent["to"] for sent in twilio.messages] == [PATIENT, "+13125550101"]


def test_no_proxy_naming_the_api_host_sends_directly(
    twilio_settings: SettingsFactory,
    twilio: FakeTwilioServer,
    clean_proxy_environment: pytest.MonkeyPatch,
) -> None:
    clean_proxy_environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    clean_proxy_environment.setenv("NO_PROXY", "127.0.0.1,localhost")
    sms = TwilioSmsTransport(twilio_settings(), timeout=2.0)

    sms.send(sms_to())

    assert len(twilio.messages) == 1


def test_a_ca_bundle_named_in_the_environment_is_the_one_https_uses(
    twilio_settings: SettingsFactory,
    clean_proxy_environment: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    https_url = f"https://127.0.0.1:{closed_port()}"
    # Without the variable: the usual bundle, and the closed port refuses the connection.
    assert send_error(TwilioSmsTransport(twilio_settings(twilio_api_url=https_url))).code == (
        "connection"
    )

    clean_proxy_environment.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing-ca.pem"))
    error = send_error(TwilioSmsTransport(twilio_settings(twilio_api_url=https_url)))

    # requests looks for the named bundle before it connects: the variable was read.
    assert error.code == "unexpected"
