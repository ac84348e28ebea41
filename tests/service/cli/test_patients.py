"""``ptnudge patients …`` end to end: the real commands against a committed database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

import service.cli  # noqa: F401 - registers every command group on the root app
from service.cli.app import app
from service.enrollment import optouts
from service.enrollment.clinics import add_clinic
from service.models import Channel, Patient, Reminder, ReminderStatus
from tests.conftest import Database

PATIENT_FIELDS = {
    "id",
    "clinic",
    "first_name",
    "phone",
    "email",
    "timezone",
    "locale",
    "channel",
    "wake",
    "program",
    "max_per_day",
    "start_date",
    "status",
    "paused_until",
    "consent",
    "created_at",
}


def run(database: Database, *args: str) -> Result:
    env = {"PTNUDGE_DATABASE_URL": database.url, "PTNUDGE_ENV": "test", "COLUMNS": "200"}
    return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture
def clinics(committed_db: Database) -> Database:
    with committed_db.sessions() as session, session.begin():
        for slug, phone in (("back-clinic", "+13125550199"), ("westside", "+13125550198")):
            add_clinic(
                session=session,
                slug=slug,
                name=slug.title(),
                phone=phone,
                timezone="America/Chicago",
                actor="test",
            )
    return committed_db


def enroll(db: Database, *extra: str) -> Result:
    return run(
        db,
        "patients",
        "enroll",
        "--clinic",
        "back-clinic",
        "--first-name",
        "Ana",
        "--phone",
        "(312) 555-0100",
        *extra,
    )


def patient_count(db: Database) -> int:
    with db.sessions() as session:
        return session.scalar(select(func.count(Patient.id))) or 0


def test_enroll_prints_the_new_patients_id(clinics: Database) -> None:
    result = enroll(clinics)

    assert result.exit_code == 0, result.output
    with clinics.sessions() as session:
        patient = session.scalars(select(Patient)).one()
    assert result.stdout.strip() == str(patient.id)
    assert patient.phone == "+13125550100"


def test_enroll_json_is_the_patient(clinics: Database) -> None:
    result = enroll(
        clinics,
        "--json",
        "--email",
        "ana@example.com",
        "--channel",
        "both",
        "--tune",
        "heat.at=08:00",
    )

    assert result.exit_code == 0, result.output
    patient = json.loads(result.stdout)
    assert set(patient) == PATIENT_FIELDS | {"opted_out"}
    assert patient["opted_out"] == []
    assert patient["clinic"] == "back-clinic"
    assert (patient["phone"], patient["email"], patient["channel"]) == (
        "+13125550100",
        "ana@example.com",
        "both",
    )
    assert (patient["wake"], patient["program"], patient["status"]) == (
        "08:00-20:00",
        "stenosis-core",
        "active",
    )
    assert patient["consent"]["method"] == "recorded by clinic at enrollment"
    assert patient["consent"]["recorded_by"].startswith("cli:")


def opt_out(db: Database, address: str, channel: Channel = Channel.SMS) -> None:
    with db.sessions() as session, session.begin():
        optouts.opt_out(
            session=session, address=address, channel=channel, source="sms_keyword", actor="t"
        )


def test_enrolling_a_number_that_opted_out_says_nothing_will_reach_it(clinics: Database) -> None:
    opt_out(clinics, "+13125550100")

    result = enroll(clinics)

    assert result.exit_code == 0, result.output
    assert "+13125550100 is on the opt-out ledger" in result.stderr
    assert "nothing will be sent by sms until the patient texts START" in result.stderr


def test_enroll_json_lists_the_channels_on_the_opt_out_ledger(clinics: Database) -> None:
    opt_out(clinics, "ana@example.com", Channel.EMAIL)

    result = enroll(clinics, "--json", "--email", "Ana@Example.com", "--channel", "both")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["opted_out"] == ["email"]


def test_enrolling_the_same_phone_again_is_explained_with_exit_code_1(clinics: Database) -> None:
    first = enroll(clinics)
    again = enroll(clinics)

    assert again.exit_code == 1
    assert again.stdout == ""
    assert again.stderr.strip() == (
        f"error: +13125550100 is already enrolled at back-clinic as patient {first.stdout.strip()}"
    )
    assert patient_count(clinics) == 1


def test_every_bad_enrollment_field_is_an_error_line(clinics: Database) -> None:
    result = run(
        clinics,
        "patients",
        "enroll",
        "--clinic",
        "back-clinic",
        "--first-name",
        "Ana",
        "--phone",
        "(312) 555-01",
        "--timezone",
        "Mars/Base",
        "--wake",
        "20:00-08:00",
        "--tune",
        "yoga.every=1h",
    )

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: phone '(312) 555-01' is not a valid number for US",
        "error: unknown time zone 'Mars/Base' (use an IANA name like America/Chicago)",
        "error: wake window '20:00-08:00' ends before it starts",
        "error: tuning 'yoga.every=1h': unknown kind 'yoga'",
    ]
    assert patient_count(clinics) == 0


def test_an_unknown_clinic_is_an_error(clinics: Database) -> None:
    result = run(clinics, "patients", "enroll", "--clinic", "nowhere", "--first-name", "Ana")

    assert result.exit_code == 1
    assert "no clinic 'nowhere'" in result.stderr


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_import_lists_bad_rows_keeps_good_ones_and_exits_1(
    clinics: Database, tmp_path: Path
) -> None:
    csv_file = write(
        tmp_path / "export.csv",
        "First Name,Phone,Timezone\nAna,(312) 555-0100,\nBo,nope,\n\nCy,(312) 555-0101,Mars/Base\n",
    )

    result = run(clinics, "patients", "import", str(csv_file), "--clinic", "back-clinic")

    assert result.exit_code == 1
    assert "phone 'nope' is not a valid number for US" in result.stdout
    assert "unknown time zone 'Mars/Base'" in result.stdout
    assert "added 1, unchanged 0, rejected 2" in result.stdout
    assert patient_count(clinics) == 1


def test_import_json_reports_counts_and_errors_by_line(clinics: Database, tmp_path: Path) -> None:
    csv_file = write(tmp_path / "export.csv", "first_name,phone\nAna,(312) 555-0100\nBo,nope\n")

    first = run(clinics, "patients", "import", str(csv_file), "--clinic", "back-clinic", "--json")
    again = run(clinics, "patients", "import", str(csv_file), "--clinic", "back-clinic", "--json")

    report = json.loads(first.stdout)
    assert set(report) == {
        "file",
        "clinic",
        "dry_run",
        "rows",
        "added",
        "unchanged",
        "errors",
        "seconds",
    }
    assert (report["rows"], report["added"], report["unchanged"]) == (2, 1, 0)
    assert report["errors"] == [{"line": 3, "reason": "phone 'nope' is not a valid number for US"}]
    assert (json.loads(again.stdout)["added"], json.loads(again.stdout)["unchanged"]) == (0, 1)


def test_import_dry_run_stores_nothing(clinics: Database, tmp_path: Path) -> None:
    csv_file = write(tmp_path / "export.csv", "first_name,phone\nAna,(312) 555-0100\n")

    result = run(
        clinics, "patients", "import", str(csv_file), "--clinic", "back-clinic", "--dry-run"
    )

    assert result.exit_code == 0, result.output
    assert "would add 1" in result.stdout
    assert "dry run: nothing was stored" in result.stdout
    assert patient_count(clinics) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"phone\n+13125550100\n", "error: missing required column(s): first_name"),
        (
            "first_name,phone\nJosé,+13125550100\n".encode("cp1252"),
            "error: line 2 is not utf-8 text",
        ),
    ],
)
def test_import_of_a_bad_file_is_one_error_and_stores_nothing(
    clinics: Database, tmp_path: Path, content: bytes, message: str
) -> None:
    csv_file = tmp_path / "bad.csv"
    csv_file.write_bytes(content)

    result = run(clinics, "patients", "import", str(csv_file), "--clinic", "back-clinic")

    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert patient_count(clinics) == 0


def test_import_of_a_missing_file_is_an_error(clinics: Database, tmp_path: Path) -> None:
    result = run(clinics, "patients", "import", str(tmp_path / "nope.csv"), "--clinic", "x")

    assert result.exit_code == 1
    assert "nope.csv: no such file" in result.stderr


def test_list_json_has_the_documented_fields_and_filters(clinics: Database) -> None:
    enroll(clinics)
    run(
        clinics,
        "patients",
        "enroll",
        "--clinic",
        "westside",
        "--first-name",
        "Bo",
        "--email",
        "bo@example.com",
    )

    everyone = json.loads(run(clinics, "patients", "list", "--json").stdout)
    westside = json.loads(run(clinics, "patients", "list", "--clinic", "westside", "--json").stdout)
    paused = json.loads(run(clinics, "patients", "list", "--status", "paused", "--json").stdout)

    assert [p["first_name"] for p in everyone] == ["Ana", "Bo"]
    assert all(set(p) == PATIENT_FIELDS for p in everyone)
    assert [(p["first_name"], p["channel"]) for p in westside] == [("Bo", "email")]
    assert paused == []


def test_list_says_when_it_shows_only_some(clinics: Database) -> None:
    enroll(clinics)
    enroll(clinics, "--first-name", "Bo", "--phone", "312 555 0101")

    result = run(clinics, "patients", "list", "--limit", "1")

    assert result.exit_code == 0, result.output
    assert "showing 1 of 2; --limit 0 lists all" in result.stderr


def test_show_json_has_the_plan_in_local_time_and_the_latest_reminders(clinics: Database) -> None:
    patient_id = enroll(clinics, "--timezone", "America/New_York").stdout.strip()

    result = run(clinics, "patients", "show", patient_id, "--json")

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert set(shown) == PATIENT_FIELDS | {"plan", "recent_reminders"}
    kinds = [item["kind"] for item in shown["plan"]]
    assert kinds == ["position_change", "stretch", "pelvic_tilt", "leg_strength", "walk_or_cycle"]
    stretch = shown["plan"][1]
    assert stretch["schedule"] == "at 09:00, 13:00, 18:30 daily"
    assert stretch["next_due_at"].endswith("+00:00")
    assert stretch["next_due_local"][-6:] in {"-05:00", "-04:00"}  # New York
    assert [(r["kind"], r["status"]) for r in shown["recent_reminders"]] == [
        ("welcome", "scheduled")
    ]


def test_show_table_names_the_plan_and_the_zone(clinics: Database) -> None:
    patient_id = enroll(clinics).stdout.strip()

    result = run(clinics, "patients", "show", patient_id)

    assert result.exit_code == 0, result.output
    assert "Plan (next due in the patient's time)" in result.stdout
    assert "every 1h daily" in result.stdout
    assert " CST" in result.stdout or " CDT" in result.stdout


def test_a_patient_of_another_clinic_is_not_found(clinics: Database) -> None:
    patient_id = enroll(clinics).stdout.strip()

    for command in ("show", "pause", "resume", "remove"):
        result = run(clinics, "patients", command, patient_id, "--clinic", "westside")
        assert result.exit_code == 1, command
        assert result.stderr.strip() == f"error: no patient {patient_id} at westside"


def test_pause_resume_and_remove(clinics: Database) -> None:
    patient_id = enroll(clinics).stdout.strip()

    paused = run(clinics, "patients", "pause", patient_id, "--until", "2099-01-01")
    resumed = run(clinics, "patients", "resume", patient_id)
    removed = run(clinics, "patients", "remove", patient_id, "--clinic", "back-clinic")

    assert paused.stdout.strip() == f"patient {patient_id} paused until 2099-01-01"
    assert resumed.stdout.strip() == f"patient {patient_id} resumed"
    assert removed.stdout.strip() == f"patient {patient_id} removed"
    with clinics.sessions() as session:
        welcome = session.scalars(select(Reminder)).one()
    assert welcome.status is ReminderStatus.CANCELED  # canceled by the pause
    shown = json.loads(run(clinics, "patients", "show", patient_id, "--json").stdout)
    assert shown["status"] == "removed"
    assert all(item["next_due_at"] is None for item in shown["plan"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pause", "{id}", "--until", "01/02/2099"), "--until '01/02/2099' is not a date"),
        (("pause", "{id}", "--until", "2000-01-01"), "the date must be after today"),
        (("resume", "{id}"), "is not paused"),
        (("show", "999999"), "no patient 999999"),
        (("list", "--status", "sleeping"), "status 'sleeping' must be active, paused or removed"),
    ],
)
def test_bad_patient_commands_exit_1_with_the_reason(
    clinics: Database, args: tuple[str, ...], message: str
) -> None:
    patient_id = enroll(clinics).stdout.strip()

    result = run(clinics, "patients", *(arg.format(id=patient_id) for arg in args))

    assert result.exit_code == 1
    assert message in result.stderr
