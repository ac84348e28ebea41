"""``ptnudge patients enroll|import|list|show|edit|pause|resume|remove|discharge``."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy.orm import Session

from service.cli import output
from service.cli.app import patients_app
from service.cli.context import CliContext, command_context, now
from service.db import transaction
from service.enrollment import clinics, editing, importing, optouts, patients
from service.enrollment.programs import Program, ProgramError, ProgramItem, parse_time
from service.models import Channel, Clinic, Patient, PatientStatus, PlanItem, Reminder

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ClinicOption = Annotated[str, typer.Option("--clinic", help="Clinic slug.")]
AnyClinic = Annotated[
    str | None, typer.Option("--clinic", help="Only this clinic's patients (slug).")
]
PatientId = Annotated[int, typer.Argument(metavar="PATIENT_ID")]
DEFAULT_LIST_LIMIT = 1000
Text = str | None
Tunings = Annotated[
    list[str] | None,
    typer.Option(help="Per-patient tuning, repeatable: stretch.at=10:00,16:00, heat.off …"),
]
WeeksOption = Annotated[Text, typer.Option(help="Program length in weeks from the start.")]
EndOption = Annotated[Text, typer.Option(help="Last day of the program (YYYY-MM-DD).")]
MaxPerDay = Annotated[Text, typer.Option(help="Daily message limit.")]
ConsentOption = Annotated[
    Text, typer.Option(help="How consent was given; default: recorded by clinic.")
]


# --- documents (the --json shapes) -------------------------------------------------------


def patient_document(patient: Patient, book: ProgramCache | None = None) -> dict[str, Any]:
    """The patient as ``--json`` shows them. ``book`` reads program files once per command,
    for the phase's program and the number of phases."""
    return {
        "id": patient.id,
        "clinic": patient.clinic.slug,
        "first_name": patient.first_name,
        "phone": patient.phone,
        "email": patient.email,
        "timezone": patient.timezone,
        "locale": patient.locale,
        "channel": patient.channel.value,
        "wake": f"{patient.wake_start:%H:%M}-{patient.wake_end:%H:%M}",
        "program": patient.program_id,
        "max_per_day": patient.max_per_day,
        "start_date": output.iso(patient.start_date),
        "end_date": output.iso(patient.end_date),
        "phase": phase_document(patient, book or ProgramCache()),
        "status": patient.status.value,
        "paused_until": output.iso(patient.paused_until),
        "consent": {
            "at": output.iso(patient.consent_at),
            "method": patient.consent_method,
            "recorded_by": patient.consent_recorded_by,
        },
        "created_at": output.iso(patient.created_at),
    }


class ProgramCache:
    """Program files by id, each read once per command (None: the file is gone or bad)."""

    def __init__(self, programs_dir: Path | None = None) -> None:
        self._book = patients.ProgramBook(programs_dir)

    def get(self, program_id: str) -> Program | None:
        try:
            return self._book.get(program_id, (), None)
        except ProgramError:
            return None


def phase_document(patient: Patient, book: ProgramCache) -> dict[str, Any] | None:
    """Where a progression's patient is: phase n of m, its program, the day the next phase
    starts (None on the last one)."""
    if patient.phase is None:
        return None
    program = book.get(patient.program_id)
    changes = patient.plan_changes_at
    next_on = changes.astimezone(ZoneInfo(patient.timezone)).date() if changes else None
    if next_on is not None and patient.end_date is not None and next_on > patient.end_date:
        next_on = None  # the next change is the end, not a phase
    return {
        "number": patient.phase + 1,
        "of": len(program.phases) if program else None,
        "program": program.phase_program(patient.phase).id if program else None,
        "next_on": output.iso(next_on),
    }


def plan_document(patient: Patient) -> list[dict[str, Any]]:
    zone = ZoneInfo(patient.timezone)
    return [
        {
            "kind": item.kind,
            "schedule": _describe(item),
            "next_due_at": output.iso(item.next_due_at),
            "next_due_local": output.iso(item.next_due_at.astimezone(zone))
            if item.next_due_at
            else None,
        }
        for item in patient.plan_items
    ]


def reminder_document(reminder: Reminder, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "id": reminder.id,
        "kind": reminder.kind,
        "channel": reminder.channel.value,
        "due_at": output.iso(reminder.due_at),
        "local_time": output.iso(reminder.due_at.astimezone(zone)),
        "status": reminder.status.value,
        "outcome": reminder.outcome.value if reminder.outcome else None,
    }


