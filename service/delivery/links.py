"""Signed, expiring action links in emails: "I did it" and "unsubscribe".

A token carries only the reminder id, signed with ``PTNUDGE_SECRET_KEY`` and a salt per
action, so a "done" token can never be replayed as a "stop" one (or the reverse) and nothing
about the patient is readable from the URL. The action is whichever salt verifies.

GET never changes anything (mail scanners and link previews fetch every URL in a message);
the page it shows posts back to the same URL, and that POST is also RFC 8058's one-click
unsubscribe (``List-Unsubscribe=One-Click``, no cookies, no redirect).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Protocol, TypeGuard

from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from config.settings import Settings
from service.enrollment import optouts
from service.models import Channel, Outcome, Reminder
from service.replies.outcomes import record_outcome


class LinkAction(enum.StrEnum):
    DONE = "done"
    STOP = "stop"


SALTS = {LinkAction.DONE: "email-done", LinkAction.STOP: "email-stop"}
# "Done" only means something while the reminder is fresh; an unsubscribe link must keep
# working for as long as someone may dig the email out again.
MAX_AGES = {LinkAction.DONE: dt.timedelta(days=14), LinkAction.STOP: dt.timedelta(days=60)}
# Clocks of the worker that signs and the web app that checks may differ a little; a token
# further in the future than this was not made by us at the time it claims.
CLOCK_SKEW = dt.timedelta(minutes=5)
MAX_ID = 2**63 - 1  # reminders.id is a 64-bit integer


class UrlBuilder(Protocol):
    """The web app's URLs, for what the core puts in messages. The web layer owns its routes
    (``service.web.urls.PublicUrls``); the entry points hand one in."""

    def status_callback(self, reminder_id: int) -> str:
        """Where Twilio reports what became of the SMS of this reminder."""
        ...

    def link(self, token: str) -> str:
        """The email action link that carries this signed token."""
        ...


class LinkError(Exception):
    """The link cannot be used; ``reason`` is "invalid", "expired", "gone", or "no_email"
    (a stop link with no email address behind it: nothing to unsubscribe)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LinkTarget:
    action: LinkAction
    reminder_id: int


@dataclass(frozen=True)
class LinkResult:
    action: LinkAction
    changed: bool  # False: it had been done already (a second click, a scanner's POST)
    kind: str  # the reminder's kind, for the page
    locale: str


def _serializer(settings: Settings, action: LinkAction) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt=SALTS[action])


def make_token(settings: Settings, *, reminder_id: int, action: LinkAction) -> str:
    return str(_serializer(settings, action).dumps(reminder_id))


def action_links(settings: Settings, reminder_id: int, *, urls: UrlBuilder) -> dict[str, str]:
    """The URLs an email carries: ``done_url`` and ``stop_url`` (also List-Unsubscribe)."""
    return {
        f"{action.value}_url": urls.link(
            make_token(settings, reminder_id=reminder_id, action=action)
        )
        for action in LinkAction
    }


def read_token(settings: Settings, token: str, *, now: dt.datetime) -> LinkTarget:
    """What a token asks for. Raises LinkError("invalid") for anything not signed by us for
    one of the actions, LinkError("expired") when it is older than that action allows."""
    for action in LinkAction:
        try:
            value, signed_at = _serializer(settings, action).loads(token, return_timestamp=True)
        except BadData:
            continue
        # Ages are checked against the caller's clock rather than itsdangerous's own.
        if signed_at - now > CLOCK_SKEW:
            raise LinkError("invalid")
        if now - signed_at > MAX_AGES[action]:
            raise LinkError("expired")
        if _is_reminder_id(value):
            return LinkTarget(action, value)
    raise LinkError("invalid")


def _is_reminder_id(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def check_link(*, session: Session, settings: Settings, token: str, now: dt.datetime) -> LinkTarget:
    """Validate a link without acting on it (the GET page)."""
    target = read_token(settings, token, now=now)
    reminder = session.get(Reminder, target.reminder_id)
    if reminder is None:
        raise LinkError("gone")
    if target.action is LinkAction.STOP and _email_of(reminder) is None:
        raise LinkError("no_email")
    return target


def apply_link(*, session: Session, settings: Settings, token: str, now: dt.datetime) -> LinkResult:
    """Act on a link (the POST): record the reminder as done, or unsubscribe the address it
    went to. Doing it twice is harmless and reports ``changed=False``."""
    target = read_token(settings, token, now=now)
    reminder = session.get(Reminder, target.reminder_id)
    if reminder is None:
        raise LinkError("gone")
    if target.action is LinkAction.DONE:
        changed = record_outcome(session=session, reminder=reminder, outcome=Outcome.DONE, now=now)
        reminder.patient.last_reply_at = now
    else:
        changed = _unsubscribe(session=session, reminder=reminder, now=now)
    return LinkResult(target.action, changed, reminder.kind, reminder.patient.locale)


def _email_of(reminder: Reminder) -> str | None:
    """The address a stop link unsubscribes: where the email went, else the patient's."""
    email = reminder.to_address if reminder.channel is Channel.EMAIL else None
    return email or reminder.patient.email or None


def _unsubscribe(*, session: Session, reminder: Reminder, now: dt.datetime) -> bool:
    address = _email_of(reminder)
    if address is None:
        # Saying "unsubscribed" here would be a lie: texts stop with a STOP reply.
        raise LinkError("no_email")
    if optouts.is_opted_out(session=session, address=address, channel=Channel.EMAIL):
        return False
    optouts.opt_out(
        session=session,
        address=address,
        channel=Channel.EMAIL,
        source="email_link",
        actor="patient_email",
        detail={"reminder_id": reminder.id},
        now=now,
    )
    return True
