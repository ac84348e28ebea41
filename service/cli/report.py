"""``ptnudge report adherence``: who keeps up, as a table, CSV, JSON or one HTML file."""

from __future__ import annotations

import datetime as dt
import enum
import io
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from service.cli import output
from service.cli.context import command_context, now
from service.enrollment import clinics
from service.reporting.adherence import (
    DEFAULT_THRESHOLD,
    AdherenceReport,
    build_report,
    period_start,
)
from service.reporting.reports import render_csv, render_html, render_json, report_table

report_app = typer.Typer(help="Reports for clinic staff.", no_args_is_help=True)


class ReportFormat(enum.StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    HTML = "html"


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
        output.say(report_table(report).summary)
    else:
        sys.stdout.write(render(report, fmt))


def parse_day(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since {value!r}: expected a date like 2026-11-02") from None


def render(report: AdherenceReport, fmt: ReportFormat) -> str:
    """The report as text in the chosen format (the table as plain text, for a file)."""
    match fmt:
        case ReportFormat.TABLE:
            return table_text(report)
        case ReportFormat.CSV:
            return render_csv(report)
        case ReportFormat.JSON:
            return render_json(report)
        case ReportFormat.HTML:
            return render_html(report)


def render_table(report: AdherenceReport) -> Table:
    """A rich Table; cells are Text objects, so a name like "[bold]" is shown, not obeyed."""
    data = report_table(report)
    table = Table(title=data.title, title_justify="left", header_style="bold")
    for name, justify in data.columns:
        table.add_column(name, justify=justify)
    for row in data.rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def table_text(report: AdherenceReport, *, width: int = 160) -> str:
    """The table as plain text (no colour codes), for ``--output`` files."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False)
    console.print(render_table(report))
    console.print(report_table(report).summary)
    return buffer.getvalue()
