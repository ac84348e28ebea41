"""The paths the web app serves and the URLs built on them, in one place: a route and the
callback URLs and email links that point at it cannot drift apart.

The core never imports this module; the entry points hand it a ``PublicUrls`` (it fits
``service.delivery.links.UrlBuilder``) built on ``PTNUDGE_PUBLIC_URL``."""

from __future__ import annotations

from dataclasses import dataclass

INBOUND_PATH = "/twilio/inbound"
STATUS_PATH = "/twilio/status"
LINK_PATH = "/e/{token}"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
# The status callback URL names its reminder in this query parameter.
REMINDER_PARAM = "r"


def status_callback_url(base: str, reminder_id: int) -> str:
    return f"{base}{STATUS_PATH}?{REMINDER_PARAM}={reminder_id}"


def link_url(base: str, token: str) -> str:
    return base + LINK_PATH.format(token=token)


@dataclass(frozen=True)
class PublicUrls:
    """The web app's URLs under one public base URL (``PTNUDGE_PUBLIC_URL``)."""

    base: str

    def status_callback(self, reminder_id: int) -> str:
        return status_callback_url(self.base, reminder_id)

    def link(self, token: str) -> str:
        return link_url(self.base, token)
