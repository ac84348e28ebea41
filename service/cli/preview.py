"""``ptnudge preview PATIENT_ID``: the reminders that would go out, rendered."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from service.cli import output
from service.cli.app import app
from service.cli.context import command_context, now
from service.delivery.preview import PreviewEntry, silence_reasons
from service.delivery.preview import preview as preview_reminders
from service.enrollment import clinics, patients
from tasks.urls import public_urls


def entry_document(entry: PreviewEntry) -> dict[str, object]:
    # due_at in UTC whatever the entry holds: the documented contract is "UTC, ISO 8601".
    return {**entry.to_dict(), "due_at": entry.due_at.astimezone(dt.UTC).isoformat()}


@app.command("preview")
def preview(
    patient_id: Annotated[int, typer.Argument(metavar="PATIENT_ID")],
    days: Annotated[int, typer.Option(min=1, max=60, help="How many days to show.")] = 7,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from", help="First local day (YYYY-MM-DD) in the patient's zone; default now."
        ),
    ] = None,
    clinic: Annotated[
        str | None, typer.Option(help="Only if the patient is this clinic's.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The reminders the patient would get, with local time and the rendered text."""
    with command_context() as ctx, output.input_errors(), ctx.sessions() as session:
        where = clinics.get_clinic(session=session, slug=clinic) if clinic else None
        patient = patients.get_patient(session=session, patient_id=patient_id, clinic=where)
        start = local_midnight(from_, patient.timezone) if from_ else now()
        entries = preview_reminders(
            session=session,
            settings=ctx.settings,
            urls=public_urls(ctx.settings),
            patient=patient,
            start=start,
            days=days,
        )
        docs = [entry_document(entry) for entry in entries]
        reasons = silence_reasons(session=session, patient=patient)
    # On stderr, so the --json list stays as documented.
    if not entries:
        output.note("nothing would go out" + (": " if reasons else "") + "; ".join(reasons))
    else:
        for reason in reasons:
            output.note(f"note: {reason}")
    if as_json:
        output.print_json(docs)
        return
    output.print_table(
        title=f"Patient {patient_id}: the next {days} day(s)",
        columns=("local time", "kind", "channel", "text"),
        rows=[
            (_short(entry.local_time), entry.kind, entry.channel, entry.text) for entry in entries
        ],
    )


def local_midnight(raw: str, timezone: str) -> dt.datetime:
    """The first instant of a local date. A zone whose clocks jump at midnight (a DST gap at
    00:00) has no 00:00 that day; the round trip through UTC lands on the gap's end."""
    try:
        day = dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"--from {raw!r} is not a date like 2026-12-01") from None
    zone = ZoneInfo(timezone)
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC).astimezone(zone)


def _short(moment: dt.datetime) -> str:
    return f"{moment:%a %m-%d %H:%M %Z}"
