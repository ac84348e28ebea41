"""The adherence report as data for a terminal table, and as CSV, JSON and one HTML file.

Every format shows the same patients in the same order (worst first, as
``service.reporting.adherence`` sorts them) and names a patient by first name and id only:
no phone number or email address leaves the database in a report, because reports get
printed, emailed and left on desks.

The HTML report is a single self-contained file: inline CSS, inline SVG charts, no script, no
fonts or images fetched from anywhere, so it opens the same offline, in a mail attachment or
printed. The page is ``templates/reports/adherence.html``; patient-provided text (first
names, reply commands) is escaped by Jinja2's autoescape in the page and by
``markupsafe.escape`` inside the SVG built here. ``service.cli.report`` draws the table.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup, escape

from service.delivery.rendering import EXERCISE_NAMES
from service.replies.inbox import preview
from service.reporting.adherence import (
    AdherenceReport,
    Flag,
    KindStats,
    OpenReply,
    PainTrend,
    PatientAdherence,
    SelfReport,
)
from templates import TEMPLATES_DIR

REPORT_TEMPLATE = "reports/adherence.html"

# Chart colours, used for nothing else on the page: the browser test finds the charts in a
# screenshot by them (text uses darker shades, which also read better).
GOOD_COLOUR = "#1a7f72"  # a week at or above the threshold
LOW_COLOUR = "#c8553d"  # a week below it
KIND_COLOUR = "#3566a8"  # clinic-wide bars per kind
PAIN_COLOUR = "#7b4fa0"  # pain score line
TRACK_COLOUR = "#e6eaef"  # empty part of a bar, weeks with nothing delivered
BLANK = "\N{EN DASH}"  # no value

FLAG_LABELS = {
    Flag.WARNING_SIGN: "Warning sign",
    Flag.WAITING: "Reply waiting",
    Flag.BELOW_THRESHOLD: "Low adherence",
    Flag.SILENT: "Silent",
}
# Spreadsheet programs run cells starting with these as formulas (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# --- shared formatting ----------------------------------------------------------------------


def percent(value: float | None) -> str:
    return BLANK if value is None else f"{round(value * 100)}%"


def exercise_name(kind: str) -> str:
    return EXERCISE_NAMES["en"].get(kind, kind.replace("_", " "))


def _local(moment: dt.datetime, zone: str) -> dt.datetime:
    return moment.astimezone(ZoneInfo(zone))


def _short_time(moment: dt.datetime | None, zone: str) -> str:
    return BLANK if moment is None else _local(moment, zone).strftime("%a %d %b %H:%M")


def _flag_text(patient: PatientAdherence, flag: Flag) -> str:
    if flag is Flag.SILENT and patient.silent_days is not None:
        return f"Silent {patient.silent_days} d"
    return FLAG_LABELS[flag]


def _pain_text(pain: PainTrend) -> str:
    """ "7 → 3/10 improving (mean 4.8)": first to latest score of the period, and the trend."""
    first, latest = pain.first, pain.latest
    if first is None or latest is None:
        return BLANK
    scores = f"{first.score} → {latest.score}/10" if len(pain.points) > 1 else f"{latest.score}/10"
    trend = f" {pain.direction}" if pain.direction else ""
    mean = f" (mean {pain.mean:.1f})" if len(pain.points) > 1 and pain.mean is not None else ""
    return scores + trend + mean


def self_reported_text(report: SelfReport) -> str:
    """ "5/7 (mean 4.5)": the latest weekly check-in answer, and the mean of the period's."""
    latest = report.latest
    if latest is None:
        return BLANK
    if len(report.points) < 2 or report.mean is None:
        return f"{latest.days}/7"
    return f"{latest.days}/7 (mean {report.mean:.1f})"


# What an open reply was read as, in staff's words (the inbox's ``reading``).
READINGS = {
    "warning": "warning sign",
    "other": "free text",
    "symptom": "symptom",
    "quit_help": "wants to leave",
    "pain": "pain score",
    "number": "answer out of range",
}


def _reply_text(patient: PatientAdherence, zone: str) -> str:
    reply = patient.last_reply
    if reply.at is None:
        return "never"
    return f"{_short_time(reply.at, zone)} {reply.command or ''}".rstrip()


# --- table ----------------------------------------------------------------------------------

Justify = Literal["left", "right"]


@dataclass(frozen=True)
class ReportTable:
    """The report as a table of plain strings, for the terminal (``service.cli`` draws it)."""

    title: str
    columns: tuple[tuple[str, Justify], ...]  # heading and alignment
    rows: list[list[str]]
    summary: str


def report_table(report: AdherenceReport) -> ReportTable:
    return ReportTable(
        title=_title(report),
        columns=TABLE_COLUMNS,
        rows=[_table_cells(patient, report.timezone) for patient in report.patients],
        summary=summary_line(report),
    )


