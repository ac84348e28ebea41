"""``ptnudge replies list|ack``: the staff inbox of replies that need a person."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from service.cli import output
from service.cli.context import command_context, now
from service.cli.report import parse_day
from service.db import transaction
from service.enrollment import clinics
from service.replies.inbox import InboxEntry, acknowledge, list_replies

replies_app = typer.Typer(help="Replies that need the clinic: read and close them.")
TEXT_WIDTH = 60  # the table cuts long texts; --json carries them whole


def entry_document(entry: InboxEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "patient_id": entry.patient_id,
        "first_name": entry.first_name,
        "clinic": entry.clinic,
        "received_at": entry.received_at.isoformat(),
        "text": entry.text,
        "reading": entry.reading,
        "open": entry.open,
        "acknowledged_at": output.iso(entry.acknowledged_at),
        "acknowledged_by": entry.acknowledged_by,
        "note": entry.note,
    }


@replies_app.command("list")
def list_(
    clinic: Annotated[
        str | None, typer.Option(help="Clinic slug; every clinic if left out.")
    ] = None,
    open_only: Annotated[
        bool, typer.Option("--open", help="Only replies nobody has closed.")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="First day, YYYY-MM-DD, in the clinic's time zone.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Replies that need a person (free text, warning signs, symptoms, answers out of range),
    newest first, with the time they arrived in the clinic's zone."""
    with command_context() as ctx, output.input_errors(), ctx.sessions() as session:
        found = clinics.get_clinic(session=session, slug=clinic) if clinic else None
        zone = found.timezone if found else ctx.settings.default_timezone
        entries = list_replies(
            session=session, clinic=found, open_only=open_only, since=_start_of(since, zone)
        )
    if as_json:
        output.print_json([entry_document(entry) for entry in entries])
        return
    output.print_table(
        title="Replies",
        columns=("id", "received", "clinic", "patient", "reading", "open", "text"),
        rows=[_row(entry) for entry in entries],
    )


def _row(entry: InboxEntry) -> tuple[object, ...]:
    who = f"{entry.first_name} ({entry.patient_id})" if entry.patient_id else "unknown sender"
    text = entry.text if len(entry.text) <= TEXT_WIDTH else entry.text[: TEXT_WIDTH - 1] + "…"
    received = entry.received_at.strftime("%Y-%m-%d %H:%M")
    return (entry.id, received, entry.clinic, who, entry.reading, "yes" if entry.open else "", text)


def _start_of(day: str | None, zone: str) -> dt.datetime | None:
    parsed = parse_day(day)
    if parsed is None:
        return None
    return dt.datetime.combine(parsed, dt.time(0), tzinfo=ZoneInfo(zone))


@replies_app.command("ack")
def ack(
    reply_id: Annotated[int, typer.Argument(metavar="ID", help="The reply's id (replies list).")],
    note: Annotated[str | None, typer.Option(help="What was done, for the audit trail.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reply as JSON.")] = False,
) -> None:
    """Close a reply: someone at the clinic has read it and acted. Who and when are recorded."""
    with command_context() as ctx, output.input_errors(), transaction(ctx.sessions) as session:
        inbound = acknowledge(
            session=session, reply_id=reply_id, actor=ctx.actor, now=now(), note=note
        )
        closed_by, closed_at = inbound.acknowledged_by, inbound.acknowledged_at
    if as_json:
        output.print_json(
            {
                "id": reply_id,
                "open": False,
                "acknowledged_by": closed_by,
                "acknowledged_at": output.iso(closed_at),
            }
        )
    else:
        output.say(f"closed reply {reply_id} ({closed_by}, {output.iso(closed_at)})")
