"""Clinics: who sends the reminders, from which country (the default region for patients'
phone numbers) and in which time zone (the default for patients who give none).

The small checks every enrollment path shares (time zone names, email syntax) live here too,
beside the clinic that needs them first, so ``patients`` can import them without a cycle.
"""

from __future__ import annotations

import functools
import re
import zoneinfo

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import audit
from service.models import Clinic

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MAX_NAME = 200
MAX_EMAIL = 254  # RFC 5321 path limit, less the angle brackets
# Simple and correct for what a clinic types: a dot-atom local part and a domain of LDH
# labels ending in an alphabetic TLD. Quoted local parts and IP literals are refused on
# purpose: no patient has one, and mail providers mishandle them.
_EMAIL = re.compile(
    r"^(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})$"
)


class NotFoundError(LookupError):
    """A clinic or patient that does not exist (or belongs to another clinic)."""


class ClinicError(ValueError):
    """A clinic that cannot be added as given; the message says which field and why."""


def add_clinic(
    *,
    session: Session,
    slug: str,
    name: str,
    phone: str,
    timezone: str,
    email: str | None = None,
    actor: str,
) -> Clinic:
    """Validate and add a clinic (flushed, so it has an id). The phone must be international:
    its country becomes the default region for patients' national-format numbers."""
    slug = slug.strip()
    if not SLUG.match(slug):
        raise ClinicError(f"slug {slug!r} must be lower-case letters, digits and dashes")
    if not name.strip() or len(name.strip()) > MAX_NAME:
        raise ClinicError(f"name is required (at most {MAX_NAME} characters)")
    if session.scalar(select(Clinic.id).where(Clinic.slug == slug)) is not None:
        raise ClinicError(f"clinic {slug!r} already exists")
    try:
        e164, region = _clinic_phone(phone)
        zone = valid_timezone(timezone)
        address = valid_email(email) if email else None
    except ValueError as exc:
        raise ClinicError(str(exc)) from None
    clinic = Clinic(
        slug=slug, name=name.strip(), phone=e164, email=address, timezone=zone, region=region
    )
    session.add(clinic)
    session.flush()
    audit.record(
        session=session,
        actor=actor,
        action="clinic_add",
        clinic_id=clinic.id,
        detail={"slug": slug},
    )
    return clinic


def require_alert_address(*, email: str | None, fallback: str | None) -> None:
    """A clinic needs somewhere for warning-sign alerts to go: its own address, or the
    deployment's ``PTNUDGE_ALERT_EMAIL`` for every clinic."""
    if not (email or "").strip() and not fallback:
        raise ClinicError(
            "email is required: warning-sign alerts go there "
            "(or set PTNUDGE_ALERT_EMAIL for every clinic)"
        )


def edit_clinic(
    *,
    session: Session,
    slug: str,
    actor: str,
    fallback_email: str | None,
    name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
) -> Clinic:
    """Change what is given, validated like ``add_clinic``, audited with before and after.

    1. Validate every given field first: a refusal changes nothing.
    2. Apply, and record the fields that changed (none: no audit row)."""
    clinic = get_clinic(session=session, slug=slug)
    wanted = _validated_changes(name=name, phone=phone, email=email)
    require_alert_address(email=wanted.get("email", clinic.email), fallback=fallback_email)
    before = {field: getattr(clinic, field) for field in wanted}
    changed = {field: value for field, value in wanted.items() if before[field] != value}
    for field, value in changed.items():
        setattr(clinic, field, value)
    if changed:
        audit.record(
            session=session,
            actor=actor,
            action="clinic_edit",
            clinic_id=clinic.id,
            detail={"before": {f: before[f] for f in changed}, "after": changed},
        )
    return clinic


def _validated_changes(
    *, name: str | None, phone: str | None, email: str | None
) -> dict[str, str | None]:
    changes: dict[str, str | None] = {}
    if name is not None:
        if not name.strip() or len(name.strip()) > MAX_NAME:
            raise ClinicError(f"name is required (at most {MAX_NAME} characters)")
        changes["name"] = name.strip()
    try:
        if phone is not None:
            changes["phone"], changes["region"] = _clinic_phone(phone)
        if email is not None:
            changes["email"] = valid_email(email)
    except ValueError as exc:
        raise ClinicError(str(exc)) from None
    return changes


def get_clinic(*, session: Session, slug: str) -> Clinic:
    clinic = session.scalar(select(Clinic).where(Clinic.slug == slug))
    if clinic is None:
        raise NotFoundError(f"no clinic {slug!r}; `ptnudge clinics list` shows them")
    return clinic


