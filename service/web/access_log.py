"""The web access log names an email link's route, never its token.

A token in ``/e/<token>`` is a bearer credential for "done" and "stop": anyone who reads it
from a log could act on the link, and uvicorn's access log prints every request path."""

from __future__ import annotations

import logging
import re

from service.web.urls import LINK_PATH

_PREFIX = LINK_PATH.split("{", 1)[0]  # "/e/"
TOKEN_PATH = re.compile(re.escape(_PREFIX) + r"[^\s?#\"]+")
LINK_ROUTE = _PREFIX + "…"


class LinkTokenFilter(logging.Filter):
    """Rewrites ``/e/<token>`` to ``/e/…`` in a record, in its message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = TOKEN_PATH.sub(LINK_ROUTE, record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                TOKEN_PATH.sub(LINK_ROUTE, arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


def protect_access_log() -> None:
    """Install the filter on uvicorn's access logger, once per process."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, LinkTokenFilter) for f in access.filters):
        access.addFilter(LinkTokenFilter())
