"""CSV import: bad rows reported by line and reason while good rows are kept, file-level
problems refused before anything is stored, and importing the same file twice adding nobody."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.enrollment.clinics import add_clinic
from service.enrollment.importing import (
    ImportFileError,
    ImportResult,
    ImportStoppedError,
    canonical_column,
    import_csv,
    parse_column_map,
)
from service.enrollment.patients import EnrollmentRequest, enroll, remove
from service.enrollment.plans import schedule_for
from service.enrollment.scheduling import next_due_by_item
from service.models import AuditEvent, Clinic, Patient, PatientStatus, PlanItem, Reminder
from tests.conftest import Database, patient_insert_refused

NOW = dt.datetime(2026, 11, 24, 21, 0, tzinfo=dt.UTC)
ACTOR = "cli:staff"
HEADER = ["first_name", "phone", "email", "timezone", "program", "wake", "start"]
# One of each kind of bad row the acceptance test mixes in, with the reason it must get.
BAD_ROWS = [
    (["Ana", "(312) 555-01", "", "", "", "", ""], "is not a valid number for US"),
    (["Bo", "+1 312 555 0100", "", "Mars/Olympus_Mons", "", "", ""], "unknown time zone"),
    (["Cy", "+1 312 555 0100", "", "", "", "21:00-07:00", ""], "ends before it starts"),
    (["Di", "+1 312 555 0100", "", "", "stenosis-extreme", "", ""], "unknown program"),
    (["", "+1 312 555 0100", "", "", "", "", ""], "first name is required"),
    (["Ed", "+1 312 555 0100", "", "", "", "", "2026-13-01"], "is not a date"),
]


def good_row(n: int) -> list[str]:
    """Distinct valid US numbers (773-2xx-xxxx), a mix of zones, programs and windows."""
    return [
        f"Patient {n}",
        f"(773) {200 + n // 10_000}-{n % 10_000:04d}",
        f"p{n}@example.com" if n % 7 == 0 else "",
        ("America/Chicago", "America/New_York", "America/Los_Angeles")[n % 3],
        ("stenosis-core", "stenosis-gentle", "")[n % 3],
        ("08:00-20:00", "", "07:30-21:30")[n % 3],
        ("", "2026-12-01", "2026-11-30")[n % 3],
    ]


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(header)
    out.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


@pytest.fixture
def clinic(committed_db: Database) -> Clinic:
    with committed_db.sessions() as session, session.begin():
        return add_clinic(
            session=session,
            slug="back-clinic",
            name="Lakeside Back Clinic",
            phone="+13125550199",
            timezone="America/Chicago",
            actor=ACTOR,
        )


def run(
    db: Database, clinic: Clinic, path: Path, *, dry_run: bool = False, **options: object
) -> ImportResult:
    return import_csv(
        sessions=db.sessions,
        clinic=clinic,
        path=path,
        actor=ACTOR,
        now=NOW,
        dry_run=dry_run,
        **options,  # type: ignore[arg-type]
    )


def count(db: Database, model: type[object]) -> int:
    with db.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_ten_thousand_rows_with_three_hundred_bad_ones(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    """The acceptance test: 9,700 kept, the 300 listed by line, and a second import adds none."""
    rows: list[list[str]] = []
    expected_errors: dict[int, str] = {}
    for n in range(10_000):
        if n % 33 == 5 and len(expected_errors) < 300:
            bad, reason = BAD_ROWS[len(expected_errors) % len(BAD_ROWS)]
            expected_errors[n + 2] = reason  # line 1 is the header
            rows.append(bad)
        else:
            rows.append(good_row(n))
    path = write_csv(tmp_path / "patients.csv", rows)

    first = run(committed_db, clinic, path, batch_size=1000)

    assert (first.added, first.unchanged, len(first.errors)) == (9_700, 0, 300)
    assert [line for line, _ in first.errors] == sorted(expected_errors)
    for line, reason in first.errors:
        assert expected_errors[line] in reason, (line, reason)
    assert count(committed_db, Patient) == 9_700
    assert count(committed_db, Reminder) == 9_700  # one welcome each (sms or email)
    assert count(committed_db, PlanItem) > 9_700 * 4

    again = run(committed_db, clinic, path)

    assert (again.added, again.unchanged, again.errors) == (0, 9_700, first.errors)
    assert count(committed_db, Patient) == 9_700
    assert count(committed_db, Reminder) == 9_700


def test_an_imported_patient_is_stored_exactly_as_an_enrolled_one(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    fields = {
        "first_name": "Ana",
        "phone": "(312) 555-0100",
        "email": "ana@example.com",
        "timezone": "America/New_York",
        "program": "stenosis-gentle",
        "channel": "both",
        "wake": "07:00-21:00",
        "locale": "es",
        "start": "2026-11-30",
        "tune": "stretch.at=10:00,16:00; heat.off",
        "max_per_day": "6",
        # COPY's field and row separators, and its escape character, inside a value.
        "consent_method": "verbal\tby phone \\ daughter present",
    }
    path = write_csv(tmp_path / "one.csv", [list(fields.values())], header=list(fields))
    with committed_db.sessions() as session, session.begin():
        other = add_clinic(
            session=session,
            slug="westside",
            name="Westside PT",
            phone="+13125550198",
            timezone="America/Chicago",
            actor=ACTOR,
        )
        tunings = tuple(fields["tune"].split("; "))
        request = EnrollmentRequest(**{**fields, "tune": tunings})  # type: ignore[arg-type]
        enroll(session=session, clinic=other, request=request, actor=ACTOR, now=NOW)

    assert run(committed_db, clinic, path).added == 1

    with committed_db.sessions() as session:
        imported, enrolled = (
            session.scalars(select(Patient).where(Patient.clinic_id == c.id)).one()
            for c in (clinic, other)
        )
        assert describe(session, imported) == describe(session, enrolled)
        schedule = schedule_for(imported)
        assert schedule is not None
        expected = next_due_by_item(schedule, after=NOW)
        assert {item.id: item.next_due_at for item in imported.plan_items} == expected
        consent = session.scalars(
            select(AuditEvent).where(
                AuditEvent.patient_id == imported.id, AuditEvent.action == "consent"
            )
        ).one()
        assert consent.detail is not None
        assert consent.detail["source"] == "import"
        assert consent.detail["method"] == "verbal\tby phone \\ daughter present"


def describe(session: Session, patient: Patient) -> dict[str, object]:
    """Everything about an enrollment but ids, clinic and timestamps."""
    skip = {"id", "clinic_id", "created_at", "updated_at"}
    row = {c.key: getattr(patient, c.key) for c in Patient.__table__.columns if c.key not in skip}
    row["plan"] = [
        (i.position, i.kind, i.every_minutes, i.at_times, i.days, i.next_due_at)
        for i in patient.plan_items
    ]
    welcomes = session.scalars(select(Reminder).where(Reminder.patient_id == patient.id))
    row["welcome"] = sorted(
        (r.kind, r.channel.value, r.status.value, r.due_at, r.actionable) for r in welcomes
    )
    return row


def test_a_bom_header_variants_and_blank_lines_are_fine_and_lines_still_count(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    text = (
        "First Name,PHONE,time-zone\r\n"
        "\r\n"
        "Ana,(312) 555-0100,America/Chicago\r\n"
        ",,\r\n"
        '"Bo\nBo",(312) 555-0101,\r\n'  # a quoted cell spanning two lines
        "Cy,nope,\r\n"
    )
    path = tmp_path / "excel.csv"
    path.write_bytes(codecs.BOM_UTF8 + text.encode())

    result = run(committed_db, clinic, path)

    assert (result.added, result.errors) == (2, [(7, "phone 'nope' is not a valid number for US")])


def test_a_row_with_the_wrong_number_of_cells_is_reported(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text(
        "first_name,phone\nAna,(312) 555-0100,\nBo,(312) 555-0101,extra\nCy\n", encoding="utf-8"
    )

    result = run(committed_db, clinic, path)

    assert result.added == 1  # a trailing empty cell (spreadsheets add them) is fine
    assert result.errors == [(3, "expected 2 fields, found 3"), (4, "expected 2 fields, found 1")]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("phone,email", "missing required column(s): first_name"),
        ("first_name,timezone", "missing required column(s): phone or email"),
        ("first_name,phone,First Name", "first_name appear more than once"),
    ],
)
def test_a_header_without_the_needed_columns_stores_nothing(
    committed_db: Database, clinic: Clinic, tmp_path: Path, header: str, message: str
) -> None:
    path = tmp_path / "columns.csv"
    path.write_text(f"{header}\nAna,(312) 555-0100,x\n", encoding="utf-8")

    with pytest.raises(ImportFileError) as caught:
        run(committed_db, clinic, path)

    assert message in str(caught.value)
    assert count(committed_db, Patient) == 0


def test_a_file_in_another_encoding_names_the_line_and_stores_nothing(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    path = tmp_path / "windows.csv"
    path.write_bytes("first_name,phone\nAna,(312) 555-0100\nJosé,(312) 555-0101\n".encode("cp1252"))

    with pytest.raises(ImportFileError, match=r"line 3 is not utf-8 text \(byte 0xE9"):
        run(committed_db, clinic, path)
    assert count(committed_db, Patient) == 0

    result = run(committed_db, clinic, path, encoding="cp1252")

    assert result.added == 2
    with committed_db.sessions() as session:
        names = session.scalars(select(Patient.first_name).order_by(Patient.id)).all()
    assert names == ["Ana", "José"]


def test_utf16_and_empty_files_are_refused(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("first_name,phone\nAna,(312) 555-0100\n".encode("utf-16"))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"\n\n")

    with pytest.raises(ImportFileError, match="UTF-16"):
        run(committed_db, clinic, utf16)
    with pytest.raises(ImportFileError, match="the file is empty"):
        run(committed_db, clinic, empty)


def test_a_dry_run_reports_the_same_and_stores_nothing(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    rows = [good_row(n) for n in range(30)] + [BAD_ROWS[0][0]]
    path = write_csv(tmp_path / "dry.csv", rows)

    dry = run(committed_db, clinic, path, dry_run=True)

    assert (dry.added, dry.unchanged, len(dry.errors), dry.dry_run) == (30, 0, 1, True)
    for model in (Patient, PlanItem, Reminder):
        assert count(committed_db, model) == 0
    assert count(committed_db, AuditEvent) == 1  # the clinic_add row from the fixture

    real = run(committed_db, clinic, path)
    assert (real.added, real.errors) == (dry.added, dry.errors)


def test_a_repeated_phone_or_email_counts_once(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    path = tmp_path / "repeats.csv"
    path.write_text(
        "first_name,phone,email\n"
        "Ana,(312) 555-0100,\n"
        "Ana,+1 312-555-0100,\n"
        "Bo,,bo@example.com\n"
        "Bo,,BO@example.com\n",
        encoding="utf-8",
    )

    first = run(committed_db, clinic, path)
    again = run(committed_db, clinic, path)

    assert (first.added, first.unchanged) == (2, 2)
    assert (again.added, again.unchanged) == (0, 4)
    assert count(committed_db, Patient) == 2


def test_a_phone_already_enrolled_is_unchanged_not_an_error(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    with committed_db.sessions() as session, session.begin():
        request = EnrollmentRequest(first_name="Ana", phone="312 555 0100")
        enroll(session=session, clinic=clinic, request=request, actor=ACTOR, now=NOW)
    path = write_csv(tmp_path / "one.csv", [["Ana", "(312) 555-0100", "", "", "", "", ""]])

    result = run(committed_db, clinic, path)

    assert (result.added, result.unchanged, result.errors) == (0, 1, [])


def test_family_members_sharing_a_phone_are_each_added(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    with committed_db.sessions() as session, session.begin():
        request = EnrollmentRequest(first_name="Ana", phone="312 555 0100")
        enroll(session=session, clinic=clinic, request=request, actor=ACTOR, now=NOW)
    path = tmp_path / "family.csv"
    path.write_text(
        "first_name,phone\nANA,(312) 555-0100\nLuis,(312) 555-0100\nluis,312 555 0100\n",
        encoding="utf-8",
    )

    first = run(committed_db, clinic, path)
    again = run(committed_db, clinic, path)

    assert (first.added, first.unchanged, first.errors) == (1, 2, [])
    assert (again.added, again.unchanged) == (0, 3)
    with committed_db.sessions() as session:
        names = session.scalars(select(Patient.first_name).order_by(Patient.id)).all()
    assert names == ["Ana", "Luis"]


def test_a_row_naming_a_removed_patient_reactivates_them(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    with committed_db.sessions() as session, session.begin():
        request = EnrollmentRequest(first_name="Ana", phone="312 555 0100")
        ana = enroll(session=session, clinic=clinic, request=request, actor=ACTOR, now=NOW)
        remove(session=session, patient=ana, actor=ACTOR, now=NOW)
    path = write_csv(tmp_path / "back.csv", [["ana", "(312) 555-0100", "", "", "", "", ""]])

    dry = run(committed_db, clinic, path, dry_run=True)
    first = run(committed_db, clinic, path)
    again = run(committed_db, clinic, path)

    assert (dry.added, dry.reactivated, dry.unchanged) == (0, 1, 0)
    assert (first.added, first.reactivated, first.unchanged) == (0, 1, 0)
    assert (again.added, again.reactivated, again.unchanged) == (0, 0, 1)
    with committed_db.sessions() as session:
        patient = session.scalars(select(Patient)).one()
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.patient_id == patient.id)
        ).all()
        welcomes = session.scalar(
            select(func.count()).where(
                Reminder.patient_id == patient.id, Reminder.kind == "welcome"
            )
        )
    assert (patient.id, patient.status) == (ana.id, PatientStatus.ACTIVE)
    assert actions.count("reactivate") == 1
    assert actions.count("consent") == 2
    assert welcomes == 2


def test_a_phone_enrolled_while_the_import_runs_is_skipped_not_duplicated(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    """The import reads the clinic's phones first; one enrolled after that is caught by the
    database's unique key (insert … on conflict do nothing) and counted as unchanged."""
    path = write_csv(tmp_path / "race.csv", [good_row(n) for n in range(5)])

    def enroll_meanwhile(done: int, total: int) -> None:
        if done == 0:
            with committed_db.sessions() as session, session.begin():
                request = EnrollmentRequest(first_name="patient 3", phone=good_row(3)[1])
                enroll(session=session, clinic=clinic, request=request, actor=ACTOR, now=NOW)

    result = run(committed_db, clinic, path, progress=enroll_meanwhile)

    assert (result.added, result.unchanged) == (4, 1)
    assert count(committed_db, Patient) == 5
    assert count(committed_db, Reminder) == 5


