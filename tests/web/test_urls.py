"""The URLs the core puts in messages land on the routes the app serves."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI
from starlette.routing import Match

from service.web.factory import create_app
from service.web.urls import PublicUrls
from tests.conftest import make_settings

BASE = "https://ptnudge.example.org"


def routed(app: FastAPI, method: str, url: str) -> str | None:
    """The path template of the route that would answer ``method url``, if any."""
    scope = {"type": "http", "method": method, "path": urlsplit(url).path}
    for route in app.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", None))
    return None


def test_the_status_callback_url_reaches_the_status_route_with_its_reminder(
    tmp_path: Path,
) -> None:
    app = create_app(make_settings(database_url="sqlite://", tmp_path=tmp_path))
    url = PublicUrls(BASE).status_callback(42)

    assert url.startswith(BASE + "/")
    assert routed(app, "POST", url) == "/twilio/status"
    assert parse_qs(urlsplit(url).query) == {"r": ["42"]}


def test_an_email_link_reaches_the_link_routes_for_get_and_post(tmp_path: Path) -> None:
    app = create_app(make_settings(database_url="sqlite://", tmp_path=tmp_path))
    url = PublicUrls(BASE).link("abc.DEF-123_x")

    assert url == BASE + "/e/abc.DEF-123_x"
    assert routed(app, "GET", url) == "/e/{token}"
    assert routed(app, "POST", url) == "/e/{token}"
