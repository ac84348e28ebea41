"""The development transports print each message, body shown and recipient masked."""

from __future__ import annotations

import io

import pytest

from service.models import Channel
from service.transports.base import OutboundMessage
from service.transports.console import ConsoleEmailTransport, ConsoleSmsTransport


def sms(body: str = "Ana, stand up and walk for 2 minutes.") -> OutboundMessage:
    return OutboundMessage(channel=Channel.SMS, to="+13125550100", body=body, reference="r9")


def test_sms_prints_the_body_and_the_masked_number() -> None:
    screen = io.StringIO()

    ConsoleSmsTransport(screen).send(sms())

    printed = screen.getvalue()
    assert "Ana, stand up and walk for 2 minutes." in printed
    assert "***0100" in printed
    assert "3125550100" not in printed
    assert "r9" in printed


def test_sms_receipt_is_sent_with_a_console_id() -> None:
    screen = io.StringIO()

    receipt = ConsoleSmsTransport(screen).send(sms())

    assert receipt.status == "sent"
    assert str(receipt.provider_id).startswith("console-")
    assert str(receipt.provider_id) in screen.getvalue()


def test_each_message_gets_its_own_id() -> None:
    transport = ConsoleSmsTransport(io.StringIO())

    ids = {transport.send(sms()).provider_id for _ in range(3)}

    assert len(ids) == 3


def test_email_prints_subject_headers_and_text_with_the_address_masked() -> None:
    screen = io.StringIO()
    message = OutboundMessage(
        channel=Channel.EMAIL,
        to="ana.lopez@example.com",
        body="Ana, time for your pelvic tilts.",
        reference="r10",
        subject="Pelvic tilts",
        html="<p>Ana, time for your pelvic tilts.</p>",
        headers={"List-Unsubscribe": "<https://ptnudge.example/e/tok>"},
    )

    ConsoleEmailTransport(screen).send(message)

    printed = screen.getvalue()
    assert "Subject: Pelvic tilts" in printed
    assert "List-Unsubscribe: <https://ptnudge.example/e/tok>" in printed
    assert "Ana, time for your pelvic tilts." in printed
    assert "a***@example.com" in printed
    assert "ana.lopez" not in printed
    assert "HTML part" in printed


def test_default_stream_is_stdout_at_the_time_of_sending(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ConsoleSmsTransport().send(sms(body="Chin tucks, 10 gentle ones."))

    assert "Chin tucks, 10 gentle ones." in capsys.readouterr().out