def _describe(item: PlanItem) -> str:
    return ProgramItem(
        kind=item.kind,
        every_minutes=item.every_minutes,
        at_times=tuple(parse_time(value) for value in item.at_times or ()),
        days=tuple(item.days) if item.days else None,
    ).describe()


def _clinic_or_none(session: Session, slug: str | None) -> Clinic | None:
    return clinics.get_clinic(session=session, slug=slug) if slug else None


# --- enroll ------------------------------------------------------------------------------

# The enroll flags (the CSV import takes the same names as columns).
FirstName = Annotated[str, typer.Option("--first-name", help="As the patient likes it.")]
Phone = Annotated[str | None, typer.Option(help="Any format; the clinic's country by default.")]
Email = Annotated[str | None, typer.Option(help="For the email channel.")]
Timezone = Annotated[str | None, typer.Option(help="IANA zone; default: the clinic's.")]
ProgramId = Annotated[str | None, typer.Option(help="Program id; default stenosis-core.")]
Channels = Annotated[str | None, typer.Option(help="sms, email or both.")]
Wake = Annotated[str | None, typer.Option(help="Waking window; default 08:00-20:00.")]
Locale = Annotated[str | None, typer.Option(help="en or es; default en.")]
Start = Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD); default today.")]


@patients_app.command("enroll")
def enroll(
    *,
    clinic: ClinicOption,
    first_name: FirstName,
    phone: Phone = None,
    email: Email = None,
    timezone: Timezone = None,
    program: ProgramId = None,
    channel: Channels = None,
    wake: Wake = None,
    locale: Locale = None,
    start: Start = None,
    weeks: WeeksOption = None,
    end: EndOption = None,
    tune: Tunings = None,
    max_per_day: MaxPerDay = None,
    consent_method: ConsentOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Enroll one patient; prints the new patient's id (--json: the patient). The phone (or
    email) and first name of a removed or completed patient re-activate that patient."""
    request = patients.EnrollmentRequest(
        first_name=first_name,
        phone=phone,
        email=email,
        timezone=timezone,
        program=program,
        channel=channel,
        wake=wake,
        locale=locale,
        start=start,
        tune=tuple(tune or ()),
        max_per_day=max_per_day,
        consent_method=consent_method,
        weeks=weeks,
        end=end,
    )
    _enroll(request, clinic, as_json=as_json)


def _enroll(request: patients.EnrollmentRequest, clinic: str, *, as_json: bool) -> None:
    with command_context() as ctx, output.input_errors(), transaction(ctx.sessions) as session:
        enrolled = patients.enroll_patient(
            session=session,
            clinic=clinics.get_clinic(session=session, slug=clinic),
            request=request,
            actor=ctx.actor,
            now=now(),
            programs_dir=ctx.settings.programs_dir,
        )
        book = ProgramCache(ctx.settings.programs_dir)
        doc = patient_document(enrolled.patient, book) | {"reactivated": enrolled.reactivated}
        opted_out = optouts.opted_out_channels(session=session, patient=enrolled.patient)
        doc["opted_out"] = [channel.value for channel in opted_out]
    _report_enrolled(doc, opted_out, as_json=as_json)


def _report_enrolled(doc: dict[str, Any], opted_out: list[Channel], *, as_json: bool) -> None:
    """The id alone on stdout (scripts capture it), the rest as a note; or the patient."""
    if as_json:
        output.print_json(doc)
        return
    output.say(str(doc["id"]))
    verb = "re-activated" if doc["reactivated"] else "enrolled"
    output.note(
        f"{verb} {doc['first_name']} at {doc['clinic']} on {doc['program']} ({doc['channel']})"
    )
    for blocked in opted_out:
        output.note(_opted_out_note(doc, blocked))


def _opted_out_note(doc: dict[str, Any], channel: Channel) -> str:
    """Enrolling does not lift a patient's STOP: staff must know nothing will reach them."""
    sms = channel is Channel.SMS
    address, lift = (doc["phone"], "texts START") if sms else (doc["email"], "opts back in")
    return (
        f"warning: {address} is on the opt-out ledger: nothing will be sent by "
        f"{channel.value} until the patient {lift}"
    )


# --- import ------------------------------------------------------------------------------


