"""``ptnudge report adherence``: who keeps up, as a table, CSV, JSON or one HTML file."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer

from service.cli import output
from service.cli.context import command_context, now
from service.enrollment import clinics
from service.reporting.adherence import DEFAULT_THRESHOLD, build_report, period_start
from service.reporting.reports import ReportFormat, render, render_table, summary_line

report_app = typer.Typer(help="Reports for clinic staff.", no_args_is_help=True)


@report_app.command("adherence")
def adherence(
    clinic: Annotated[
        str | None, typer.Option(help="Clinic slug; every clinic when left out.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="First day, YYYY-MM-DD, in the clinic's time zone (default: 4 weeks ago)."
        ),
    ] = None,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", help="table, csv, json or html.")
    ] = ReportFormat.TABLE,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output", help="Write to this file (mode 0600: it names patients) instead of stdout."
        ),
    ] = None,
    threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Adherence below this is flagged.")
    ] = DEFAULT_THRESHOLD,
) -> None:
    """Adherence per patient (done / delivered), lowest first, with weekly figures, streak,
    pain trend, last reply and flags. Shows first names and ids only, never phone numbers."""
    moment = now()
    with command_context() as ctx, output.input_errors(), ctx.sessions() as session:
        found = clinics.get_clinic(session=session, slug=clinic) if clinic else None
        zone = found.timezone if found else ctx.settings.default_timezone
        report = build_report(
            session=session,
            clinic=found,
            since=period_start(parse_day(since), zone=zone, now=moment),
            now=moment,
            threshold=threshold,
            reply_window=dt.timedelta(hours=ctx.settings.reply_window_hours),
            timezone=zone,
        )
    if output_file is not None:
        output.write_private(output_file, render(report, fmt))
        output.note(f"wrote {len(report.patients)} patients to {output_file}")
    elif fmt is ReportFormat.TABLE:
        output.stdout().print(render_table(report))
        output.say(summary_line(report))
    else:
        sys.stdout.write(render(report, fmt))


def parse_day(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since {value!r}: expected a date like 2026-11-02") from None
