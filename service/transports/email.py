"""Email through an SMTP server (``PTNUDGE_SMTP_URL``), with the standard library.

One connection per message: a clinic sends a few hundred emails a day, and a fresh
connection never meets a server that silently dropped an idle one.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote

from config.settings import Settings, SettingsError, SmtpConfig
from service.masking import mask_email
from service.transports.base import OutboundMessage, Receipt, TransportError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 15.0  # seconds per SMTP command; servers may greylist-delay the greeting


class SmtpEmailTransport:
    """Sends each message as multipart/alternative (plain text, then HTML)."""

    def __init__(self, settings: Settings, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        if settings.smtp is None:
            raise SettingsError("the SMTP transport needs PTNUDGE_SMTP_URL")
        if not settings.email_from:
            raise SettingsError("PTNUDGE_EMAIL_FROM must be set when PTNUDGE_SMTP_URL is")
        self._config: SmtpConfig = settings.smtp
        self._sender = settings.email_from
        self._timeout = timeout

    def send(self, message: OutboundMessage) -> Receipt:
        """1. build the MIME message; 2. connect (a failure here sent nothing);
        3. hand it over (a failure here may come after the server took it)."""
        mime = build_email(message, sender=self._sender)
        try:
            smtp = self._connect()
        except (smtplib.SMTPException, OSError) as exc:
            raise self._failed(message, exc, accepted_possible=False) from None
        try:
            smtp.send_message(mime)
        except (smtplib.SMTPException, OSError) as exc:
            # A definite refusal sent nothing; a lost connection may follow the final "."
            maybe = not isinstance(
                exc, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused
            )
            raise self._failed(message, exc, accepted_possible=maybe) from None
        finally:
            _close(smtp)
        log.info("email %s to %s accepted", message.reference, mask_email(message.to))
        return Receipt(provider_id=str(mime["Message-ID"]), status="sent")

    def _connect(self) -> smtplib.SMTP:
        config = self._config
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if config.ssl:
            smtp = smtplib.SMTP_SSL(
                config.host, config.port, timeout=self._timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=self._timeout)
        try:
            if config.starttls:
                smtp.starttls(context=context)
            if config.username:
                # The URL carries them percent-encoded (a password may hold "@" or "/").
                smtp.login(unquote(config.username), unquote(config.password or ""))
        except BaseException:
            _close(smtp)
            raise
        return smtp

    def _failed(
        self, message: OutboundMessage, exc: Exception, *, accepted_possible: bool
    ) -> TransportError:
        error = to_transport_error(exc, accepted_possible=accepted_possible)
        log.warning("email %s to %s failed: %s", message.reference, mask_email(message.to), error)
        return error


def build_email(message: OutboundMessage, *, sender: str) -> EmailMessage:
    """The MIME message: plain text first and HTML second, so clients that can show HTML
    pick the last part they understand."""
    mime = EmailMessage()
    mime["From"] = sender
    mime["To"] = message.to
    if message.subject is not None:
        mime["Subject"] = message.subject
    mime["Date"] = email.utils.formatdate(usegmt=True)
    # The sender's own domain, not this host's name: getfqdn() may block on DNS, and the id
    # should look like the mail it belongs to.
    mime["Message-ID"] = email.utils.make_msgid(idstring=message.reference, domain=_domain(sender))
    for name, value in message.headers.items():
        del mime[name]  # replace, never duplicate, a header we set
        mime[name] = value
    mime.set_content(message.body)
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html")
    return mime


def to_transport_error(exc: Exception, *, accepted_possible: bool) -> TransportError:
    """SMTP's reply classes carry the rule: 5xx is final, 4xx is "try again later". A 5xx
    only makes the message permanent when it is about the message (recipient, content); a
    refused sender or login is the operator's to fix, and the reminder should wait for it."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code = min((reply[0] for reply in exc.recipients.values()), default=550)
        return TransportError(
            f"SMTP {code}: recipient refused", permanent=code >= 500, code=str(code)
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        about_message = isinstance(exc, smtplib.SMTPDataError)
        return TransportError(
            f"SMTP {code} ({type(exc).__name__})",
            permanent=about_message and code >= 500,
            code=str(code),
        )
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        kind = "timeout"  # smtplib reports a read timeout as SMTPServerDisconnected
    elif isinstance(exc, OSError | smtplib.SMTPServerDisconnected):
        kind = "connection"
    else:  # the server lacks something we asked for (STARTTLS, AUTH)
        kind = "smtp"
    return TransportError(
        f"SMTP {kind} failed ({type(exc).__name__})",
        permanent=False,
        code=kind,
        accepted_possible=accepted_possible,
    )


def _domain(address: str) -> str | None:
    _, bare = email.utils.parseaddr(address)
    return bare.rpartition("@")[2] or None


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT politely; the message's fate is already decided, so a failure here is noise."""
    with contextlib.suppress(smtplib.SMTPException, OSError):
        smtp.quit()
    smtp.close()
