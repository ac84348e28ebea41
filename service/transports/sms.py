"""SMS through Twilio's Messages API, with the official ``twilio`` client.

Everything ptnudge knows about Twilio's errors lives here: which codes are the recipient's
(permanent) and which are the moment's (transient), and when a failure may hide a message
Twilio already took (a timeout after the request was written, a 5xx: a proxy's 502 or 504
can come after Twilio created the message).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from typing import Any

import requests
import requests.utils
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import MaxRetryError, NewConnectionError

from config.settings import Settings, SettingsError
from service.masking import PhoneRedactingFilter, mask_phone
from service.transports.base import OutboundMessage, ProviderRecord, Receipt, TransportError

log = logging.getLogger(__name__)

# twilio's HTTP client logs every request's query parameters at INFO, and reading messages
# back filters on the patient's number: keep that logger at WARNING so no number is logged.
_http_log = logging.getLogger(__name__ + ".http")
_http_log.setLevel(logging.WARNING)
# urllib3 logs each request line at DEBUG, query string included.
logging.getLogger("urllib3.connectionpool").addFilter(PhoneRedactingFilter())

RECONCILE_LIMIT = 100  # newest messages to one number read back; ~10 days of a busy program

# Statuses of a message Twilio has taken and will (or did) hand to the carrier.
ACCEPTED_STATUSES = frozenset({"accepted", "scheduled", "queued", "sending", "sent"})

# Twilio answers 4xx for a request that will never succeed as it is (21211 invalid To,
# 21610 opted out, 21614 not a mobile, 21408 region disabled, 21612/21606 unroutable): those
# are permanent. These statuses are the exceptions: the moment's (429) or the operator's to
# fix (credentials 401/403, a wrong account or messaging service 404), never the patient's.
TRANSIENT_CLIENT_STATUSES = frozenset({401, 403, 404, 408, 409, 429})
RATE_LIMITED_CODE = 20429

_PHONE_LIKE = re.compile(r"\+?\d[\d ().-]{5,}\d")


class TwilioSmsTransport:
    """Sends SMS with one pooled twilio client; also reads messages back (``find_sent``)."""

    def __init__(self, settings: Settings, *, timeout: float | None = None) -> None:
        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            raise SettingsError(
                "the Twilio transport needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
            )
        if settings.twilio_messaging_service_sid:
            # A Messaging Service queues what exceeds the sender's rate instead of failing it.
            self._sender = {"messaging_service_sid": settings.twilio_messaging_service_sid}
        elif settings.twilio_from_number:
            self._sender = {"from_": settings.twilio_from_number}
        else:
            raise SettingsError("the Twilio transport needs TWILIO_FROM_NUMBER")
        self._client = _make_client(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            api_url=settings.twilio_api_url,
            timeout=timeout or settings.twilio_timeout_seconds,
        )

    def send(self, message: OutboundMessage) -> Receipt:
        """Hand one SMS to Twilio. The body goes as rendered: rendering already replaced the
        characters that would force UCS-2."""
        try:
            created = self._client.messages.create(
                to=message.to,
                body=message.body,
                status_callback=message.status_callback,
                **self._sender,
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes a TransportError
            error = to_transport_error(exc)
            log.warning("sms %s to %s failed: %s", message.reference, mask_phone(message.to), error)
            raise error from None
        status = str(created.status)
        log.info(
            "sms %s to %s accepted as %s", message.reference, mask_phone(message.to), created.sid
        )
        return Receipt(
            provider_id=created.sid, status="sent" if status in ACCEPTED_STATUSES else status
        )

    def find_sent(self, *, to: str, since: dt.datetime) -> list[ProviderRecord]:
        """Messages Twilio holds for ``to`` created at or after ``since`` (newest first).

        Filters on the creation time here rather than with Twilio's ``DateSent>``: a message
        still queued at Twilio (a Messaging Service holding it back for throughput) has no
        date_sent yet, and missing it would make the caller send the reminder a second time.
        """
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        try:
            found = self._client.messages.list(to=to, limit=RECONCILE_LIMIT)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a TransportError
            raise to_transport_error(exc) from None
        # Twilio's times have whole seconds: compare at that precision.
        cutoff = since.astimezone(dt.UTC).replace(microsecond=0)
        records = (_record(found_message) for found_message in found)
        return [record for record in records if record and record.created_at >= cutoff]


def _make_client(*, account_sid: str, auth_token: str, api_url: str, timeout: float) -> Client:
    # requests reads the proxy and CA-bundle variables (HTTPS_PROXY, NO_PROXY,
    # REQUESTS_CA_BUNDLE…) for every request, scanning the whole environment each time: a
    # tenth of a send's CPU. Every request of this client goes to ``api_url``'s host, so read
    # them once, with requests' own rules, and hand the result to the session.
    http_client = TwilioHttpClient(
        timeout=timeout, logger=_http_log, proxy=requests.utils.get_environ_proxies(api_url)
    )
    session = http_client.session
    if session is not None:
        session.trust_env = False
        session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
    client = Client(account_sid, auth_token, http_client=http_client)
    # twilio rewrites hostnames from TWILIO_EDGE / TWILIO_REGION in os.environ; our settings
    # are the only configuration, and the API URL already names any region.
    client.edge = None
    client.region = None
    client.api.base_url = api_url
    return client


def _record(message: Any) -> ProviderRecord | None:
    created_at = message.date_created
    if not isinstance(created_at, dt.datetime) or not message.sid:
        return None
    return ProviderRecord(
        provider_id=str(message.sid),
        to=str(message.to),
        body=str(message.body or ""),
        status=str(message.status),
        created_at=created_at,
    )


def to_transport_error(exc: Exception) -> TransportError:
    """Translate whatever the twilio client raised into our one error type."""
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        return _from_twilio(exc)
    if isinstance(exc, TwilioException) and len(exc.args) > 1:
        # Reading a list, twilio raises TwilioException("Unable to fetch page", response).
        return _from_error_response(exc.args[1])
    if isinstance(exc, requests.RequestException):
        return _from_requests(exc)
    # A 2xx whose body is not Twilio's JSON, or a bug in between: Twilio may have taken it.
    return TransportError(
        f"unexpected {type(exc).__name__} talking to Twilio",
        permanent=False,
        code="unexpected",
        accepted_possible=True,
    )


def _from_twilio(exc: TwilioRestException | TwilioServiceException) -> TransportError:
    detail = getattr(exc, "msg", None) or getattr(exc, "title", None) or ""
    return _classified(int(exc.status), exc.code, str(detail))


def _from_error_response(response: Any) -> TransportError:
    status = int(getattr(response, "status_code", 0))
    try:
        payload = json.loads(response.text)
    except (AttributeError, TypeError, ValueError):
        payload = {}
    payload = payload if isinstance(payload, dict) else {}
    return _classified(status, payload.get("code"), str(payload.get("message") or ""))


def _classified(status: int, twilio_code: Any, detail: str) -> TransportError:
    code = str(twilio_code) if twilio_code is not None else str(status)
    transient = (
        not 400 <= status < 500  # 5xx, or an answer too odd to blame on the message
        or status in TRANSIENT_CLIENT_STATUSES
        or twilio_code == RATE_LIMITED_CODE
    )
    return TransportError(
        f"Twilio HTTP {status} error {code}: {_scrub(detail)}",
        permanent=not transient,
        code=code,
        # A 5xx (or no status) tells nothing of the message: Twilio, or a proxy in front of
        # it, may answer so after the message was created. Settle it before any resend.
        accepted_possible=not 400 <= status < 500,
    )


def _from_requests(exc: requests.RequestException) -> TransportError:
    if isinstance(exc, requests.ConnectTimeout):
        return TransportError("Twilio connect timeout", permanent=False, code="timeout")
    if isinstance(exc, requests.Timeout):
        # The request was written; Twilio may have created the message and only its answer
        # was late.
        return TransportError(
            "Twilio read timeout", permanent=False, code="timeout", accepted_possible=True
        )
    if isinstance(exc, requests.ConnectionError):
        sent = not _never_connected(exc)
        return TransportError(
            f"Twilio connection failed ({type(exc).__name__})",
            permanent=False,
            code="connection",
            accepted_possible=sent,
        )
    # Invalid URL, bad proxy settings…: raised before anything went out.
    return TransportError(
        f"Twilio request not sent ({type(exc).__name__})", permanent=False, code="request"
    )


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the failure happened before a connection existed (refused, DNS, TLS
    handshake), so no byte of the request reached Twilio. A connection dropped later
    (``Connection aborted``) may have carried the whole request."""
    if isinstance(exc, requests.exceptions.SSLError):
        return True
    reason = exc.args[0] if exc.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError)


def _scrub(text: str) -> str:
    """Twilio's error messages quote the number ("Invalid 'To' Phone Number: +1312…")."""
    return _PHONE_LIKE.sub(lambda match: mask_phone(match.group()), text)