@patients_app.command("import")
def import_(  # noqa: PLR0917 - a Typer command: its options are parameters
    file: Annotated[
        Path, typer.Argument(metavar="FILE.csv", help="Header row + one patient a row.")
    ],
    clinic: ClinicOption,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row, store nothing.")
    ] = False,
    encoding: Annotated[
        str, typer.Option(help="utf-8 (with or without BOM) or cp1252 (old Excel exports).")
    ] = "utf-8",
    column_map: Annotated[
        str | None,
        typer.Option(
            "--map", help='Export names onto ours: "Patient First=first_name,Cell=phone".'
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Enroll every row of a CSV. Bad rows are listed with their line numbers and the good
    ones kept; importing the same file again changes nothing; columns we do not take are
    named in a warning and never stored. Exit 1 if any row was bad, or if the database
    failed a batch (one line names its rows: everything before them is stored, nothing from
    them on)."""
    if not file.is_file():
        output.fail(f"{file}: no such file")
    with command_context() as ctx, output.input_errors():
        mapping = importing.parse_column_map(column_map or "")
        with ctx.sessions() as session:
            target = clinics.get_clinic(session=session, slug=clinic)
        began = time.perf_counter()
        try:
            result = _import_with_progress(
                ctx, target, file, dry_run=dry_run, encoding=encoding, column_map=mapping
            )
        except importing.ImportStoppedError as stopped:
            output.fail(str(stopped))
        seconds = time.perf_counter() - began
    if result.ignored_columns:
        names = ", ".join(repr(name) for name in result.ignored_columns)
        output.note(f"warning: ignored column(s) {names}: not ours, not stored (see --map)")
    if as_json:
        output.print_json(_import_document(file, clinic, result, seconds))
    else:
        _print_import(result, seconds)
    if result.errors:
        raise typer.Exit(output.INPUT_ERROR_CODE)


def _import_with_progress(
    ctx: CliContext,
    clinic: Clinic,
    file: Path,
    *,
    dry_run: bool,
    encoding: str,
    column_map: dict[str, str],
) -> importing.ImportResult:
    """The import, with a progress bar (rows and rows/s) on stderr when it is a terminal: in
    a log or a pipe, a bar is only noise."""

    def run(progress: importing.Progress | None) -> importing.ImportResult:
        return importing.import_csv(
            sessions=ctx.sessions,
            clinic=clinic,
            path=file,
            actor=ctx.actor,
            now=now(),
            dry_run=dry_run,
            encoding=encoding,
            column_map=column_map,
            programs_dir=ctx.settings.programs_dir,
            progress=progress,
        )

    console = output.stderr()
    if not console.is_terminal:
        return run(None)
    columns = (
        TextColumn("checking" if dry_run else "importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} rows/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("rows", total=None, rate="-")
        began = time.perf_counter()

        def progress(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - began, 1e-6)
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}")

        return run(progress)


def _import_document(
    file: Path, clinic: str, result: importing.ImportResult, seconds: float
) -> dict[str, Any]:
    return {
        "file": str(file),
        "clinic": clinic,
        "dry_run": result.dry_run,
        "rows": result.rows,
        "added": result.added,
        "reactivated": result.reactivated,
        "unchanged": result.unchanged,
        "ignored_columns": result.ignored_columns,
        "errors": [{"line": line, "reason": reason} for line, reason in result.errors],
        "seconds": round(seconds, 3),
    }


def _print_import(result: importing.ImportResult, seconds: float) -> None:
    if result.errors:
        output.print_table(
            title=f"{len(result.errors)} row(s) not imported",
            columns=("line", "reason"),
            rows=result.errors,
        )
    verb = "would add" if result.dry_run else "added"
    rate = result.rows / max(seconds, 1e-6)
    again = "would re-activate" if result.dry_run else "re-activated"
    output.say(
        f"{verb} {result.added:,}, {again} {result.reactivated:,}, "
        f"unchanged {result.unchanged:,}, rejected "
        f"{len(result.errors):,} ({result.rows:,} rows in {seconds:.1f} s, {rate:,.0f} rows/s)"
    )
    if result.dry_run:
        output.say("dry run: nothing was stored")


# --- list and show -----------------------------------------------------------------------


@patients_app.command("list")
def list_(
    clinic: AnyClinic = None,
    status: Annotated[
        str | None, typer.Option(help="active, paused, removed or completed.")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=0, help="At most this many (0: all).")
    ] = DEFAULT_LIST_LIMIT,
    as_json: JsonFlag = False,
) -> None:
    """Patients, oldest first."""
    with command_context() as ctx, output.input_errors(), ctx.sessions() as session:
        wanted = _status(status)
        where = _clinic_or_none(session, clinic)
        found = patients.list_patients(
            session=session, clinic=where, status=wanted, limit=limit or None
        )
        total = patients.count_patients(session=session, clinic=where, status=wanted)
        book = ProgramCache(ctx.settings.programs_dir)
        docs = [patient_document(patient, book) for patient in found]
    if as_json:
        output.print_json(docs)
    else:
        output.print_table(
            title="Patients",
            columns=("id", "clinic", "first name", "phone", "email", "program", "status"),
            rows=[
                (
                    d["id"],
                    d["clinic"],
                    d["first_name"],
                    d["phone"],
                    d["email"],
                    d["program"],
                    d["status"],
                )
                for d in docs
            ],
        )
    if total > len(docs):
        output.note(f"showing {len(docs):,} of {total:,}; --limit 0 lists all")


def _status(raw: str | None) -> PatientStatus | None:
    if raw is None:
        return None
    try:
        return PatientStatus(raw.strip().lower())
    except ValueError:
        raise ValueError(
            f"status {raw!r} must be one of {', '.join(status.value for status in PatientStatus)}"
        ) from None


@patients_app.command("show")
def show(patient_id: PatientId, clinic: AnyClinic = None, as_json: JsonFlag = False) -> None:
    """One patient: details, plan items with next due times (in their local time), and the
    latest reminders."""
    with command_context() as ctx, output.input_errors(), ctx.sessions() as session:
        patient = patients.get_patient(
            session=session, patient_id=patient_id, clinic=_clinic_or_none(session, clinic)
        )
        zone = ZoneInfo(patient.timezone)
        doc = patient_document(patient, ProgramCache(ctx.settings.programs_dir))
        doc["plan"] = plan_document(patient)
        doc["recent_reminders"] = [
            reminder_document(reminder, zone)
            for reminder in patients.recent_reminders(session=session, patient=patient)
        ]
    if as_json:
        output.print_json(doc)
        return
    _print_patient(doc)


def _print_patient(doc: dict[str, Any]) -> None:
    zone = ZoneInfo(doc["timezone"])
    fields = (
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
        "status",
        "paused_until",
    )
    output.print_table(
        title=f"Patient {doc['id']}",
        columns=("field", "value"),
        rows=[(name, doc[name]) for name in fields]
        + [("phase", _phase_line(doc["phase"]))]
        + [("consent", f"{doc['consent']['at']} ({doc['consent']['method']})")],
    )
    output.print_table(
        title="Plan (next due in the patient's time)",
        columns=("kind", "schedule", "next due"),
        rows=[(i["kind"], i["schedule"], _local(i["next_due_local"], zone)) for i in doc["plan"]],
    )
    output.print_table(
        title="Latest reminders",
        columns=("id", "kind", "channel", "due (local)", "status", "outcome"),
        rows=[
            (
                r["id"],
                r["kind"],
                r["channel"],
                _local(r["local_time"], zone),
                r["status"],
                r["outcome"],
            )
            for r in doc["recent_reminders"]
        ],
    )


def _phase_line(phase: dict[str, Any] | None) -> str | None:
    """``2 of 3 (stenosis-core), next phase on 2027-01-26``."""
    if phase is None:
        return None
    of = f" of {phase['of']}" if phase["of"] else ""
    program = f" ({phase['program']})" if phase["program"] else ""
    then = f", next phase on {phase['next_on']}" if phase["next_on"] else ", the last phase"
    return f"{phase['number']}{of}{program}{then}"


def _local(value: str | None, zone: ZoneInfo) -> str:
    """``Thu 2026-11-26 07:00 EST``: the zone's own abbreviation, not a bare offset."""
    if value is None:
        return "-"
    moment = dt.datetime.fromisoformat(value).astimezone(zone)
    return f"{moment:%a %Y-%m-%d %H:%M %Z}"


# --- edit --------------------------------------------------------------------------------


@patients_app.command("edit")
def edit(
    patient_id: PatientId,
    *,
    first_name: Annotated[
        Text, typer.Option("--first-name", help="As the patient likes it.")
    ] = None,
    program: Annotated[Text, typer.Option(help="Program id.")] = None,
    wake: Annotated[Text, typer.Option(help="Waking window, HH:MM-HH:MM.")] = None,
    timezone: Annotated[Text, typer.Option(help="IANA zone.")] = None,
    locale: Annotated[Text, typer.Option(help="en or es.")] = None,
    channel: Annotated[Text, typer.Option(help="sms, email or both.")] = None,
    phone: Annotated[Text, typer.Option(help="A new number: consent is recorded again.")] = None,
    email: Annotated[Text, typer.Option(help="A new address: consent is recorded again.")] = None,
    tune: Tunings = None,
    max_per_day: MaxPerDay = None,
    end: EndOption = None,
    consent_method: ConsentOption = None,
    clinic: AnyClinic = None,
    as_json: JsonFlag = False,
) -> None:
    """Change what is given, checked as at enrollment; the future schedule follows (what was
    sent or queued stays). The audit trail records before and after."""
    request = editing.EditRequest(
        first_name=first_name,
        program=program,
        wake=wake,
        timezone=timezone,
        locale=locale,
        channel=channel,
        phone=phone,
        email=email,
        tune=tuple(tune or ()),
        max_per_day=max_per_day,
        end=end,
        consent_method=consent_method,
    )
    with command_context() as ctx, output.input_errors(), transaction(ctx.sessions) as session:
        edited = editing.edit(
            session=session,
            patient=_find(session, patient_id, clinic),
            request=request,
            actor=ctx.actor,
            now=now(),
            programs_dir=ctx.settings.programs_dir,
        )
        doc = patient_document(edited.patient, ProgramCache(ctx.settings.programs_dir))
    _print_edit(doc, edited, as_json=as_json)


def _print_edit(doc: dict[str, Any], edited: editing.Edited, *, as_json: bool) -> None:
    changes = {name: {"before": was, "after": new} for name, (was, new) in edited.changes.items()}
    if as_json:
        output.print_json(doc | {"changes": changes, "opted_out": list(edited.opted_out)})
    elif not changes:
        output.say(f"patient {doc['id']}: nothing changed")
    else:
        output.say(f"patient {doc['id']} changed:")
        for name, pair in changes.items():
            output.say(f"  {name}: {pair['before']} -> {pair['after']}")
    for address in edited.opted_out:
        output.note(f"note: {address} has opted out; nothing is sent to it until it opts in")


# --- pause, resume, remove, discharge ----------------------------------------------------


@patients_app.command("pause")
def pause(
    patient_id: PatientId,
    until: Annotated[
        str | None, typer.Option(help="Resume automatically on this local date (YYYY-MM-DD).")
    ] = None,
    clinic: AnyClinic = None,
) -> None:
    """Stop reminders until a date, or until `patients resume`."""
    with command_context() as ctx, output.input_errors(), transaction(ctx.sessions) as session:
        day = _date(until, "--until") if until else None
        patient = _find(session, patient_id, clinic)
        patients.pause(session=session, patient=patient, until=day, actor=ctx.actor, now=now())
    output.say(f"patient {patient_id} paused" + (f" until {day.isoformat()}" if day else ""))


@patients_app.command("resume")
def resume(patient_id: PatientId, clinic: AnyClinic = None) -> None:
    """Start a paused patient's reminders again from now."""
    with command_context() as ctx, output.input_errors(), transaction(ctx.sessions) as session:
        patient = _find(session, patient_id, clinic)
        patients.resume(session=session, patient=patient, actor=ctx.actor, now=now())
    output.say(f"patient {patient_id} resumed")


@patients_app.command("discharge")
def discharge(patient_id: PatientId, clinic: AnyClinic = None) -> None:
    """Complete a patient's program now: a closing message with their adherence, then
    nothing more; reports keep their history."""
    with command_context() as ctx, output.input_errors(), transaction(ctx.sessions) as session:
        patient = _find(session, patient_id, clinic)
        patients.discharge(session=session, patient=patient, actor=ctx.actor, now=now())
    output.say(f"patient {patient_id} discharged: program completed")


@patients_app.command("remove")
def remove(patient_id: PatientId, clinic: AnyClinic = None) -> None:
    """End a patient's program: nothing more is sent; history is kept."""
    with command_context() as ctx, output.input_errors(), transaction(ctx.sessions) as session:
        patient = _find(session, patient_id, clinic)
        patients.remove(session=session, patient=patient, actor=ctx.actor, now=now())
    output.say(f"patient {patient_id} removed")


def _find(session: Session, patient_id: int, clinic: str | None) -> Patient:
    return patients.get_patient(
        session=session, patient_id=patient_id, clinic=_clinic_or_none(session, clinic)
    )


def _date(raw: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"{option} {raw!r} is not a date like 2026-12-01") from None