def test_progress_is_reported_in_rows_of_the_file(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "progress.csv", [good_row(n) for n in range(25)])
    seen: list[tuple[int, int]] = []

    run(committed_db, clinic, path, batch_size=10, progress=lambda d, t: seen.append((d, t)))

    assert seen == [(0, 25), (10, 25), (20, 25), (25, 25)]


def test_the_import_itself_is_in_the_audit_trail(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "audited.csv", [good_row(1), BAD_ROWS[0][0]])

    run(committed_db, clinic, path)

    with committed_db.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "import")).one()
    assert (event.actor, event.clinic_id) == (ACTOR, clinic.id)
    assert event.detail == {"file": "audited.csv", "added": 1, "unchanged": 0, "errors": 1}


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("First Name", "first_name"),
        ("first-name", "first_name"),
        (" FIRST_NAME ", "first_name"),
        ("Phone Number", "phone"),
        ("Time Zone", "timezone"),
        ("start_date", "start"),
        ("max-per-day", "max_per_day"),
    ],
)
def test_column_names_are_read_loosely(name: str, column: str) -> None:
    assert canonical_column(name) == column


# --- exports from an EHR: columns that are not ours, and names of their own ---------------


def test_columns_that_are_not_ours_are_named_and_never_stored(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    path = tmp_path / "ehr.csv"
    path.write_text(
        "MRN,first_name,DOB,phone,Provider\nMRN-884213,Ana,1951-03-07,(312) 555-0100,Dr Okafor\n",
        encoding="utf-8",
    )

    result = run(committed_db, clinic, path)

    assert (result.added, result.errors) == (1, [])
    assert result.ignored_columns == ["MRN", "DOB", "Provider"]
    with committed_db.engine.connect() as connection:
        for table in ("patients", "plan_items", "reminders", "audit_events"):
            dump = str(connection.execute(sa.text(f"SELECT * FROM {table}")).all())
            for secret in ("884213", "1951-03-07", "1951, 3, 7", "Okafor"):
                assert secret not in dump, table


def test_a_column_map_reads_the_exports_own_names_as_ours(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    path = tmp_path / "mapped.csv"
    path.write_text("Patient First,Cell Phone\nAna,(312) 555-0100\n", encoding="utf-8")

    mapping = parse_column_map("patient first=first_name, Cell Phone=phone")
    result = run(committed_db, clinic, path, column_map=mapping)

    assert (result.added, result.ignored_columns) == (1, [])
    with committed_db.sessions() as session:
        patient = session.scalars(select(Patient)).one()
    assert (patient.first_name, patient.phone) == ("Ana", "+13125550100")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Cell=fone", "--map 'Cell=fone': expected EXPORT_NAME=column"),
        ("first_name", "--map 'first_name': expected EXPORT_NAME=column"),
    ],
)
def test_a_column_map_onto_no_column_of_ours_is_refused(text: str, message: str) -> None:
    with pytest.raises(ImportFileError) as caught:
        parse_column_map(text)

    assert message in str(caught.value)


