"""``ptnudge clinics add|edit|list`` end to end."""

from __future__ import annotations

import json

from sqlalchemy import select
from typer.testing import CliRunner, Result

import service.cli  # noqa: F401 - registers every command group on the root app
from service.cli.app import app
from service.models import AuditEvent
from tests.conftest import Database

CLINIC_FIELDS = {"id", "slug", "name", "phone", "email", "timezone", "region", "created_at"}


def run(database: Database, *args: str, **env: str) -> Result:
    values = {"PTNUDGE_DATABASE_URL": database.url, "PTNUDGE_ENV": "test", "COLUMNS": "200"}
    return CliRunner().invoke(app, ["clinics", *args], env={**values, **env})


def add(database: Database, *extra: str, **env: str) -> Result:
    return run(
        database,
        "add",
        "--slug",
        "back-clinic",
        "--name",
        "Lakeside Back Clinic",
        "--phone",
        "+1 312 555 0199",
        "--timezone",
        "America/Chicago",
        *extra,
        **env,
    )


def test_add_then_list_as_json(committed_db: Database) -> None:
    added = add(committed_db, "--email", "staff@lakeside.example", "--json")

    assert added.exit_code == 0, added.output
    clinic = json.loads(added.stdout)
    assert set(clinic) == CLINIC_FIELDS | {"patients"}
    assert (clinic["phone"], clinic["region"]) == ("+13125550199", "US")

    listed = run(committed_db, "list", "--json")

    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == [clinic]


def test_add_prints_a_line_and_list_a_table(committed_db: Database) -> None:
    added = add(committed_db, "--email", "staff@lakeside.example")
    listed = run(committed_db, "list")

    assert added.stdout.startswith("added clinic back-clinic (id ")
    assert "Lakeside Back Clinic" in listed.stdout
    assert "+13125550199" in listed.stdout


def test_a_national_clinic_phone_is_refused_with_exit_code_1(committed_db: Database) -> None:
    result = run(
        committed_db,
        "add",
        "--slug",
        "x",
        "--name",
        "X",
        "--phone",
        "(312) 555-0199",
        "--timezone",
        "America/Chicago",
    )

    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: clinic phone '(312) 555-0199' must be in international format, e.g. +13125550100"
    )
    assert json.loads(run(committed_db, "list", "--json").stdout) == []


def test_a_bad_setting_is_one_line_and_exit_code_2(committed_db: Database) -> None:
    result = run(committed_db, "list", PTNUDGE_TICK_SECONDS="0")

    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: settings: PTNUDGE_TICK_SECONDS: Input should be greater than 0"
    )


def test_add_without_an_email_is_refused_and_adds_nothing(committed_db: Database) -> None:
    added = add(committed_db)

    assert added.exit_code == 1
    assert "email is required" in added.output
    assert "PTNUDGE_ALERT_EMAIL" in added.output
    assert json.loads(run(committed_db, "list", "--json").stdout) == []


def test_add_without_an_email_is_allowed_with_the_alert_fallback(committed_db: Database) -> None:
    added = add(committed_db, PTNUDGE_ALERT_EMAIL="oncall@ptnudge.example")

    assert added.exit_code == 0, added.output


def test_edit_changes_what_is_given_and_audits_before_and_after(committed_db: Database) -> None:
    add(committed_db, "--email", "staff@lakeside.example")

    edited = run(committed_db, "edit", "back-clinic", "--email", "Desk@Lakeside.example", "--json")

    assert edited.exit_code == 0, edited.output
    doc = json.loads(edited.stdout)
    assert (doc["email"], doc["name"]) == ("desk@lakeside.example", "Lakeside Back Clinic")
    with committed_db.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "clinic_edit")).one()
    assert event.detail == {
        "before": {"email": "staff@lakeside.example"},
        "after": {"email": "desk@lakeside.example"},
    }


def test_edit_with_a_bad_phone_is_refused_and_changes_nothing(committed_db: Database) -> None:
    add(committed_db, "--email", "staff@lakeside.example")

    edited = run(committed_db, "edit", "back-clinic", "--name", "New", "--phone", "312 555 0100")

    assert edited.exit_code == 1
    [clinic] = json.loads(run(committed_db, "list", "--json").stdout)
    assert (clinic["name"], clinic["phone"]) == ("Lakeside Back Clinic", "+13125550199")


def test_edit_of_an_unknown_clinic_says_so(committed_db: Database) -> None:
    edited = run(committed_db, "edit", "nowhere", "--name", "X")

    assert edited.exit_code == 1
    assert "no clinic 'nowhere'" in edited.output
