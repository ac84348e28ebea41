"""Each report format, rendered from a realistic clinic month in a real database."""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser

import jsonschema
import pytest
from markupsafe import escape
from sqlalchemy.orm import Session

from service.replies.inbox import preview
from service.reporting.adherence import AdherenceReport, PatientAdherence
from service.reporting.reports import (
    CSV_COLUMNS,
    GOOD_COLOUR,
    KIND_COLOUR,
    LOW_COLOUR,
    PAIN_COLOUR,
    TABLE_COLUMNS,
    render_csv,
    render_html,
    render_json,
    report_table,
)
from tests.service.reporting.report_data import (
    FORMULA_NAME,
    MARKUP_NAME,
    SCRIPT_NAME,
    report_with_hostile_names,
)

SVG_NAMESPACE = "http://www.w3.org/2000/svg"
# Attributes that make a browser fetch something.
LOADING_ATTRIBUTES = frozenset({"src", "href", "xlink:href", "srcset", "action", "data", "poster"})


@pytest.fixture
def report(session: Session) -> AdherenceReport:
    return report_with_hostile_names(session)


def test_csv_parses_into_one_row_per_patient_worst_first(report: AdherenceReport) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))

    assert len(rows) == len(report.patients) == 13
    assert [int(row["patient_id"]) for row in rows] == [p.patient_id for p in report.patients]
    kinds = [f"adherence_{kind.kind}" for kind in report.kinds]
    assert list(rows[0]) == [*CSV_COLUMNS, *kinds]
    first = report.patients[0]
    assert rows[0]["done"] == str(first.done)
    assert rows[0]["delivered"] == str(first.delivered)
    assert float(rows[0]["adherence"]) == pytest.approx(first.adherence, abs=1e-4)
    adherences = [float(row["adherence"]) for row in rows if row["adherence"]]
    assert adherences == sorted(adherences)


def test_csv_neutralises_formulas_in_names(report: AdherenceReport) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))

    names = {row["first_name"] for row in rows}
    assert "'" + FORMULA_NAME in names
    assert FORMULA_NAME not in names
    assert SCRIPT_NAME in names  # plain text in a CSV: nothing to escape


REPORT_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": [
            "patient_id",
            "first_name",
            "clinic",
            "delivered",
            "done",
            "skipped",
            "unanswered",
            "adherence",
            "streak",
            "per_kind",
            "weekly",
            "pain",
            "last_reply",
            "flags",
        ],
        "properties": {
            "patient_id": {"type": "integer"},
            "first_name": {"type": "string"},
            "clinic": {"type": "string"},
            "delivered": {"type": "integer", "minimum": 0},
            "done": {"type": "integer", "minimum": 0},
            "skipped": {"type": "integer", "minimum": 0},
            "unanswered": {"type": "integer", "minimum": 0},
            "adherence": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "streak": {"type": "integer", "minimum": 0},
            "per_kind": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["delivered", "done", "skipped", "unanswered", "adherence"],
                },
            },
            "weekly": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["week", "start", "delivered", "done", "adherence"],
                    "properties": {"week": {"type": "string", "pattern": r"^\d{4}-W\d{2}$"}},
                },
            },
            "pain": {
                "type": "object",
                "required": ["latest", "latest_at", "count", "slope_per_week", "direction"],
                "properties": {
                    "direction": {"enum": [None, "improving", "steady", "worsening"]},
                },
            },
            "last_reply": {"type": "object", "required": ["at", "command"]},
            "flags": {
                "type": "array",
                "items": {"enum": ["warning_sign", "waiting", "below_threshold", "silent"]},
            },
        },
    },
}


def test_json_is_a_list_of_patients_matching_the_schema(report: AdherenceReport) -> None:
    data = json.loads(render_json(report))

    jsonschema.validate(data, REPORT_SCHEMA)
    assert len(data) == 13
    by_name = {item["first_name"]: item for item in data}
    ana, daniel = by_name["Ana"], by_name["Daniel"]
    assert ana["pain"]["direction"] == "improving"
    assert ana["last_reply"]["command"] == "done"
    assert sum(week["done"] for week in ana["weekly"]) == ana["done"]
    assert sum(kind["delivered"] for kind in ana["per_kind"].values()) == ana["delivered"]
    assert daniel["flags"][0] == "warning_sign"


