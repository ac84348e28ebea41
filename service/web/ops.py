"""What operators and their tools ask: ``GET /healthz`` (database and broker reachable) and
``GET /metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine, text

from config.settings import Settings
from service import broker, metrics
from service.web.urls import HEALTH_PATH, METRICS_PATH
from service.web.wiring import Wiring, responses

HEALTH_TIMEOUT = 3.0  # seconds: a load balancer's probe should not hang on a dead broker


def add_routes(app: FastAPI, wiring: Wiring) -> None:
    @app.get(HEALTH_PATH, responses={503: {"description": "a dependency is down"}})
    def healthz() -> JSONResponse:
        checks = {
            "database": _check_database(wiring.engine),
            "broker": _check_broker(wiring.settings),
        }
        healthy = all(value == "ok" for value in checks.values())
        return JSONResponse(checks, status_code=200 if healthy else 503)

    @app.get(METRICS_PATH, response_class=Response, responses=responses("text/plain"))
    def prometheus_metrics() -> Response:
        content, content_type = metrics.exposition()
        return Response(content, media_type=content_type)


def _check_database(engine: Engine) -> str:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the URL stays private
        return f"error: {type(exc).__name__}"
    return "ok"


def _check_broker(settings: Settings) -> str:
    try:
        with broker.connect(settings, timeout=HEALTH_TIMEOUT) as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=HEALTH_TIMEOUT
            )
    except Exception as exc:  # noqa: BLE001
        return f"error: {type(exc).__name__}"
    return "ok"
