"""The web app (``uvicorn service.web:app``): Twilio webhooks, email action links, health.

Every route is thin: check the request, call one ``service`` function in a transaction,
answer. Twilio's requests are verified before anything else is read or written, against
the URL Twilio was given (``PTNUDGE_PUBLIC_URL`` + path + query), never the Host or scheme
this process happens to see behind a proxy.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from kombu.connection import Connection
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from twilio.request_validator import RequestValidator

from config.settings import Settings, settings_or_exit
from service import logs, metrics
from service.db import make_engine, make_sessionmaker, transaction
from service.delivery.callbacks import apply_status_callback
from service.delivery.links import LinkAction, LinkError, apply_link, check_link
from service.models import utcnow
from service.replies.inbound import CLINIC_ALERT_TASK, InboundResult, handle_sms

log = logging.getLogger(__name__)

# What Twilio sends (SM + 32 hex; From is E.164 or "whatsapp:+…"), with room to spare but
# within the columns: anything else cannot be Twilio's and is refused before the database.
SID = re.compile(r"[A-Za-z0-9_-]{1,64}")
ADDRESS = re.compile(r"[^\x00-\x1f\x7f]{1,320}")
HEALTH_TIMEOUT = 3.0  # seconds: a load balancer's probe should not hang on a dead broker
XML = "application/xml"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

Clock = Callable[[], dt.datetime]
Enqueue = Callable[[int], None]


def _form_body(*fields: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
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


def _responses(ok: str, *codes: int) -> dict[int | str, dict[str, Any]]:
    described: dict[int | str, dict[str, Any]] = {
        200: {"content": {ok: {"schema": {"type": "string"}}}, "description": "OK"}
    }
    for code in codes:
        described[code] = {"content": {"text/html": {}}, "description": "refused"}
    return described


def twiml(reply_text: str | None) -> Response:
    if not reply_text:
        return Response(EMPTY_TWIML, media_type=XML)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Message>{escape(reply_text)}</Message></Response>"
    )
    return Response(body, media_type=XML)


@dataclass(frozen=True)
class _Wiring:
    """What the routes share: built once per app."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Clock
    enqueue: Enqueue
    validator: RequestValidator


def create_app(
    settings: Settings, *, clock: Clock = utcnow, enqueue_alert: Enqueue | None = None
) -> FastAPI:
    """The app for these settings. ``enqueue_alert`` defaults to publishing the clinic
    alert task on the configured broker; ``clock`` is for tests."""
    logs.configure(settings)
    engine = make_engine(settings.database_url)
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    wiring = _Wiring(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        clock=clock,
        enqueue=enqueue_alert or _celery_enqueue(settings),
        validator=RequestValidator(token),
    )
    app = FastAPI(title="ptnudge", version="0.1.0", docs_url=None, redoc_url=None)
    _twilio_routes(app, wiring)
    _link_routes(app, wiring)
    _operations_routes(app, wiring)
    return app


async def _signed_form(wiring: _Wiring, request: Request, signature: str | None) -> FormData:
    """The POSTed form, or 403 unless Twilio signed exactly this URL and these params."""
    form = await request.form()
    if (
        not wiring.settings.verify_twilio_signatures
    ):  # development only (settings refuse it elsewhere)
        return form
    url = wiring.settings.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    signed = (
        wiring.settings.twilio_auth_token is not None
        and signature is not None
        and all(isinstance(value, str) for _, value in form.multi_items())
        and wiring.validator.validate(url, form, signature)
    )
    if not signed:
        log.warning("refused a %s request with a bad or missing signature", request.url.path)
        raise HTTPException(status_code=403, detail="invalid signature")
    return form


def _twilio_routes(app: FastAPI, wiring: _Wiring) -> None:
    @app.post(
        "/twilio/inbound",
        response_class=Response,
        responses=_responses(XML, 400, 403),
        openapi_extra=_form_body(
            "MessageSid", "From", "To", "Body", required=("MessageSid", "From")
        ),
    )
    async def twilio_inbound(
        request: Request,
        x_twilio_signature: str | None = Header(default=None, alias="X-Twilio-Signature"),
    ) -> Response:
        form = await _signed_form(wiring, request, x_twilio_signature)
        sid, sender = _text(form, "MessageSid", "SmsSid"), _text(form, "From")
        if not SID.fullmatch(sid) or not ADDRESS.fullmatch(sender):
            raise HTTPException(status_code=400, detail="a valid MessageSid and From are required")

        def handle() -> InboundResult:
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

        result = await run_in_threadpool(handle)
        if result.alert_inbound_id is not None:  # only now: the worker must see the row
            await run_in_threadpool(_enqueue_safely, wiring.enqueue, result.alert_inbound_id)
        return twiml(result.reply_text)

    @app.post(
        "/twilio/status",
        response_class=Response,
        responses=_responses(XML, 403),
        openapi_extra=_form_body(
            "MessageSid", "MessageStatus", "ErrorCode", required=("MessageSid", "MessageStatus")
        ),
    )
    async def twilio_status(
        request: Request,
        x_twilio_signature: str | None = Header(default=None, alias="X-Twilio-Signature"),
        r: str = Query(default="", description="the reminder id our callback URL carries"),
    ) -> Response:
        form = await _signed_form(wiring, request, x_twilio_signature)
        sid = _text(form, "MessageSid", "SmsSid")
        status = _text(form, "MessageStatus", "SmsStatus")

        def handle() -> None:
            with transaction(wiring.sessions) as session:
                apply_status_callback(
                    session=session,
                    message_sid=sid,
                    status=status,
                    error_code=_text(form, "ErrorCode") or None,
                    now=wiring.clock(),
                    reminder_id=_reminder_id(r),
                )

        if SID.fullmatch(sid) and status:
            await run_in_threadpool(handle)
        # 200 whatever happened: an unknown id is not something Twilio can fix by retrying.
        return Response(EMPTY_TWIML, media_type=XML)


