"""The SMTP transport against aiosmtpd on loopback: what arrives, and how refusals and
broken connections are classified."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from config.settings import Settings, SettingsError
from service.models import Channel
from service.transports.base import OutboundMessage, TransportError
from service.transports.email import SmtpEmailTransport
from tests.fakes.smtp import FakeSmtpServer, smtp_server

SettingsFactory = Callable[..., Settings]
PATIENT = "ana.lopez@example.com"
UNSUBSCRIBE = "<https://ptnudge.example/e/tok123>"


def email_to(
    to: str = PATIENT, *, html: str | None = "<p>Ana, time for your <b>pelvic tilts</b>.</p>"
) -> OutboundMessage:
    return OutboundMessage(
        channel=Channel.EMAIL,
        to=to,
        body="Ana, time for your pelvic tilts.",
        reference="r7",
        subject="Pelvic tilts",
        html=html,
        headers={
            "List-Unsubscribe": UNSUBSCRIBE,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


@pytest.fixture
def transport(smtp: FakeSmtpServer, smtp_settings: SettingsFactory) -> SmtpEmailTransport:
    return SmtpEmailTransport(smtp_settings(smtp_url=smtp.url))


def send_error(
    transport: SmtpEmailTransport, message: OutboundMessage | None = None
) -> TransportError:
    with pytest.raises(TransportError) as caught:
        transport.send(message or email_to())
    return caught.value


def test_send_delivers_text_and_html_as_alternatives(
    transport: SmtpEmailTransport, smtp: FakeSmtpServer
) -> None:
    transport.send(email_to())

    [message] = smtp.messages
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None
    assert text.get_content().strip() == "Ana, time for your pelvic tilts."
    assert html is not None
    assert "<b>pelvic tilts</b>" in html.get_content()


def test_send_addresses_the_envelope_and_headers(
    transport: SmtpEmailTransport, smtp: FakeSmtpServer
) -> None:
    transport.send(email_to())

    [mail] = smtp.mails
    assert mail.mail_from == "reminders@backclinic.example"
    assert mail.rcpt_tos == (PATIENT,)
    assert mail.message["To"] == PATIENT
    assert mail.message["From"] == "Back Clinic <reminders@backclinic.example>"
    assert mail.message["Subject"] == "Pelvic tilts"
    assert mail.message["Date"] is not None


def test_send_passes_one_click_unsubscribe_headers_through(
    transport: SmtpEmailTransport, smtp: FakeSmtpServer
) -> None:
    transport.send(email_to())

    [message] = smtp.messages
    assert message["List-Unsubscribe"] == UNSUBSCRIBE
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_receipt_carries_the_message_id_that_arrived(
    transport: SmtpEmailTransport, smtp: FakeSmtpServer
) -> None:
    receipt = transport.send(email_to())

    [message] = smtp.messages
    assert receipt.status == "sent"
    assert receipt.provider_id == message["Message-ID"]
    assert str(receipt.provider_id).endswith("@backclinic.example>")


def test_message_ids_are_unique(transport: SmtpEmailTransport) -> None:
    ids = {transport.send(email_to()).provider_id for _ in range(3)}

    assert len(ids) == 3


def test_without_html_the_email_is_plain_text(
    transport: SmtpEmailTransport, smtp: FakeSmtpServer
) -> None:
    transport.send(email_to(html=None))

    [message] = smtp.messages
    assert message.get_content_type() == "text/plain"


def test_non_ascii_text_arrives_intact(transport: SmtpEmailTransport, smtp: FakeSmtpServer) -> None:
    message = OutboundMessage(
        channel=Channel.EMAIL,
        to=PATIENT,
        body="José, estiramiento de 30 s — ¡bien hecho!",
        reference="r8",
        subject="Estiramiento ✓",
    )

    transport.send(message)

    [arrived] = smtp.messages
    assert arrived["Subject"] == "Estiramiento ✓"
    assert arrived.get_content().strip() == "José, estiramiento de 30 s — ¡bien hecho!"


def test_recipient_refused_with_5xx_is_permanent(
    transport: SmtpEmailTransport, smtp: FakeSmtpServer
) -> None:
    smtp.refuse_recipient(PATIENT, "550 5.1.1 No such user")

    error = send_error(transport)

    assert error.permanent
    assert error.code == "550"
    assert not error.accepted_possible
    assert smtp.messages == []


def test_recipient_refused_with_4xx_is_transient(
    transport: SmtpEmailTransport, smtp: FakeSmtpServer
) -> None:
    smtp.refuse_recipient(PATIENT, "450 4.2.1 Mailbox busy, try later")

    error = send_error(transport)

    assert not error.permanent
    assert error.code == "450"


def test_message_refused_with_5xx_is_permanent(
    transport: SmtpEmailTransport, smtp: FakeSmtpServer
) -> None:
    smtp.fail_next_data("554 5.7.1 Message rejected")

    error = send_error(transport)

    assert error.permanent
    assert error.code == "554"
    assert not error.accepted_possible


def test_message_deferred_with_4xx_is_transient_and_goes_through_on_retry(
    transport: SmtpEmailTransport, smtp: FakeSmtpServer
) -> None:
    smtp.fail_next_data("451 4.3.0 Try again later")

    error = send_error(transport)
    transport.send(email_to())

    assert not error.permanent
    assert error.code == "451"
    assert len(smtp.messages) == 1


def test_errors_do_not_carry_the_address_or_the_smtp_exception(
    transport: SmtpEmailTransport, smtp: FakeSmtpServer
) -> None:
    smtp.refuse_recipient(PATIENT, f"550 5.1.1 <{PATIENT}>: Recipient address rejected")

    error = send_error(transport)

    assert "ana.lopez" not in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_connection_refused_is_transient_and_not_accepted(smtp_settings: SettingsFactory) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    transport = SmtpEmailTransport(smtp_settings(smtp_url=f"smtp://127.0.0.1:{port}"))

    error = send_error(transport)

    assert not error.permanent
    assert error.code == "connection"
    assert not error.accepted_possible


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_server_that_never_greets_is_a_transient_timeout(
    smtp_settings: SettingsFactory, silent_server: int
) -> None:
    settings = smtp_settings(smtp_url=f"smtp://127.0.0.1:{silent_server}")
    transport = SmtpEmailTransport(settings, timeout=0.3)

    error = send_error(transport)

    assert not error.permanent
    assert error.code == "timeout"
    assert not error.accepted_possible


def test_credentials_in_the_url_log_in(smtp_settings: SettingsFactory) -> None:
    with smtp_server(username="clinic", password="p@ss/word") as server:
        url = f"smtp://clinic:p%40ss%2Fword@127.0.0.1:{server.port}"
        transport = SmtpEmailTransport(smtp_settings(smtp_url=url))

        transport.send(email_to())

        assert len(server.messages) == 1


def test_wrong_credentials_are_transient_so_the_reminder_waits_for_a_fix(
    smtp_settings: SettingsFactory,
) -> None:
    with smtp_server(username="clinic", password="right") as server:
        url = f"smtp://clinic:wrong@127.0.0.1:{server.port}"
        transport = SmtpEmailTransport(smtp_settings(smtp_url=url))

        error = send_error(transport)

        assert not error.permanent
        assert error.code == "535"
        assert server.messages == []


def test_smtp_without_a_sender_address_is_refused_at_start(
    smtp: FakeSmtpServer, smtp_settings: SettingsFactory
) -> None:
    with pytest.raises(SettingsError, match="PTNUDGE_EMAIL_FROM"):
        SmtpEmailTransport(smtp_settings(smtp_url=smtp.url, email_from=None))