TABLE_COLUMNS: tuple[tuple[str, Justify], ...] = (
    ("Patient", "left"),
    ("Adherence", "right"),
    ("Days/wk said", "right"),
    ("Done", "right"),
    ("Delivered", "right"),
    ("Skipped", "right"),
    ("Unanswered", "right"),
    ("Streak", "right"),
    ("Pain", "left"),
    ("Last reply", "left"),
    ("Flags", "left"),
)


def _table_cells(patient: PatientAdherence, zone: str) -> list[str]:
    return [
        f"{patient.first_name} #{patient.patient_id}",
        percent(patient.adherence),
        self_reported_text(patient.self_reported),
        str(patient.done),
        str(patient.delivered),
        str(patient.skipped),
        str(patient.unanswered),
        f"{patient.streak} d",
        _pain_text(patient.pain),
        _reply_text(patient, zone),
        ", ".join(_flag_text(patient, flag) for flag in patient.flags),
    ]


def _title(report: AdherenceReport) -> str:
    first, last = _period(report)
    return f"Adherence — {report.title} — {first:%d %b %Y} to {last:%d %b %Y}"


def _period(report: AdherenceReport) -> tuple[dt.date, dt.date]:
    return (
        _local(report.since, report.timezone).date(),
        _local(report.now, report.timezone).date(),
    )


def summary_line(report: AdherenceReport) -> str:
    summary = report.summary
    return (
        f"{summary.patients} patients · average adherence "
        f"{percent(summary.average_adherence)} · {summary.needing_call} needing a call"
    )


# --- CSV and JSON ---------------------------------------------------------------------------

CSV_COLUMNS = (
    "patient_id",
    "first_name",
    "clinic",
    "delivered",
    "done",
    "skipped",
    "unanswered",
    "pending",
    "adherence",
    "streak",
    "silent_days",
    "pain_latest",
    "pain_direction",
    "last_reply_at",
    "last_reply_command",
    "flags",
    "pain_first",
    "pain_mean",
    "self_reported_days_latest",
    "self_reported_days_mean",
    "self_reported_count",
)


def render_csv(report: AdherenceReport) -> str:
    """One row per patient; per-kind adherence as ``adherence_<kind>`` columns at the end."""
    kinds = [kind.kind for kind in report.kinds]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"adherence_{kind}" for kind in kinds)])
    for patient in report.patients:
        per_kind = {kind.kind: kind.adherence for kind in patient.per_kind}
        writer.writerow(
            [
                *(_csv_cell(value) for value in _csv_values(patient)),
                *(_csv_cell(_ratio_cell(per_kind.get(kind))) for kind in kinds),
            ]
        )
    return buffer.getvalue()


def _csv_values(patient: PatientAdherence) -> list[object]:
    latest = patient.pain.latest
    reply = patient.last_reply
    return [
        patient.patient_id,
        patient.first_name,
        patient.clinic,
        patient.delivered,
        patient.done,
        patient.skipped,
        patient.unanswered,
        patient.pending,
        _ratio_cell(patient.adherence),
        patient.streak,
        patient.silent_days,
        latest.score if latest else None,
        patient.pain.direction,
        reply.at.isoformat() if reply.at else None,
        reply.command,
        ";".join(flag.value for flag in patient.flags),
        *_answer_values(patient),
    ]


def _answer_values(patient: PatientAdherence) -> list[object]:
    """What the patient told: the pain trend's first and mean, the check-ins' figures."""
    first, said = patient.pain.first, patient.self_reported
    latest = said.latest
    return [
        first.score if first else None,
        _mean_cell(patient.pain.mean),
        latest.days if latest else None,
        _mean_cell(said.mean),
        len(said.points),
    ]


