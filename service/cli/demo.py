"""``ptnudge demo``: a fast-forwarded day on embedded defaults.

A demo clinic and patient in a fresh SQLite database, the real dispatcher and send code run
against a simulated clock, a patient who answers some reminders (DONE, LATER, a question,
HELP), and the clinic's adherence view at the end. Nothing but this process runs: no broker,
no web server; messages "arrive" on a phone drawn on the terminal.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings, load_settings
from service.db import make_engine, make_sessionmaker, transaction, upgrade
from service.delivery.sending import Transports, send_reminder
from service.delivery.ticking import run_tick
from service.enrollment import clinics, patients
from service.replies import inbound
from service.reporting import adherence
from service.transports.base import OutboundMessage, Receipt
from tasks.urls import public_urls

ZONE = "America/Chicago"
PATIENT_PHONE = "+13125550100"
CLINIC_NUMBER = "+13125550199"
STEP = dt.timedelta(minutes=5)
# The patient's side of the day: (local time, what they text back).
SCRIPT = (
    (dt.time(9, 6), "done!"),
    (dt.time(10, 34), "later"),
    (dt.time(11, 8), "did it 👍"),
    (dt.time(12, 15), "HELP"),
    (dt.time(13, 4), "Done"),
    (dt.time(14, 20), "is it ok to do these after lunch?"),
    (dt.time(18, 35), "finished"),
)


@dataclass
class DemoPhone:
    """The transport of the demo: the message lands on the patient's phone on screen."""

    console: Console
    clock: list[dt.datetime]
    received: list[tuple[dt.datetime, str]] = field(default_factory=list)

    def send(self, message: OutboundMessage) -> Receipt:
        moment = self.clock[0].astimezone(ZoneInfo(ZONE))
        self.received.append((moment, message.body))
        self.console.print(f"[bold cyan]{moment:%H:%M}[/]  [green]→ Ana[/]  {message.body}")
        return Receipt(provider_id=f"demo-{len(self.received)}", status="sent")


def demo_settings(workdir: Path) -> Settings:
    return load_settings(
        env="development",
        database_url=f"sqlite:///{workdir / 'demo.db'}",
        broker_url=f"sqla+sqlite:///{workdir / 'demo-broker.db'}",
        sms_backend="console",
        smtp_url=None,
        _env_file=None,
    )


def run_demo(*, console: Console, workdir: Path, day: dt.date) -> adherence.PatientAdherence:
    """Play one day for a demo patient; returns her adherence at the end of the day.

    1. A fresh SQLite database with the demo clinic and patient.
    2. Every STEP from 07:30 to 20:30 local: a dispatcher tick, the sends it queued, and the
       scripted replies that have come due.
    3. Her adherence for the day, as the clinic sees it.
    """
    settings, sessions = _fresh_database(workdir)
    zone = ZoneInfo(ZONE)
    start = dt.datetime.combine(day, dt.time(7, 30), zone).astimezone(dt.UTC)
    end = dt.datetime.combine(day, dt.time(20, 30), zone).astimezone(dt.UTC)
    patient_id, clinic_id = _enroll(sessions, settings, start, day)
    console.print(_intro(day))
    clock = [start]
    phone = DemoPhone(console=console, clock=clock)
    transports = Transports(sms=phone, email=phone)
    urls = public_urls(settings)
    replies = list(SCRIPT)
    for moment in _steps(start, end):
        clock[0] = moment
        result = run_tick(settings=settings, sessions=sessions, now=moment)
        for reminder_id in result.to_send:
            send_reminder(
                sessions=sessions,
                settings=settings,
                transports=transports,
                urls=urls,
                reminder_id=reminder_id,
                retry_in=None,
                clock=lambda: clock[0],
            )
        while replies and dt.datetime.combine(day, replies[0][0], zone) <= moment:
            text = replies.pop(0)[1]
            _reply(console, sessions, settings, text=text, moment=moment, remaining=len(replies))
    summary = _day_adherence(sessions, patient_id=patient_id, clinic_id=clinic_id, day=(start, end))
    console.print(_summary_table(summary, len(phone.received)))
    for line in next_steps(workdir=workdir, day=day, patient_id=patient_id):
        # Never wrapped: each command must paste whole.
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return summary


def _fresh_database(workdir: Path) -> tuple[Settings, sessionmaker[Session]]:
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in workdir.glob("demo*.db*"):
        stale.unlink()
    settings = demo_settings(workdir)
    upgrade(settings.database_url)
    return settings, make_sessionmaker(make_engine(settings.database_url))


