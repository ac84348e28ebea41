"""Logging for every process: JSON lines in production, readable lines locally.

Phone numbers are masked to their last four digits on every handler (ours never log them in
full; the filter catches what third-party libraries print). Message bodies are never logged:
log calls name reminder ids and kinds, not text. The web app's access log names the
email-link route, never the token in it (``service/web/access_log.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

from config.settings import Settings
from service.masking import PhoneRedactingFilter

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and the
    exception text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def wants_json(settings: Settings) -> bool:
    if settings.log_format == "auto":
        return settings.env == "production"
    return settings.log_format == "json"


def make_formatter(settings: Settings) -> logging.Formatter:
    return JsonFormatter() if wants_json(settings) else logging.Formatter(TEXT_FORMAT)


def protect(handler: logging.Handler, settings: Settings) -> None:
    """Give a handler our format and the phone-number filter (idempotent)."""
    handler.setFormatter(make_formatter(settings))
    if not any(isinstance(f, PhoneRedactingFilter) for f in handler.filters):
        handler.addFilter(PhoneRedactingFilter())


def configure(settings: Settings, *, level: int = logging.INFO) -> None:
    """Set up the root logger for a ptnudge process (web, CLI); Celery's own handlers are
    protected through its ``after_setup_logger`` signals in ``tasks/app.py``."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    root.setLevel(level)
    # uvicorn's loggers keep handlers of their own.
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            protect(handler, settings)