def list_clinics(*, session: Session) -> list[Clinic]:
    return list(session.scalars(select(Clinic).order_by(Clinic.slug)))


def _clinic_phone(raw: str) -> tuple[str, str]:
    """E.164 and region of an international number (there is no region to guess from yet)."""
    try:
        number = phonenumbers.parse(raw.strip(), None)
    except phonenumbers.NumberParseException:
        raise ValueError(
            f"clinic phone {raw!r} must be in international format, e.g. +13125550100"
        ) from None
    region = phonenumbers.region_code_for_number(number)
    if not phonenumbers.is_valid_number(number) or not region or len(region) != 2:
        raise ValueError(f"clinic phone {raw!r} is not a valid number in any country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), region


# Areas of the IANA names that stand for a place ("America/New_York"): such a zone follows
# the place's daylight-saving rules. Everything else (EST, CET, PST8PDT, Etc/GMT+5, UTC,
# US/Eastern) is a fixed offset or an old alias, and "EST" for a New York patient would send
# every reminder an hour off for half the year.
REGION_AREAS = frozenset(
    {"Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe"}
    | {"Indian", "Pacific"}
)
# The region a clinic most likely means by an abbreviation or an old alias.
ZONE_SUGGESTIONS: dict[str, str] = {
    **dict.fromkeys(("est", "edt", "est5edt", "us/eastern", "eastern", "et"), "America/New_York"),
    **dict.fromkeys(("cst", "cdt", "cst6cdt", "us/central", "central", "ct"), "America/Chicago"),
    **dict.fromkeys(("mst", "mdt", "mst7mdt", "us/mountain", "mountain", "mt"), "America/Denver"),
    **dict.fromkeys(("us/arizona",), "America/Phoenix"),
    **dict.fromkeys(
        ("pst", "pdt", "pst8pdt", "us/pacific", "pacific", "pt"), "America/Los_Angeles"
    ),
    **dict.fromkeys(("akst", "akdt", "us/alaska"), "America/Anchorage"),
    **dict.fromkeys(("hst", "us/hawaii"), "Pacific/Honolulu"),
    **dict.fromkeys(("cet", "cest", "met"), "Europe/Paris"),
    **dict.fromkeys(("eet", "eest"), "Europe/Athens"),
    **dict.fromkeys(("wet", "west"), "Europe/Lisbon"),
    **dict.fromkeys(("gmt", "bst", "gb"), "Europe/London"),
    **dict.fromkeys(("canada/eastern",), "America/Toronto"),
    **dict.fromkeys(("canada/pacific",), "America/Vancouver"),
    **dict.fromkeys(("mexico/general",), "America/Mexico_City"),
}


@functools.lru_cache(maxsize=512)
def valid_timezone(name: str) -> str:
    """The IANA region name (``America/New_York``), checked. A wrong-case name gets a
    suggestion (Linux is case-sensitive, so ``america/chicago`` is unknown rather than
    silently fixed); an abbreviation or fixed offset (``EST``, ``Etc/GMT+5``) is refused
    with the region to use instead."""
    name = name.strip()
    # Membership first: ZoneInfo would also open arbitrary files under the zone folder.
    if name not in _zone_names():
        hint = _zones_by_lower_name().get(name.lower())
        if hint is None or not _is_region(hint):
            hint = ZONE_SUGGESTIONS.get(name.lower())
        suggestion = f"did you mean {hint}?" if hint else "use an IANA name like America/Chicago"
        raise ValueError(f"unknown time zone {name!r} ({suggestion})")
    if not _is_region(name):
        raise ValueError(_not_a_region(name))
    zoneinfo.ZoneInfo(name)
    return name


def _is_region(name: str) -> bool:
    return name.split("/", 1)[0] in REGION_AREAS and "/" in name


def _not_a_region(name: str) -> str:
    hint = ZONE_SUGGESTIONS.get(name.lower())
    example = f"such as {hint}" if hint else "like America/Chicago"
    return (
        f"time zone {name!r} is not a region name; use one {example}, which follows that "
        "place's daylight-saving rules"
    )


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def _zones_by_lower_name() -> dict[str, str]:
    return {zone.lower(): zone for zone in _zone_names()}


def valid_email(raw: str) -> str:
    """The address, trimmed and lower-cased (the opt-out ledger compares lower-case), or a
    ValueError saying what is wrong. Syntax only: no DNS, no network."""
    address = raw.strip()
    match = _EMAIL.match(address)
    if not match or len(address) > MAX_EMAIL or len(match["local"]) > 64:
        raise ValueError(f"email {raw!r} is not a valid address")
    return address.lower()