def test_a_map_that_names_a_column_twice_is_refused(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    path = tmp_path / "twice.csv"
    path.write_text("Name,first_name,phone\nAna,Ana,(312) 555-0100\n", encoding="utf-8")

    with pytest.raises(ImportFileError, match="first_name appear more than once"):
        run(committed_db, clinic, path, column_map=parse_column_map("Name=first_name"))
    assert count(committed_db, Patient) == 0


def test_a_nul_byte_is_that_rows_error_and_the_dry_run_agrees(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    rows = [good_row(n) for n in range(5)]
    rows[2][0] = "Pat\x00rick"
    path = write_csv(tmp_path / "nul.csv", rows)

    dry = run(committed_db, clinic, path, dry_run=True)
    real = run(committed_db, clinic, path)

    assert dry.added == real.added == 4
    assert dry.errors == real.errors == [(4, "first_name contains a control character")]
    with committed_db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 4


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_fifteen_hundred_rows_with_a_nul_byte_on_postgresql(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    """The acceptance test: the NUL byte that crashed the import on PostgreSQL after its
    first 1,000 patients is that row's error; every other row is kept, and the dry run said
    the same beforehand."""
    rows = [good_row(n) for n in range(1500)]
    rows[1234][0] = "Pat\x00rick"  # in the second batch of 1,000: line 1236
    path = write_csv(tmp_path / "nul.csv", rows)

    dry = run(committed_db, clinic, path, dry_run=True)
    real = run(committed_db, clinic, path)

    assert dry.added == real.added == 1499
    assert dry.errors == real.errors == [(1236, "first_name contains a control character")]
    assert count(committed_db, Patient) == 1499
    assert count(committed_db, Reminder) == 1499


def test_a_database_error_stops_the_import_at_its_batch_and_keeps_every_batch_before(
    committed_db: Database, clinic: Clinic, tmp_path: Path
) -> None:
    """Batches of 500: the database refuses a row of the second (lines 502-1001). The first
    batch is stored whole, the second not at all, and the third (already being written on
    PostgreSQL, beside the second) rolls back with it: the file is stored up to a line."""
    path = write_csv(tmp_path / "patients.csv", [good_row(n) for n in range(1500)])

    with (
        patient_insert_refused(committed_db, "Patient 700"),
        pytest.raises(ImportStoppedError) as stopped,
    ):
        run(committed_db, clinic, path, batch_size=500)

    assert (stopped.value.first_line, stopped.value.last_line) == (502, 1001)
    assert "patient refused by a test trigger" in stopped.value.cause
    assert stopped.value.result.added == 500
    assert str(stopped.value).startswith("the import stopped at the batch of lines 502-1001")
    with committed_db.sessions() as session:
        names = set(session.scalars(select(Patient.first_name)))
        patients_with_plans = session.scalar(select(func.count(func.distinct(PlanItem.patient_id))))
    assert names == {f"Patient {n}" for n in range(500)}
    assert patients_with_plans == 500
    assert count(committed_db, Reminder) == 500  # the welcomes of the first batch only

    again = run(committed_db, clinic, path, batch_size=500)

    assert (again.added, again.unchanged, again.errors) == (1000, 500, [])
    assert count(committed_db, Patient) == 1500
