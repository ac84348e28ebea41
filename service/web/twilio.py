"""Twilio's webhooks: ``POST /twilio/inbound`` (a patient's text) and ``POST /twilio/status``
(what became of a message we sent).

Verify, deduplicate, act, answer fast: a request Twilio did not sign for exactly the URL it
was given (``PTNUDGE_PUBLIC_URL`` + path + query, never the Host or scheme this process sees
behind a proxy) gets 403 before anything is read or written.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from twilio.request_validator import RequestValidator

from service.db import transaction
from service.delivery.callbacks import apply_status_callback
from service.replies.inbound import InboundResult, SenderError, handle_sms, sender_number
from service.web.twiml import XML, twiml
from service.web.urls import INBOUND_PATH, REMINDER_PARAM, STATUS_PATH
from service.web.wiring import Enqueue, Wiring, responses

log = logging.getLogger(__name__)

# What Twilio sends (SM + 32 hex; From is E.164 or "whatsapp:+…"), with room to spare but
# within the columns: anything else cannot be Twilio's and is refused before the database.
SID = re.compile(r"[A-Za-z0-9_-]{1,64}")
ADDRESS = re.compile(r"[^\x00-\x1f\x7f]{1,320}")


def add_routes(app: FastAPI, wiring: Wiring) -> None:
    _add_inbound(app, wiring)
    _add_status(app, wiring)


def _add_inbound(app: FastAPI, wiring: Wiring) -> None:
    @app.post(
        INBOUND_PATH,
        response_class=Response,
        responses=responses(XML, 400, 403),
        openapi_extra=form_body(
            "MessageSid", "From", "To", "Body", required=("MessageSid", "From")
        ),
    )
    async def twilio_inbound(
        request: Request,
        x_twilio_signature: str | None = Header(default=None, alias="X-Twilio-Signature"),
    ) -> Response:
        form = await signed_form(wiring, request, x_twilio_signature)
        sid, sender = _text(form, "MessageSid", "SmsSid"), _text(form, "From")
        if not SID.fullmatch(sid) or not ADDRESS.fullmatch(sender):
            raise HTTPException(status_code=400, detail="a valid MessageSid and From are required")
        try:
            sender = sender_number(sender)
        except SenderError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        result = await run_in_threadpool(_handle_inbound, wiring, form, sid=sid, sender=sender)
        if result.alert_inbound_id is not None:  # only now: the worker must see the row
            await run_in_threadpool(_enqueue_safely, wiring.enqueue, result.alert_inbound_id)
        return twiml(result.reply_text)


def _handle_inbound(wiring: Wiring, form: FormData, *, sid: str, sender: str) -> InboundResult:
    with transaction(wiring.sessions) as session:
        return handle_sms(
            session=session,
            settings=wiring.settings,
            from_number=sender,
            to_number=_text(form, "To"),
            body=_text(form, "Body"),
            message_sid=sid,
            now=wiring.clock(),
        )


def _add_status(app: FastAPI, wiring: Wiring) -> None:
    @app.post(
        STATUS_PATH,
        response_class=Response,
        responses=responses(XML, 403),
        openapi_extra=form_body(
            "MessageSid", "MessageStatus", "ErrorCode", required=("MessageSid", "MessageStatus")
        ),
    )
    async def twilio_status(
        request: Request,
        x_twilio_signature: str | None = Header(default=None, alias="X-Twilio-Signature"),
        reminder: str = Query(
            default="",
            alias=REMINDER_PARAM,
            description="the reminder id our callback URL carries",
        ),
    ) -> Response:
        form = await signed_form(wiring, request, x_twilio_signature)
        sid = _text(form, "MessageSid", "SmsSid")
        status = _text(form, "MessageStatus", "SmsStatus")
        if SID.fullmatch(sid) and status:
            await run_in_threadpool(
                _handle_status, wiring, form, sid=sid, status=status, reminder=reminder
            )
        # 200 whatever happened: an unknown id is not something Twilio can fix by retrying.
        return twiml()


def _handle_status(wiring: Wiring, form: FormData, *, sid: str, status: str, reminder: str) -> None:
    with transaction(wiring.sessions) as session:
        apply_status_callback(
            session=session,
            message_sid=sid,
            status=status,
            error_code=_text(form, "ErrorCode") or None,
            now=wiring.clock(),
            reminder_id=_reminder_id(reminder),
        )


async def signed_form(wiring: Wiring, request: Request, signature: str | None) -> FormData:
    """The POSTed form, or 403 unless Twilio signed exactly this URL and these params."""
    form = await request.form()
    if not wiring.settings.verify_twilio_signatures:
        return form  # development only: the settings refuse it anywhere else
    url = wiring.settings.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    signed = (
        wiring.settings.twilio_auth_token is not None
        and signature is not None
        and all(isinstance(value, str) for _, value in form.multi_items())
        and _signed(wiring.validator, url, form, signature)
    )
    if not signed:
        log.warning("refused a %s request with a bad or missing signature", request.url.path)
        raise HTTPException(status_code=403, detail="invalid signature")
    return form


def _signed(validator: RequestValidator, url: str, form: FormData, signature: str) -> bool:
    """Twilio's check, cheapest first: the signature of the URL as configured, which is what
    Twilio signs; only when that does not match, ``validate``'s full check (the URL with and
    without an explicit port, as Twilio's back ends are known to differ), which costs two
    more HMACs and is all a forged request ever gets."""
    expected = validator.compute_signature(url, form)
    if hmac.compare_digest(expected.encode(), signature.encode()):
        return True
    return bool(validator.validate(url, form, signature))


def form_body(*fields: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """OpenAPI for a Twilio form POST (FastAPI cannot infer it: the form is read by hand,
    after the signature check)."""
    properties: dict[str, dict[str, Any]] = {name: {"type": "string"} for name in fields}
    for name in required:
        properties[name]["minLength"] = 1
    schema = {"type": "object", "properties": properties, "required": list(required)}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }


def _text(form: FormData, *names: str) -> str:
    for name in names:
        value = form.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _reminder_id(value: str) -> int | None:
    """The ``r`` of our status callback URL: a reminder id, or nothing usable."""
    if value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def _enqueue_safely(enqueue: Enqueue, inbound_id: int) -> None:
    """The reply is committed and the patient paused either way; a broker outage must not
    turn that into an error Twilio would show as a failed webhook. The alert itself is a row
    committed with the reply: the sweeper sends it once the broker is back."""
    try:
        enqueue(inbound_id)
    except Exception:  # any broker failure: logged; the alert row stays pending
        log.exception("could not enqueue the clinic alert for inbound %s", inbound_id)