class _Checker(HTMLParser):
    """Fails on a closing tag that does not close the innermost open element."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "col", "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def test_html_is_well_formed_with_charts_and_escaped_names(report: AdherenceReport) -> None:
    page = render_html(report)
    checker = _Checker()
    checker.feed(page)
    checker.close()

    assert checker.problems == []
    assert checker.stack == []
    assert page.startswith("<!DOCTYPE html>")
    assert "script" not in checker.tags
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    # One weekly chart per patient, a pain chart for each with scores, one chart of kinds.
    with_pain = sum(1 for p in report.patients if p.pain.points)
    assert checker.tags.count("svg") == len(report.patients) + with_pain + 1
    for colour in (GOOD_COLOUR, LOW_COLOUR, KIND_COLOUR, PAIN_COLOUR):
        assert colour in page
    assert "@media print" in page


def test_html_is_self_contained(report: AdherenceReport) -> None:
    page = render_html(report)
    checker = _Checker()
    checker.feed(page)

    loads = [(name, value) for name, value in checker.attributes if name in LOADING_ATTRIBUTES]
    assert loads == []
    assert {value for name, value in checker.attributes if name == "xmlns"} == {SVG_NAMESPACE}
    assert {"link", "img", "script", "iframe", "object"}.isdisjoint(checker.tags)
    for needle in ("@import", "url("):
        assert needle not in page


def test_the_table_is_plain_strings_one_row_per_patient_worst_first(
    report: AdherenceReport,
) -> None:
    table = report_table(report)

    assert table.columns == TABLE_COLUMNS
    assert all(len(row) == len(TABLE_COLUMNS) for row in table.rows)
    names = [row[0] for row in table.rows]
    assert names == [f"{p.first_name} #{p.patient_id}" for p in report.patients]
    assert f"{MARKUP_NAME} #" in "".join(names)  # kept as text: the CLI shows it literally
    assert table.title.startswith("Adherence — Lakeside Back Clinic — ")
    assert table.summary.startswith("13 patients · average adherence ")


def test_html_quotes_each_open_reply_beside_its_patient(session: Session) -> None:
    report = report_with_hostile_names(session)
    page = render_html(report)
    waiting = [p for p in report.patients if p.open_replies]
    assert waiting, "the realistic month has open replies"

    for patient in waiting:
        beside = _row_of(page, patient.patient_id)
        for reply in patient.open_replies:
            assert str(escape(preview(reply.text))) in beside
            assert f"ptnudge replies ack {reply.id}" in beside
    closed = [p for p in report.patients if not p.open_replies]
    assert closed
    assert "ptnudge replies ack" not in _row_of(page, closed[0].patient_id)


def _row_of(page: str, patient_id: int) -> str:
    """The page from a patient's row to the next patient's."""
    start = page.index(f"#{patient_id}</span>")
    end = page.find('<td class="who">', start)
    return page[start : end if end != -1 else page.index("</tbody>")]


# --- what the patients said: the weekly check-in and the pain trend -----------------------


def _by_name(report: AdherenceReport, name: str) -> PatientAdherence:
    return next(p for p in report.patients if p.first_name == name)


def test_json_has_the_self_reported_days_beside_the_done_figures(report: AdherenceReport) -> None:
    by_name = {item["first_name"]: item for item in json.loads(render_json(report))}
    ana, marcus, priya = by_name["Ana"], by_name["Marcus"], by_name["Priya"]

    # Four Sunday check-ins in the month: Ana's answers go 5 to 7, Marcus's 4 to 1.
    said = ana["self_reported_days"]
    assert (said["latest"], said["mean"], said["count"]) == (7, 6.0, 4)
    assert [point["days"] for point in said["points"]] == [5, 6, 6, 7]
    marcus_said = marcus["self_reported_days"]
    assert (marcus_said["latest"], marcus_said["mean"]) == (1, 2.5)
    assert priya["self_reported_days"] == {
        "latest": None,
        "latest_at": None,
        "mean": None,
        "count": 0,
        "points": [],
    }
    assert (ana["pain"]["first"], ana["pain"]["latest"]) == (7, 3)
    # The check-ins that were asked are no reminders: no kind of their own, no delivered count.
    assert "weekly_checkin" not in ana["per_kind"]
    assert "weekly_checkin" not in {kind.kind for kind in report.kinds}


def test_csv_has_the_self_reported_days_and_the_pain_trend(report: AdherenceReport) -> None:
    rows = {row["first_name"]: row for row in csv.DictReader(io.StringIO(render_csv(report)))}

    ana = rows["Ana"]
    assert (ana["self_reported_days_latest"], ana["self_reported_days_mean"]) == ("7", "6.00")
    assert ana["self_reported_count"] == "4"
    assert (ana["pain_first"], ana["pain_latest"]) == ("7", "3")
    assert float(ana["pain_mean"]) == pytest.approx(_by_name(report, "Ana").pain.mean, abs=0.01)
    assert rows["Priya"]["self_reported_days_latest"] == ""


def test_the_table_and_the_page_show_the_days_said_next_to_adherence(
    report: AdherenceReport,
) -> None:
    table = report_table(report)
    columns = [name for name, _ in table.columns]
    said = columns.index("Days/wk said")
    assert said == columns.index("Adherence") + 1
    cells = {row[0].split(" #")[0]: row for row in table.rows}
    assert cells["Ana"][said] == "7/7 (mean 6.0)"
    assert cells["Marcus"][said] == "1/7 (mean 2.5)"
    assert cells["Priya"][said] == "\N{EN DASH}"
    assert cells["Ana"][columns.index("Pain")].startswith("7 → 3/10 improving (mean ")

    page = render_html(report)
    assert "Days/week, said" in page
    assert '<td class="num said">7/7 (mean 6.0)</td>' in page
    assert "7 → 3/10 improving" in page
