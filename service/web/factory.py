"""The FastAPI app for a set of settings: the wiring its routes share, and the routes.

Building an app is the only thing that configures logging or opens an engine; importing
any module of ``service.web`` does neither.
"""

from __future__ import annotations

from fastapi import FastAPI
from twilio.request_validator import RequestValidator

from config.settings import Settings
from service import logs
from service.db import make_engine, make_sessionmaker
from service.models import utcnow
from service.web import links, ops, twilio
from service.web.access_log import protect_access_log
from service.web.wiring import Clock, Enqueue, Wiring
from tasks.publish import clinic_alert_publisher


def create_app(
    settings: Settings, *, clock: Clock = utcnow, enqueue_alert: Enqueue | None = None
) -> FastAPI:
    """The app for these settings. ``enqueue_alert`` defaults to publishing the clinic
    alert task on the configured broker; ``clock`` is for tests."""
    logs.configure(settings)
    protect_access_log()
    engine = make_engine(settings.database_url)
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    wiring = Wiring(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        clock=clock,
        enqueue=enqueue_alert or clinic_alert_publisher(settings),
        validator=RequestValidator(token),
    )
    app = FastAPI(title="ptnudge", version="0.1.0", docs_url=None, redoc_url=None)
    twilio.add_routes(app, wiring)
    links.add_routes(app, wiring)
    ops.add_routes(app, wiring)
    return app
