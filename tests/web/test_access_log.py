"""The web app's access log names an email link's route, never the token in it."""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from service.db import upgrade
from service.web.access_log import LinkTokenFilter

TOKEN = "MTIzNDU.Z0a1bQ.kq3mX9vRf2LwT8yZc4NdH7pJs6"
TOKEN_PATH = "/e/" + TOKEN


def test_email_link_tokens_are_cut_from_access_log_records() -> None:
    stream = io.StringIO()
    access = logging.Logger("uvicorn.access.copy")
    access.addHandler(logging.StreamHandler(stream))
    access.addFilter(LinkTokenFilter())

    # uvicorn's access record: client, method, path with query, HTTP version, status.
    access.info('%s - "%s %s HTTP/%s" %d', "10.0.0.7:5123", "POST", TOKEN_PATH, "1.1", 200)
    access.info("GET %s", "/e/" + TOKEN + "?utm_source=mail")

    written = stream.getvalue()
    assert TOKEN not in written
    assert '"POST /e/… HTTP/1.1" 200' in written
    assert "GET /e/…?utm_source=mail" in written


def test_the_web_apps_access_log_names_the_link_route_not_the_token(tmp_path: Path) -> None:
    """``uvicorn service.web:app`` as deployed: the filter is installed on its access log."""
    url = f"sqlite:///{tmp_path / 'web.db'}"
    upgrade(url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTNUDGE_")}
    env |= {"PTNUDGE_ENV": "test", "PTNUDGE_DATABASE_URL": url}
    command = [
        str(Path(sys.executable).with_name("uvicorn")),
        "service.web:app",
        "--port",
        str(port),
    ]
    web = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        answer = _get_when_up(f"http://127.0.0.1:{port}{TOKEN_PATH}")
    finally:
        web.terminate()
        written, _ = web.communicate(timeout=30)

    assert answer == 400  # not one of ours; logged all the same
    assert TOKEN not in written
    assert '"GET /e/… HTTP/1.1" 400' in written


def _get_when_up(url: str) -> int:
    for _ in range(300):
        try:
            return httpx.get(url, timeout=5).status_code
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the web app did not start")
