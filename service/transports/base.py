"""The one interface every way of sending a message implements, and its one error type.

Callers (the send task) only ever see ``send(message) -> Receipt`` or a ``TransportError``;
what a provider calls its errors, and how its HTTP or SMTP client fails, stays inside the
transport module that talks to it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from service.models import Channel


@dataclass(frozen=True)
class OutboundMessage:
    """One message to one recipient, already rendered."""

    channel: Channel
    to: str  # E.164 phone number or email address
    body: str  # SMS text, or the email's plain-text part
    reference: str  # our id for it (e.g. "r123"), for logs and provider-side metadata
    subject: str | None = None  # email only
    html: str | None = None  # email only
    headers: Mapping[str, str] = field(default_factory=dict)  # email only: List-Unsubscribe…
    status_callback: str | None = None  # SMS only: the URL Twilio POSTs status changes to


@dataclass(frozen=True)
class Receipt:
    """What the provider said when it took the message."""

    provider_id: str | None  # Twilio MessageSid, or the email's Message-ID
    status: str  # "sent" once accepted (Twilio's queued/accepted), else the provider's status


class TransportError(Exception):
    """Sending failed.

    ``permanent`` failures (invalid number, opted out, mailbox does not exist) must be
    recorded and never retried; the others may be retried with backoff.

    ``accepted_possible`` is True when the provider may have taken the message before the
    failure (a read timeout after the request was written, a dropped connection): retrying
    blindly could send it twice, so the caller reconciles with the provider first.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: str | None = None,
        accepted_possible: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code  # Twilio error code ("21610"), HTTP/SMTP status, "timeout", "connection"
        self.accepted_possible = accepted_possible

    def __repr__(self) -> str:
        return (
            f"TransportError({str(self)!r}, permanent={self.permanent}, code={self.code!r}, "
            f"accepted_possible={self.accepted_possible})"
        )


class Transport(Protocol):
    def send(self, message: OutboundMessage) -> Receipt: ...


@dataclass(frozen=True)
class ProviderRecord:
    """What the provider knows of a message, for reconciling after a crash or a timeout."""

    provider_id: str
    to: str
    body: str
    status: str
    created_at: dt.datetime


@runtime_checkable
class Reconciler(Protocol):
    def find_sent(self, *, to: str, since: dt.datetime) -> list[ProviderRecord]: ...
