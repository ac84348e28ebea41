"""What the routes of one app share (settings, database, clock, alert queue, validator),
and the OpenAPI descriptions they have in common."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator

from config.settings import Settings

Clock = Callable[[], dt.datetime]
Enqueue = Callable[[int], None]


@dataclass(frozen=True)
class Wiring:
    """Built once per app by ``service.web.factory.create_app``."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Clock
    enqueue: Enqueue
    validator: RequestValidator


def responses(ok: str, *codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses``: 200 with ``ok`` content, and each of ``codes`` as a refusal."""
    described: dict[int | str, dict[str, Any]] = {
        200: {"content": {ok: {"schema": {"type": "string"}}}, "description": "OK"}
    }
    for code in codes:
        described[code] = {"content": {"text/html": {}}, "description": "refused"}
    return described
