"""From reminders to words: the message that carries reminders that travel together (which
ones do is the scheduler's ``group_close``, so the daily limit counts the messages sent).

Preview and the send task both use this module, so what a clinic previews is what is sent.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import Settings
from service.delivery.links import UrlBuilder, action_links
from service.delivery.rendering import pick_variant, render_email, render_sms, variant_count
from service.models import Channel, Clinic, Patient, PlanItem, Reminder
from service.transports.base import OutboundMessage


def merged_kinds(*, session: Session, head_ids: Sequence[int]) -> dict[int, list[str]]:
    """For each reminder that leaves as one message with others, the kinds of the reminders
    merged into it, in the order the dispatcher grouped them (due time, then plan order).
    Reminders with nothing merged into them are absent. One indexed query for a batch."""
    if not head_ids:
        return {}
    query = (
        select(Reminder.merged_into_id, Reminder.kind)
        .outerjoin(PlanItem, PlanItem.id == Reminder.plan_item_id)
        .where(Reminder.merged_into_id.in_(head_ids))
        .order_by(Reminder.due_at, func.coalesce(PlanItem.position, 0), Reminder.id)
    )
    kinds: dict[int, list[str]] = defaultdict(list)
    for head_id, kind in session.execute(query):
        kinds[head_id].append(kind)
    return dict(kinds)


@dataclass(frozen=True)
class Composition:
    """One message's words for one channel."""

    body: str
    subject: str | None = None
    html: str | None = None


def compose(
    *,
    settings: Settings,
    patient: Patient,
    clinic: Clinic,
    kinds: Sequence[str],
    channel: Channel,
    seed: int,
    urls: UrlBuilder,
    reminder_id: int | None = None,
    extra: Mapping[str, object] | None = None,
) -> Composition:
    """Render the message for one or more reminder kinds (several: the ``combined`` message),
    or a system message such as ``welcome``. ``seed`` rotates the wording; ``extra`` is what
    a system message says beyond the patient (the closing message's figures)."""
    message = kinds[0] if len(kinds) == 1 else "combined"
    context: dict[str, object] = {
        **patient_context(patient, clinic),
        "kind": kinds[0],
        "kinds": list(kinds),
        "per_day": patient.max_per_day,
        **(extra or {}),
    }
    if channel is Channel.EMAIL:
        # Every patient email carries its unsubscribe link; a preview (no row yet) shows the
        # shape of the links only.
        context["action_links"] = action_links(settings, reminder_id or 0, urls=urls)
        count = variant_count(channel="email", message=message, locale=patient.locale)
        email = render_email(
            message=message,
            locale=patient.locale,
            context=context,
            variant=pick_variant(seed=seed, count=count),
        )
        return Composition(body=email.text, subject=email.subject, html=email.html)
    count = variant_count(channel="sms", message=message, locale=patient.locale)
    text = render_sms(
        message=message,
        locale=patient.locale,
        context=context,
        variant=pick_variant(seed=seed, count=count),
    )
    return Composition(body=text)


def patient_context(patient: Patient, clinic: Clinic) -> dict[str, object]:
    """What every message to the patient may say about them and their clinic."""
    return {
        "first_name": patient.first_name,
        "clinic_name": clinic.name,
        "clinic_phone": format_phone(clinic.phone),
        "per_day": patient.max_per_day,  # the welcome and HELP state the frequency
    }


def outbound(
    *,
    settings: Settings,
    composition: Composition,
    channel: Channel,
    to: str,
    reminder_id: int,
    urls: UrlBuilder,
) -> OutboundMessage:
    """The transport's message, with the callback URL (SMS) or unsubscribe headers (email)."""
    if channel is Channel.SMS:
        return OutboundMessage(
            channel=channel,
            to=to,
            body=composition.body,
            reference=f"r{reminder_id}",
            status_callback=urls.status_callback(reminder_id),
        )
    links = action_links(settings, reminder_id, urls=urls)
    return OutboundMessage(
        channel=channel,
        to=to,
        body=composition.body,
        reference=f"r{reminder_id}",
        subject=composition.subject,
        html=composition.html,
        headers={
            "List-Unsubscribe": f"<{links['stop_url']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


def body_digest(body: str) -> str:
    """A fingerprint of what was sent, to recognise it in the provider's records after a
    crash without keeping the text itself in a second place."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1024)
def format_phone(e164: str) -> str:
    """A clinic's number as patients read it ("+1 312-555-0100"). Cached: a few clinics'
    numbers appear in thousands of messages, and parsing one costs more than rendering."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