def _intro(day: dt.date) -> Panel:
    return Panel.fit(
        f"Lakeside Back Clinic enrolls [bold]Ana[/] (program stenosis-core, waking "
        f"08:00-20:00 {ZONE}) on {day:%A %d %B %Y}.\nThe day below runs on a fast-forwarded "
        "clock with the real dispatcher and send code; Ana's replies are scripted.",
        title="ptnudge demo",
    )


def _day_adherence(
    sessions: sessionmaker[Session],
    *,
    patient_id: int,
    clinic_id: int,
    day: tuple[dt.datetime, dt.datetime],
) -> adherence.PatientAdherence:
    since, until = day
    with sessions() as session:
        rows = adherence.patient_adherence(
            session=session, clinic_id=clinic_id, since=since, now=until
        )
    return next(row for row in rows if row.patient_id == patient_id)


def next_steps(*, workdir: Path, day: dt.date, patient_id: int) -> list[str]:
    """Where the demo's data is and commands to read it, ready to paste in this folder.

    The adherence report covers days up to now, so for a day still to come it is left
    out, with the reason."""
    database = f"sqlite:///{_shown(workdir / 'demo.db')}"
    command = f"PTNUDGE_DATABASE_URL={shlex.quote(database)} {shlex.quote(_ptnudge())}"
    today = dt.datetime.now(ZoneInfo(ZONE)).date()
    lines = ["", f"The demo's database is {_shown(workdir / 'demo.db')}. Try next:"]
    if day <= today:
        report = shlex.quote(_shown(workdir / "report.html"))
        lines.append(f"  {command} report adherence --since {day} --format html --output {report}")
    else:
        lines.append(f"  (the report covers days up to now: play a past day with --day {today})")
    lines.append(f"  {command} replies list --since {day}")
    lines.append(f"  {command} preview {patient_id} --from {day + dt.timedelta(days=1)} --days 1")
    return lines


def _ptnudge() -> str:
    """This installation's ``ptnudge`` (``.venv/bin/ptnudge`` after ``make demo``)."""
    return _shown(Path(sys.executable).with_name("ptnudge"))


def _shown(path: Path) -> str:
    """A path as short as it can be pasted here: relative below this folder, else absolute."""
    absolute = path.resolve()
    try:
        return os.path.relpath(absolute) if absolute.is_relative_to(Path.cwd()) else str(absolute)
    except ValueError:  # another drive (Windows)
        return str(absolute)


def _enroll(
    sessions: sessionmaker[Session], settings: Settings, now: dt.datetime, day: dt.date
) -> tuple[int, int]:
    with transaction(sessions) as session:
        clinic = clinics.add_clinic(
            session=session,
            slug="demo-clinic",
            name="Lakeside Back Clinic",
            phone=CLINIC_NUMBER,
            timezone=ZONE,
            email="staff@lakeside.example",
            actor="demo",
        )
        patient = patients.enroll(
            session=session,
            clinic=clinic,
            request=patients.EnrollmentRequest(
                first_name="Ana",
                phone=PATIENT_PHONE,
                program="stenosis-core",
                wake="08:00-20:00",
                start=day.isoformat(),
                consent_method="verbal, recorded in clinic",
            ),
            actor="demo",
            now=now,
        )
        return patient.id, clinic.id


def _steps(start: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
    moment = start
    while moment <= end:
        yield moment
        moment += STEP


def _reply(
    console: Console,
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    text: str,
    moment: dt.datetime,
    remaining: int,
) -> None:
    local = moment.astimezone(ZoneInfo(ZONE))
    console.print(f"[bold cyan]{local:%H:%M}[/]  [yellow]← Ana[/]  {text}")
    with transaction(sessions) as session:
        result = inbound.handle_sms(
            session=session,
            settings=settings,
            from_number=PATIENT_PHONE,
            to_number=CLINIC_NUMBER,
            body=text,
            message_sid=f"SMdemo{remaining:030d}",
            now=moment,
        )
    if result.reply_text:
        console.print(f"[bold cyan]{local:%H:%M}[/]  [green]→ Ana[/]  {result.reply_text}")


def _summary_table(row: adherence.PatientAdherence, messages: int) -> Table:
    table = Table(title="End of the day: what the clinic sees")
    for column in ("patient", "messages", "reminders delivered", "done", "skipped", "adherence"):
        table.add_column(column)
    rate = "-" if row.adherence is None else f"{row.adherence:.0%}"
    table.add_row(
        f"{row.first_name} (#{row.patient_id})",
        str(messages),
        str(row.delivered),
        str(row.done),
        str(row.skipped),
        rate,
    )
    return table
