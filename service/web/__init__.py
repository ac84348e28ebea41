"""The web app, ``uvicorn service.web:app``: Twilio webhooks, email links, health, metrics.

May import the core packages and ``tasks`` (to enqueue); never ``service.cli``."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def __getattr__(name: str) -> FastAPI:
    # ``app`` is built on first use, not at import: the worker imports ``service.web.urls``,
    # and that must not build a web app (an engine, the logging setup) in every worker.
    if name == "app":
        return _app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@cache
def _app() -> FastAPI:
    from config.settings import settings_or_exit  # noqa: PLC0415 - see __getattr__
    from service.web.factory import create_app  # noqa: PLC0415

    return create_app(settings_or_exit())
