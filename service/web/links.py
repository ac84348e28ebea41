"""The email action links, ``GET|POST /e/{token}``, and the small pages they answer with.

GET changes nothing (mail scanners and link previews fetch every URL in a message); the page
it shows posts back to the same URL, which is also RFC 8058's one-click unsubscribe.
"""

from __future__ import annotations

import html

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from service.db import transaction
from service.delivery.links import LinkAction, LinkError, apply_link, check_link
from service.web.urls import LINK_PATH
from service.web.wiring import Wiring, responses

CONFIRM_PAGES = {
    LinkAction.DONE: ("Mark as done?", "Tap the button to record this exercise as done.", "Done"),
    LinkAction.STOP: (
        "Unsubscribe?",
        "Tap the button to stop getting reminder emails at this address.",
        "Unsubscribe",
    ),
}
DONE_PAGES = {
    LinkAction.DONE: ("Recorded", "Nice work! Your exercise is recorded as done.", ""),
    LinkAction.STOP: ("Unsubscribed", "You will not get more reminder emails.", ""),
}
REFUSALS = {
    "expired": "This link has expired. Nothing was changed.",
    "gone": "This link is no longer valid. Nothing was changed.",
    "invalid": "This link is not valid. Nothing was changed.",
    "no_email": (
        "No email address belongs to this link, so nothing was unsubscribed. "
        "To stop text messages, reply STOP to any of them."
    ),
}


def add_routes(app: FastAPI, wiring: Wiring) -> None:
    @app.get(LINK_PATH, response_class=HTMLResponse, responses=responses("text/html", 400))
    def email_link_page(token: str) -> HTMLResponse:
        # GET changes nothing: mail scanners and previews fetch every link in a message.
        try:
            with transaction(wiring.sessions) as session:
                target = check_link(
                    session=session, settings=wiring.settings, token=token, now=wiring.clock()
                )
        except LinkError as exc:
            return _link_refused(exc)
        return _page(*CONFIRM_PAGES[target.action], form=True)

    @app.post(LINK_PATH, response_class=HTMLResponse, responses=responses("text/html", 400))
    def email_link_action(token: str) -> HTMLResponse:
        # RFC 8058 one-click: the body is "List-Unsubscribe=One-Click" (or our own button);
        # no cookie is needed and the answer is never a redirect.
        try:
            with transaction(wiring.sessions) as session:
                result = apply_link(
                    session=session, settings=wiring.settings, token=token, now=wiring.clock()
                )
        except LinkError as exc:
            return _link_refused(exc)
        return _page(*DONE_PAGES[result.action])


def _page(title: str, message: str, button: str, *, form: bool = False) -> HTMLResponse:
    action = (
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        f'<button type="submit">{html.escape(button)}</button></form>'
        if form
        else ""
    )
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{action}</body></html>"
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


def _link_refused(error: LinkError) -> HTMLResponse:
    page = _page("Link not valid", REFUSALS.get(error.reason, REFUSALS["invalid"]), "")
    page.status_code = 400
    return page
