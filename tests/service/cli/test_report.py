"""``ptnudge report adherence`` end to end: the real command against a committed database."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

import service.cli  # noqa: F401 - registers every command group on the root app
from service.cli.app import app
from service.cli.report import ReportFormat, render, table_text
from service.models import Clinic, Patient
from service.reporting.adherence import AdherenceReport, build_report
from service.reporting.reports import CSV_COLUMNS
from tests.conftest import Database
from tests.factories import make_clinic, make_patient
from tests.service.reporting.report_data import (
    MARKUP_NAME,
    NOW,
    SINCE,
    realistic_clinic,
    report_with_hostile_names,
)


@pytest.fixture
def clinic_slug(committed_db: Database) -> str:
    """A realistic month up to now, and a second clinic whose patient must not show."""
    with committed_db.sessions() as session:
        clinic: Clinic = realistic_clinic(session, now=dt.datetime.now(dt.UTC))
        make_patient(session, make_clinic(session), first_name="Elsewhere")
        session.commit()
        return clinic.slug


def run(database: Database, *args: str) -> Result:
    env = {"PTNUDGE_DATABASE_URL": database.url, "PTNUDGE_ENV": "test"}
    return CliRunner().invoke(app, ["report", "adherence", *args], env=env)


def test_json_lists_the_clinics_patients_worst_first(
    committed_db: Database, clinic_slug: str
) -> None:
    result = run(committed_db, "--clinic", clinic_slug, "--format", "json")

    assert result.exit_code == 0, result.output
    patients = json.loads(result.stdout)
    assert len(patients) == 10
    assert {p["clinic"] for p in patients} == {clinic_slug}
    known = [p["adherence"] for p in patients if p["adherence"] is not None]
    assert known == sorted(known)


def test_without_a_clinic_every_clinic_is_reported(
    committed_db: Database, clinic_slug: str
) -> None:
    result = run(committed_db, "--format", "csv")

    assert result.exit_code == 0, result.output
    names = [row["first_name"] for row in csv.DictReader(io.StringIO(result.stdout))]
    assert len(names) == 11
    assert names[-1] == "Elsewhere"  # nothing delivered: last


def test_output_writes_a_self_contained_html_file(
    committed_db: Database, clinic_slug: str, tmp_path: Path
) -> None:
    target = tmp_path / "adherence.html"

    result = run(committed_db, "--clinic", clinic_slug, "--format", "html", "--output", str(target))

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") >= 11
    assert "Elsewhere" not in page


def test_an_output_file_is_readable_by_its_owner_only(
    committed_db: Database, clinic_slug: str, tmp_path: Path
) -> None:
    # It holds first names and pain trends: not for every account on the machine, even
    # when it replaces a file that was world-readable and the umask is the usual 022.
    fresh, existing = tmp_path / "adherence.csv", tmp_path / "old.csv"
    existing.write_text("stale", encoding="utf-8")
    existing.chmod(0o644)
    previous = os.umask(0o022)
    try:
        results = [
            run(committed_db, "--format", "csv", "--output", str(f)) for f in (fresh, existing)
        ]
    finally:
        os.umask(previous)

    for result in results:
        assert result.exit_code == 0, result.output
    for target in (fresh, existing):
        assert stat.S_IMODE(target.stat().st_mode) == 0o600, target
    assert "stale" not in existing.read_text(encoding="utf-8")


def test_the_table_is_the_default(committed_db: Database, clinic_slug: str) -> None:
    result = run(committed_db, "--clinic", clinic_slug, "--since", "2026-01-01")

    assert result.exit_code == 0, result.output
    assert "Lakeside Back Clinic" in result.stdout
    assert "10 patients" in result.stdout


def test_every_format_of_the_command_shows_the_days_the_patient_said(
    committed_db: Database, clinic_slug: str, tmp_path: Path
) -> None:
    """Ana's Sunday check-ins end on 7 days of 7 (``report_data``)."""
    shown = {}
    for fmt in ("json", "csv", "html", "table"):
        # A file gets the table at full width (the test terminal is 80 columns).
        target = tmp_path / f"adherence.{fmt}"
        result = run(
            committed_db, "--clinic", clinic_slug, "--format", fmt, "--output", str(target)
        )
        assert result.exit_code == 0, result.output
        shown[fmt] = target.read_text(encoding="utf-8")

    ana = next(p for p in json.loads(shown["json"]) if p["first_name"] == "Ana")
    assert ana["self_reported_days"]["latest"] == 7
    csv_ana = next(r for r in csv.DictReader(io.StringIO(shown["csv"])) if r["first_name"] == "Ana")
    assert csv_ana["self_reported_days_latest"] == "7"
    assert "Days/week, said" in shown["html"]
    assert '<td class="num said">7/7 (mean ' in shown["html"]
    assert "7/7 (mean" in shown["table"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--clinic", "no-such-clinic"), "no clinic"),
        (("--since", "last week"), "expected a date like"),
        (("--since", "2999-01-01"), "must start before now"),
    ],
)
def test_bad_input_is_refused_with_exit_code_1(
    committed_db: Database, clinic_slug: str, args: tuple[str, ...], message: str
) -> None:
    result = run(committed_db, *args)

    assert result.exit_code == 1
    assert message in result.stderr


# --- the formats, rendered from a report in hand ----------------------------------------------


@pytest.fixture
def report(session: Session) -> AdherenceReport:
    return report_with_hostile_names(session)


@pytest.fixture
def phones(session: Session) -> list[str]:
    return [phone for phone in session.scalars(select(Patient.phone)) if phone]


def test_no_format_shows_a_phone_number(report: AdherenceReport, phones: list[str]) -> None:
    outputs = [render(report, fmt) for fmt in ReportFormat]
    for phone in phones:
        for text in outputs:
            assert phone not in text
            assert phone[-7:] not in text


def test_table_shows_names_literally_and_the_summary(report: AdherenceReport) -> None:
    text = table_text(report, width=240)

    assert MARKUP_NAME in text
    assert "Lakeside Back Clinic" in text
    assert "13 patients" in text
    assert text.index("Daniel") < text.index("Ana #")  # worst first


def test_an_empty_report_renders_in_every_format(session: Session) -> None:
    clinic = make_clinic(session)
    empty = build_report(session=session, clinic=clinic, since=SINCE, now=NOW)

    assert json.loads(render(empty, ReportFormat.JSON)) == []
    assert render(empty, ReportFormat.CSV).splitlines() == [",".join(CSV_COLUMNS)]
    assert "No patients in this report." in render(empty, ReportFormat.HTML)
    assert "0 patients" in render(empty, ReportFormat.TABLE)
