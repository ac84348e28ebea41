"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives, parsed.

    with smtp_server() as server:
        settings = load_settings(smtp_url=server.url, email_from="clinic@example.com", ...)
        ...
        message = server.messages[0]          # email.message.EmailMessage
        message.get_body(("html",))

Refusals are programmable (``refuse_recipient``, ``fail_next_data``) and ``username`` /
``password`` make the server require AUTH LOGIN/PLAIN.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage


@dataclass
class _Handler:
    received: list[ReceivedMail] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # address -> SMTP reply
    data_failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        with self.lock:
            refusal = self.refused.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        with self.lock:
            if self.data_failures:
                return self.data_failures.pop(0)
        parser = email.parser.BytesParser(policy=email.policy.default)
        content = envelope.original_content or b""
        message = parser.parsebytes(content)
        mail = ReceivedMail(str(envelope.mail_from), tuple(envelope.rcpt_tos), message)
        with self.lock:
            self.received.append(mail)
        return "250 Message accepted for delivery"


class FakeSmtpServer:
    def __init__(self, handler: _Handler, controller: Controller, url: str) -> None:
        self._handler = handler
        self._controller = controller
        self.url = url  # smtp://[user:pass@]127.0.0.1:PORT
        self.host = controller.hostname
        self.port = controller.port

    @property
    def mails(self) -> list[ReceivedMail]:
        """Every accepted mail with its envelope, oldest first."""
        with self._handler.lock:
            return list(self._handler.received)

    @property
    def messages(self) -> list[EmailMessage]:
        """Every accepted message, parsed with ``email.policy.default``, oldest first."""
        return [mail.message for mail in self.mails]

    def refuse_recipient(self, address: str, reply: str = "550 5.1.1 No such user") -> None:
        """Answer RCPT TO for ``address`` with ``reply`` (a 4xx is "try later")."""
        with self._handler.lock:
            self._handler.refused[address.lower()] = reply

    def fail_next_data(self, reply: str = "451 4.3.0 Try again later", n: int = 1) -> None:
        """Answer the next ``n`` DATA commands with ``reply`` instead of accepting."""
        with self._handler.lock:
            self._handler.data_failures.extend([reply] * n)


@contextlib.contextmanager
def smtp_server(
    *, username: str | None = None, password: str | None = None
) -> Iterator[FakeSmtpServer]:
    """An SMTP server on a free port of 127.0.0.1; with ``username`` it requires AUTH
    (over plain text: this is loopback)."""
    handler = _Handler()
    port = _free_port()
    auth: dict[str, Any] = {}
    credentials = ""
    if username is not None:
        auth = {
            "authenticator": _Authenticator(username, password or ""),
            "auth_require_tls": False,
            "require_auth": True,
        }
        credentials = f"{username}:{password or ''}@"
    controller = _Controller(handler, hostname="127.0.0.1", port=port, **auth)
    controller.start()
    try:
        yield FakeSmtpServer(handler, controller, f"smtp://{credentials}127.0.0.1:{port}")
    finally:
        controller.stop()


class _Controller(Controller):
    """Requires AUTH over plain text when asked: aiosmtpd warns about that combination (a
    UserWarning, an error under our test settings), which is right for servers but moot on
    loopback, so the requirement is switched on after the server object is made."""

    def __init__(self, handler: _Handler, *, require_auth: bool = False, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._require_auth = require_auth

    def factory(self) -> SMTP:
        server = SMTP(self.handler, **self.SMTP_kwargs)
        server._auth_required = self._require_auth
        return server


@dataclass(frozen=True)
class _Authenticator:
    username: str
    password: str

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False)


def _free_port() -> int:
    # aiosmtpd's Controller needs the port up front (it connects to it to check readiness).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
