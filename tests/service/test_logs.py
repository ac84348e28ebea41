"""Process logs: JSON lines in production, readable locally, numbers masked either way."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from service import logs
from tests.conftest import PRODUCTION_SETTINGS, make_settings

# Shaped like an itsdangerous token: payload.timestamp.signature.


def emit(handler: logging.Handler, message: str, *args: object) -> str:
    record = logging.LogRecord("ptnudge.test", logging.WARNING, __file__, 1, message, args, None)
    if handler.filter(record):
        handler.emit(record)
    stream = handler.stream  # type: ignore[attr-defined]
    return str(stream.getvalue())


def test_production_logs_are_json_lines_with_numbers_masked(tmp_path: Path) -> None:
    settings = make_settings(database_url="sqlite://", tmp_path=tmp_path, **PRODUCTION_SETTINGS)
    handler = logging.StreamHandler(io.StringIO())
    logs.protect(handler, settings)

    line = emit(handler, "sms to %s failed", "+13125550100")

    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "ptnudge.test"
    assert entry["message"] == "sms to ***0100 failed"
    assert entry["time"].endswith("+00:00")


def test_development_logs_are_readable_and_masked_too(tmp_path: Path) -> None:
    settings = make_settings(database_url="sqlite://", tmp_path=tmp_path, env="development")
    handler = logging.StreamHandler(io.StringIO())
    logs.protect(handler, settings)
    logs.protect(handler, settings)  # idempotent: one filter

    line = emit(handler, "reply from %s", "+13125550100")

    assert "reply from ***0100" in line
    assert not line.startswith("{")
    assert len(handler.filters) == 1
