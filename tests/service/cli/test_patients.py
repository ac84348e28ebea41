"""``ptnudge patients …`` end to end: the real commands against a committed database."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

import service.cli  # noqa: F401 - registers every command group on the root app
from service.cli.app import app
from service.enrollment import optouts
from service.enrollment.clinics import add_clinic
from service.models import AuditEvent, Channel, Patient, Reminder, ReminderStatus
from tests.conftest import Database, patient_insert_refused
from tests.factories import CORE_KINDS

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
    "end_date",
    "phase",
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
    assert set(patient) == PATIENT_FIELDS | {"opted_out", "reactivated"}
    assert patient["opted_out"] == []
    assert patient["reactivated"] is False
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


def test_enrolling_the_same_phone_and_name_again_is_explained_with_exit_code_1(
    clinics: Database,
) -> None:
    first = enroll(clinics)
    again = enroll(clinics)

    assert again.exit_code == 1
    assert again.stdout == ""
    assert again.stderr.strip() == (
        "error: Ana (+13125550100) is already enrolled at back-clinic as patient "
        f"{first.stdout.strip()}"
    )
    assert patient_count(clinics) == 1


def test_two_family_members_enroll_on_one_phone(clinics: Database) -> None:
    ana = enroll(clinics)
    luis = enroll(clinics, "--first-name", "Luis")

    assert (ana.exit_code, luis.exit_code) == (0, 0), luis.output
    assert ana.stdout != luis.stdout
    assert patient_count(clinics) == 2


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
    assert "added 1, re-activated 0, unchanged 0, rejected 2" in result.stdout
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
        "reactivated",
        "unchanged",
        "ignored_columns",
        "errors",
        "seconds",
    }
    assert report["ignored_columns"] == []
    assert (report["rows"], report["added"], report["unchanged"]) == (2, 1, 0)
    assert report["errors"] == [{"line": 3, "reason": "phone 'nope' is not a valid number for US"}]
    assert (json.loads(again.stdout)["added"], json.loads(again.stdout)["unchanged"]) == (0, 1)


def test_an_import_the_database_stops_is_one_error_line_naming_the_batch(
    clinics: Database, tmp_path: Path
) -> None:
    """1,500 rows in batches of 1,000; the database refuses a row of the second one."""
    lines = ["first_name,phone"] + [f"Pat {n},(773) 201-{n:04d}" for n in range(1500)]
    csv_file = write(tmp_path / "export.csv", "\n".join(lines) + "\n")

    with patient_insert_refused(clinics, "Pat 1200"):
        result = run(clinics, "patients", "import", str(csv_file), "--clinic", "back-clinic")

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        "error: the import stopped at the batch of lines 1002-1501: the database said: "
        "patient refused by a test trigger. Nothing from line 1002 on was stored; the rows "
        "before it were (1,000 added). Importing the file again adds the rest."
    ]
    assert patient_count(clinics) == 1000


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
    assert kinds == [*CORE_KINDS]
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

    for command in ("show", "edit", "pause", "resume", "remove", "discharge"):
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
        (
            ("list", "--status", "sleeping"),
            "status 'sleeping' must be one of active, paused, removed, completed",
        ),
    ],
)
def test_bad_patient_commands_exit_1_with_the_reason(
    clinics: Database, args: tuple[str, ...], message: str
) -> None:
    patient_id = enroll(clinics).stdout.strip()

    result = run(clinics, "patients", *(arg.format(id=patient_id) for arg in args))

    assert result.exit_code == 1
    assert message in result.stderr


# --- programs that end and progress, edits, coming back ----------------------------------

# A Monday far ahead: the six-week progression is gentle on days 1-14, core on days 15-42.
START = dt.date(2030, 1, 7)
CHICAGO = ZoneInfo("America/Chicago")
GENTLE_ONLY = {"heat", "ice"}
CORE_ONLY = {"pelvic_tilt", "leg_strength", "walk_or_cycle"}


def preview(db: Database, patient_id: str, day: dt.date, days: int) -> list[dict[str, object]]:
    args = ("preview", patient_id, "--from", day.isoformat(), "--days", str(days), "--json")
    result = run(db, *args)
    assert result.exit_code == 0, result.output
    entries: list[dict[str, object]] = json.loads(result.stdout)
    return entries


def kinds_by_day(entries: list[dict[str, object]]) -> dict[int, set[str]]:
    """Program day (1 = the start date) -> the reminder kinds due that day."""
    found: dict[int, set[str]] = {}
    for entry in entries:
        local = dt.datetime.fromisoformat(str(entry["local_time"])).astimezone(CHICAGO)
        kinds = entry["kinds"]
        assert isinstance(kinds, list)
        found.setdefault((local.date() - START).days + 1, set()).update(kinds)
    return found


def test_a_progression_switches_to_core_on_day_15_and_sends_nothing_after_day_42(
    clinics: Database,
) -> None:
    patient_id = enroll(
        clinics, "--program", "stenosis-6-weeks", "--start", START.isoformat()
    ).stdout.strip()

    switch = kinds_by_day(preview(clinics, patient_id, START + dt.timedelta(days=7), 10))
    ending = kinds_by_day(preview(clinics, patient_id, START + dt.timedelta(days=35), 10))

    assert sorted(switch) == list(range(8, 18))
    for day, kinds in switch.items():
        if day < 15:
            assert kinds >= GENTLE_ONLY, day
            assert not kinds & CORE_ONLY, day
        else:
            assert "pelvic_tilt" in kinds, day
            assert not kinds & GENTLE_ONLY, day
    assert sorted(ending) == list(range(36, 43))


def test_show_names_the_phase_the_day_it_changes_and_the_end(clinics: Database) -> None:
    patient_id = enroll(
        clinics, "--program", "stenosis-6-weeks", "--start", START.isoformat()
    ).stdout.strip()

    shown = json.loads(run(clinics, "patients", "show", patient_id, "--json").stdout)
    table = run(clinics, "patients", "show", patient_id)

    assert shown["end_date"] == "2030-02-17"
    assert shown["phase"] == {
        "number": 1,
        "of": 2,
        "program": "stenosis-gentle",
        "next_on": "2030-01-21",
    }
    assert "1 of 2 (stenosis-gentle), next phase on 2030-01-21" in table.stdout


def test_weeks_or_an_end_date_set_the_programs_length(clinics: Database) -> None:
    weeks = json.loads(enroll(clinics, "--start", "2030-01-07", "--weeks", "3", "--json").stdout)
    end = json.loads(enroll(clinics, "--first-name", "Bo", "--end", "2030-03-01", "--json").stdout)
    both = enroll(clinics, "--first-name", "Cy", "--weeks", "3", "--end", "2030-03-01")

    assert weeks["end_date"] == "2030-01-27"
    assert end["end_date"] == "2030-03-01"
    assert both.exit_code == 1
    assert both.stderr.strip() == "error: give the weeks or the end date, not both"


def test_edit_wake_keeps_the_preview_inside_the_new_window_and_is_audited(
    clinics: Database,
) -> None:
    patient_id = enroll(clinics).stdout.strip()

    edited = run(clinics, "patients", "edit", patient_id, "--wake", "10:00-18:00", "--json")

    assert edited.exit_code == 0, edited.output
    answer = json.loads(edited.stdout)
    assert answer["wake"] == "10:00-18:00"
    assert answer["changes"] == {"wake": {"before": "08:00-20:00", "after": "10:00-18:00"}}
    entries = preview(clinics, patient_id, dt.datetime.now(CHICAGO).date(), 7)
    assert entries
    for entry in entries:
        local = dt.datetime.fromisoformat(str(entry["local_time"])).time()
        assert dt.time(10) <= local <= dt.time(18), entry
    with clinics.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "edit")).one()
    assert event.patient_id == int(patient_id)
    assert event.detail == {"before": {"wake": "08:00-20:00"}, "after": {"wake": "10:00-18:00"}}


def test_a_bad_edit_gets_the_enrollment_error_and_changes_nothing(clinics: Database) -> None:
    patient_id = enroll(clinics).stdout.strip()

    result = run(clinics, "patients", "edit", patient_id, "--wake", "20:00-08:00")
    table = run(clinics, "patients", "edit", patient_id, "--locale", "es")

    assert result.exit_code == 1
    assert result.stderr.strip() == "error: wake window '20:00-08:00' ends before it starts"
    assert table.stdout.splitlines() == [f"patient {patient_id} changed:", "  locale: en -> es"]


def test_a_removed_patient_enrolled_again_is_reactivated_with_the_same_id(
    clinics: Database,
) -> None:
    patient_id = enroll(clinics).stdout.strip()
    run(clinics, "patients", "remove", patient_id)

    again = enroll(clinics, "--first-name", "ANA", "--json")

    assert again.exit_code == 0, again.output
    patient = json.loads(again.stdout)
    assert (patient["id"], patient["status"], patient["reactivated"]) == (
        int(patient_id),
        "active",
        True,
    )
    assert patient["first_name"] == "ANA"
    run(clinics, "patients", "remove", patient_id)
    table = enroll(clinics)
    assert table.stdout.strip() == patient_id
    assert "re-activated Ana at back-clinic" in table.stderr
    assert patient_count(clinics) == 1


def test_discharge_completes_the_program_with_a_closing_message(clinics: Database) -> None:
    patient_id = enroll(clinics).stdout.strip()

    first = run(clinics, "patients", "discharge", patient_id)
    again = run(clinics, "patients", "discharge", patient_id)
    listed = json.loads(run(clinics, "patients", "list", "--status", "completed", "--json").stdout)

    assert first.stdout.strip() == f"patient {patient_id} discharged: program completed"
    assert again.exit_code == 1
    assert "is completed; enroll them again instead" in again.stderr
    assert [p["id"] for p in listed] == [int(patient_id)]
    with clinics.sessions() as session:
        kinds = session.scalars(
            select(Reminder.kind).where(Reminder.status == ReminderStatus.SCHEDULED)
        ).all()
    assert kinds == ["program_complete"]


def test_import_names_the_columns_it_ignores_and_takes_a_map(
    clinics: Database, tmp_path: Path
) -> None:
    path = tmp_path / "ehr.csv"
    path.write_text("MRN,Patient First,Cell\n884213,Ana,(312) 555-0100\n", encoding="utf-8")

    result = run(
        clinics, "patients", "import", str(path), "--clinic", "back-clinic",
        "--map", "Patient First=first_name,Cell=phone", "--json",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "warning: ignored column(s) 'MRN'" in result.stderr
    doc = json.loads(result.stdout)
    assert (doc["added"], doc["ignored_columns"]) == (1, ["MRN"])


def test_import_with_a_map_onto_no_column_of_ours_is_one_error(
    clinics: Database, tmp_path: Path
) -> None:
    path = tmp_path / "ehr.csv"
    path.write_text("first_name,phone\nAna,(312) 555-0100\n", encoding="utf-8")

    result = run(clinics, "patients", "import", str(path), "--clinic", "back-clinic",
                 "--map", "Cell=fone")  # fmt: skip

    assert result.exit_code == 1
    assert "--map 'Cell=fone'" in result.stderr
