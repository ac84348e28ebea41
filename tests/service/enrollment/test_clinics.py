"""Clinics: adding one (international phone, its country as the default region), finding it."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.enrollment.clinics import (
    ClinicError,
    NotFoundError,
    add_clinic,
    get_clinic,
    list_clinics,
    valid_email,
    valid_timezone,
)
from service.models import AuditEvent, Clinic


def add(session: Session, **overrides: str) -> Clinic:
    values = {
        "slug": "back-clinic",
        "name": "Lakeside Back Clinic",
        "phone": "+1 312 555 0199",
        "timezone": "America/Chicago",
    }
    values.update(overrides)
    return add_clinic(session=session, actor="cli:test", **values)


def test_a_clinic_keeps_its_phone_in_e164_and_its_country_as_region(session: Session) -> None:
    clinic = add(session, email="Staff@Lakeside.example")

    assert clinic.id is not None
    assert clinic.phone == "+13125550199"
    assert clinic.region == "US"
    assert clinic.email == "staff@lakeside.example"
    event = session.scalars(select(AuditEvent).where(AuditEvent.clinic_id == clinic.id)).one()
    assert (event.action, event.actor) == ("clinic_add", "cli:test")


def test_a_clinic_abroad_gets_that_country_as_region(session: Session) -> None:
    clinic = add(session, slug="madrid", phone="+34 912 345 678", timezone="Europe/Madrid")

    assert (clinic.phone, clinic.region) == ("+34912345678", "ES")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("phone", "(312) 555-0199", "international format"),
        ("phone", "+1 312 555", "not a valid number"),
        ("phone", "+800 1234 5678", "not a valid number in any country"),
        ("timezone", "Chicago", "unknown time zone 'Chicago'"),
        ("timezone", "america/chicago", "did you mean America/Chicago?"),
        ("slug", "Back Clinic", "lower-case letters"),
        ("name", "  ", "name is required"),
        ("email", "staff@", "not a valid address"),
    ],
)
def test_bad_clinic_input_is_refused_with_the_reason(
    session: Session, field: str, value: str, message: str
) -> None:
    with pytest.raises(ClinicError, match=message):
        add(session, **{field: value})

    assert list_clinics(session=session) == []


def test_the_same_slug_twice_is_refused(session: Session) -> None:
    add(session)

    with pytest.raises(ClinicError, match="'back-clinic' already exists"):
        add(session, name="Another")


def test_clinics_are_found_by_slug_and_listed_in_order(session: Session) -> None:
    add(session, slug="westside")
    add(session, slug="back-clinic")

    assert get_clinic(session=session, slug="westside").slug == "westside"
    assert [c.slug for c in list_clinics(session=session)] == ["back-clinic", "westside"]
    with pytest.raises(NotFoundError, match="no clinic 'eastside'"):
        get_clinic(session=session, slug="eastside")


@pytest.mark.parametrize(
    "address",
    ["ana@example.com", "ana.lopez+pt@mail.example.org", "o'brien@example.ie", "A@B.CO"],
)
def test_ordinary_email_addresses_are_accepted(address: str) -> None:
    assert valid_email(address) == address.lower()


@pytest.mark.parametrize(
    "address",
    [
        "ana",
        "ana@",
        "@example.com",
        "ana@example",
        "ana@@example.com",
        "ana..lopez@example.com",
        ".ana@example.com",
        "ana@-example.com",
        "ana lopez@example.com",
        "ana@example.c",
        "a" * 65 + "@example.com",
    ],
)
def test_malformed_email_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError, match="not a valid address"):
        valid_email(address)


def test_time_zones_are_iana_names_and_not_file_paths() -> None:
    assert valid_timezone(" Europe/Madrid ") == "Europe/Madrid"
    for name in ("../../etc/passwd", "", "EST5EDT/x"):
        with pytest.raises(ValueError, match="unknown time zone"):
            valid_timezone(name)


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("EST", "America/New_York"),
        ("EST5EDT", "America/New_York"),
        ("US/Eastern", "America/New_York"),
        ("PST8PDT", "America/Los_Angeles"),
        ("CET", "Europe/Paris"),
        ("MST", "America/Denver"),
        ("PST", "America/Los_Angeles"),  # not a zone name at all, but what people write
    ],
)
def test_abbreviations_and_aliases_are_refused_with_the_region_to_use(
    name: str, suggestion: str
) -> None:
    with pytest.raises(ValueError, match=suggestion):
        valid_timezone(name)


@pytest.mark.parametrize("name", ["Etc/GMT+5", "UTC", "GMT0"])
def test_fixed_offsets_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a region name"):
        valid_timezone(name)


@pytest.mark.parametrize(
    "name", ["America/New_York", "Europe/Paris", "Asia/Tokyo", "America/Argentina/Buenos_Aires"]
)
def test_region_names_are_accepted(name: str) -> None:
    assert valid_timezone(name) == name