def _mean_cell(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _ratio_cell(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_STARTS):
        return "'" + text  # shown as text, never evaluated
    return text


def render_json(report: AdherenceReport) -> str:
    """A JSON list with one object per patient (``PatientAdherence.to_dict``)."""
    return json.dumps([patient.to_dict() for patient in report.patients], indent=2) + "\n"


# --- HTML -----------------------------------------------------------------------------------


def render_html(report: AdherenceReport) -> str:
    first, last = _period(report)
    return _template().render(
        report=report,
        first_day=first,
        last_day=last,
        generated=_local(report.now, report.timezone),
        rows=[_html_row(patient, report) for patient in report.patients],
        kind_chart=kind_chart(report.kinds, threshold=report.threshold),
        percent=percent,
        threshold_pct=round(report.threshold * 100),
    )


def _html_row(patient: PatientAdherence, report: AdherenceReport) -> dict[str, object]:
    adherence = patient.adherence
    level = "none" if adherence is None else "low" if adherence < report.threshold else "good"
    return {
        "patient": patient,
        "level": level,
        "sparkline": weekly_sparkline(patient, threshold=report.threshold),
        "pain_chart": pain_sparkline(patient.pain),
        "pain_text": _pain_text(patient.pain),
        "self_reported": self_reported_text(patient.self_reported),
        "reply": _reply_text(patient, report.timezone),
        "flags": [(flag.value, _flag_text(patient, flag)) for flag in patient.flags],
        "open_replies": [_open_reply(reply, report.timezone) for reply in patient.open_replies],
    }


def _open_reply(reply: OpenReply, zone: str) -> dict[str, object]:
    return {
        "id": reply.id,
        "at": _short_time(reply.at, zone),
        "text": preview(reply.text),
        "reading": reply.reading,
        "label": READINGS.get(reply.reading, reply.reading.replace("_", " ")),
    }


def weekly_sparkline(
    patient: PatientAdherence, *, threshold: float, width: int = 132, height: int = 34
) -> Markup:
    """One bar per week, height = adherence; a dashed line marks the threshold."""
    weeks = patient.weekly
    if not weeks:
        return Markup("")
    gap = 3
    bar = max((width - gap * (len(weeks) - 1)) / len(weeks), 2)
    parts = []
    for index, week in enumerate(weeks):
        x = index * (bar + gap)
        value = week.adherence
        title = escape(
            f"{week.week}: {percent(value)} ({week.counts.done}/{week.counts.delivered} done)"
        )
        parts.append(_rect(x, 0, bar, height, fill=TRACK_COLOUR, title=title))
        if value:
            colour = GOOD_COLOUR if value >= threshold else LOW_COLOUR
            top = height * (1 - value)
            parts.append(_rect(x, top, bar, height - top, fill=colour, title=title))
    line_y = height * (1 - threshold)
    parts.append(
        f'<line x1="0" x2="{width}" y1="{line_y:.1f}" y2="{line_y:.1f}" stroke="#52606d" '
        'stroke-width="1" stroke-dasharray="3 3"/>'
    )
    label = escape(f"Weekly adherence of {patient.first_name}")
    return _svg(width, height, label, "spark", "".join(parts))


def pain_sparkline(pain: PainTrend, *, width: int = 96, height: int = 34) -> Markup:
    """Pain scores 0-10 over the period as a line; empty when there are none."""
    points = pain.points
    if not points:
        return Markup("")
    start, end = points[0].at, points[-1].at
    span = (end - start).total_seconds() or 1.0
    pad = 4
    coords = [
        (
            pad
            + (width - 2 * pad) * ((p.at - start).total_seconds() / span if end > start else 0.5),
            pad + (height - 2 * pad) * (1 - p.score / 10),
        )
        for p in points
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{PAIN_COLOUR}"/>' for x, y in coords
    )
    body = (
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f7f5fa"/>'
        f'<polyline points="{path}" fill="none" stroke="{PAIN_COLOUR}" stroke-width="2.5" '
        f'stroke-linejoin="round" stroke-linecap="round"/>{dots}'
    )
    return _svg(width, height, escape("Pain scores, 0 to 10"), "pain", body)


def kind_chart(
    kinds: Sequence[KindStats], *, threshold: float, width: int = 760, row: int = 30
) -> Markup:
    """Clinic-wide adherence per kind of reminder: one horizontal bar each."""
    if not kinds:
        return Markup("")
    label_w, value_w = 170, 170
    bar_w = width - label_w - value_w
    height = row * len(kinds) + 10
    parts = []
    for index, kind in enumerate(kinds):
        y = index * row + 4
        value = kind.adherence or 0.0
        counts = kind.counts
        parts.append(
            f'<text x="{label_w - 10}" y="{y + 16}" text-anchor="end" class="label">'
            f"{escape(exercise_name(kind.kind))}</text>"
        )
        parts.append(
            _rect(label_w, y + 3, bar_w, row - 12, fill=TRACK_COLOUR, title=escape(kind.kind))
        )
        if value:
            parts.append(_rect(label_w, y + 3, bar_w * value, row - 12, fill=KIND_COLOUR))
        parts.append(
            f'<text x="{label_w + bar_w + 10}" y="{y + 16}" class="value">'
            f"{percent(kind.adherence)} · {counts.done}/{counts.delivered} done</text>"
        )
    line_x = label_w + bar_w * threshold
    parts.append(
        f'<line x1="{line_x:.1f}" x2="{line_x:.1f}" y1="0" y2="{height}" stroke="#52606d" '
        'stroke-width="1" stroke-dasharray="4 3"/>'
    )
    label = escape("Adherence by kind of reminder")
    return _svg(width, height, label, "kinds", "".join(parts))


def _rect(x: float, y: float, w: float, h: float, *, fill: str, title: str = "") -> str:
    inner = f"<title>{title}</title>" if title else ""
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{fill}">'
        f"{inner}</rect>"
    )


def _svg(width: int, height: int, label: str, css_class: str, body: str) -> Markup:
    # Every dynamic piece of ``label`` and ``body`` was escaped by the caller.
    return Markup(  # noqa: S704 - built from numbers, constants and escaped text only
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{label}" '
        f'shape-rendering="crispEdges">{body}</svg>'
    )


@cache
def _template() -> jinja2.Template:
    # Autoescape everywhere: the page shows patients' names and reply commands.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template(REPORT_TEMPLATE)
