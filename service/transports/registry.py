"""Pick each channel's transport from settings: the real provider when one is configured,
the console otherwise (development)."""

from __future__ import annotations

from config.settings import Settings
from service.transports.base import Reconciler, Transport
from service.transports.console import ConsoleEmailTransport, ConsoleSmsTransport
from service.transports.email import SmtpEmailTransport
from service.transports.sms import TwilioSmsTransport


def sms_transport(settings: Settings) -> Transport:
    if settings.resolved_sms_backend == "twilio":
        return TwilioSmsTransport(settings)
    return ConsoleSmsTransport()


def email_transport(settings: Settings) -> Transport:
    if settings.email_enabled:
        return SmtpEmailTransport(settings)
    return ConsoleEmailTransport()


def sms_reconciler(transport: Transport) -> Reconciler | None:
    """The SMS transport itself when it can say whether a message went out after all (a
    timeout, a crash mid-send); None for the console, which keeps no record."""
    return transport if isinstance(transport, Reconciler) else None