def _link_routes(app: FastAPI, wiring: _Wiring) -> None:
    @app.get("/e/{token}", response_class=HTMLResponse, responses=_responses("text/html", 400))
    def email_link_page(token: str) -> HTMLResponse:
        # GET changes nothing: mail scanners and previews fetch every link in a message.
        try:
            with transaction(wiring.sessions) as session:
                target = check_link(
                    session=session, settings=wiring.settings, token=token, now=wiring.clock()
                )
        except LinkError as exc:
            return _link_refused(exc)
        return _page(*CONFIRM_PAGES[target.action], form=True)

    @app.post("/e/{token}", response_class=HTMLResponse, responses=_responses("text/html", 400))
    def email_link_action(token: str) -> HTMLResponse:
        # RFC 8058 one-click: the body is "List-Unsubscribe=One-Click" (or our own button);
        # no cookie is needed and the answer is never a redirect.
        try:
            with transaction(wiring.sessions) as session:
                result = apply_link(
                    session=session, settings=wiring.settings, token=token, now=wiring.clock()
                )
        except LinkError as exc:
            return _link_refused(exc)
        return _page(*DONE_PAGES[result.action])


def _operations_routes(app: FastAPI, wiring: _Wiring) -> None:
    @app.get("/healthz", responses={503: {"description": "a dependency is down"}})
    def healthz() -> JSONResponse:
        checks = {
            "database": _check_database(wiring.engine),
            "broker": _check_broker(wiring.settings),
        }
        healthy = all(value == "ok" for value in checks.values())
        return JSONResponse(checks, status_code=200 if healthy else 503)

    @app.get("/metrics", response_class=Response, responses=_responses("text/plain"))
    def prometheus_metrics() -> Response:
        content, content_type = metrics.exposition()
        return Response(content, media_type=content_type)


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


def _celery_enqueue(settings: Settings) -> Enqueue:
    celery: Any = None

    def enqueue(inbound_id: int) -> None:
        nonlocal celery
        if celery is None:
            from tasks.app import create_app as create_celery  # noqa: PLC0415 - only when used

            celery = create_celery(settings)
        celery.send_task(
            CLINIC_ALERT_TASK,
            args=[inbound_id],
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0, "interval_step": 1},
        )

    return enqueue


def _enqueue_safely(enqueue: Enqueue, inbound_id: int) -> None:
    """The reply is committed and the patient paused either way; a broker outage must not
    turn that into an error Twilio would show as a failed webhook. The message is flagged
    for the clinic in the database, where the digest and the report show it."""
    try:
        enqueue(inbound_id)
    except Exception:  # any broker failure: logged, and the row stays flagged
        log.exception("could not enqueue the clinic alert for inbound %s", inbound_id)


def _check_database(engine: Engine) -> str:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the URL stays private
        return f"error: {type(exc).__name__}"
    return "ok"


def _check_broker(settings: Settings) -> str:
    # The embedded (SQLAlchemy) transport hands transport options to create_engine, which
    # refuses socket options; the network brokers get a short socket timeout.
    options = {} if settings.embedded_broker else {"socket_timeout": HEALTH_TIMEOUT}
    try:
        with Connection(
            settings.broker_url, connect_timeout=HEALTH_TIMEOUT, transport_options=options
        ) as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=HEALTH_TIMEOUT
            )
    except Exception as exc:  # noqa: BLE001
        return f"error: {type(exc).__name__}"
    return "ok"


# --- pages for email links -----------------------------------------------------------------

CONFIRM_PAGES = {
    LinkAction.DONE: ("Mark as done?", "Tap the button to record this exercise as done.", "Done"),
    LinkAction.STOP: (
        "Unsubscribe?",
        "Tap the button to stop getting reminder emails at this address.",
        "Unsubscribe",
    ),
}
DONE_PAGES = {
    LinkAction.DONE: ("Recorded", "Nice work! Your exercise is recorded as done.", ""),
    LinkAction.STOP: ("Unsubscribed", "You will not get more reminder emails.", ""),
}
REFUSALS = {
    "expired": "This link has expired. Nothing was changed.",
    "gone": "This link is no longer valid. Nothing was changed.",
    "invalid": "This link is not valid. Nothing was changed.",
    "no_email": (
        "No email address belongs to this link, so nothing was unsubscribed. "
        "To stop text messages, reply STOP to any of them."
    ),
}


def _page(title: str, message: str, button: str, *, form: bool = False) -> HTMLResponse:
    action = (
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        f'<button type="submit">{html.escape(button)}</button></form>'
        if form
        else ""
    )
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{action}</body></html>"
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


def _link_refused(error: LinkError) -> HTMLResponse:
    page = _page("Link not valid", REFUSALS.get(error.reason, REFUSALS["invalid"]), "")
    page.status_code = 400
    return page


app = create_app(settings_or_exit())
