"""CSV import benchmark: N generated patients into a scratch PostgreSQL database.

Runs the same service function as ``ptnudge patients import``
(``service.enrollment.importing.import_csv``) and prints rows, seconds and rows/s against
the target of 5,000 rows/s.

    .venv/bin/python bench/import_bench.py --rows 100000

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust). The scratch database is created,
migrated with Alembic, and dropped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scratch import create_database, drop_database
from service.db import make_engine, make_sessionmaker, transaction, upgrade
from service.enrollment.clinics import add_clinic
from service.enrollment.importing import ImportResult, import_csv
from service.models import Clinic, Patient, PlanItem

TARGET_ROWS_PER_SECOND = 5_000
AREA_CODES = (312, 773, 872, 415, 628, 212, 646, 617, 206, 303, 512, 713, 305, 404, 602, 503)
ZONES = ("America/Chicago", "America/New_York", "America/Denver", "America/Los_Angeles")
WINDOWS = ("08:00-20:00", "07:30-21:00", "09:00-19:00")
PROGRAMS = ("stenosis-core", "stenosis-gentle", "stenosis-active")
NAMES = ("Ana", "José", "Mei", "Olu", "Sam", "Priya", "Lena", "Tom", "Zoë", "Ravi")


def write_csv(path: Path, rows: int, *, seed: int = 7) -> None:
    """A realistic export: distinct US numbers in national format, a few zones, windows,
    programs and start dates (so the schedule cache sees hundreds of distinct keys)."""
    rng = random.Random(seed)
    numbers = rng.sample(range(len(AREA_CODES) * 800 * 10_000), rows)
    start = dt.date(2026, 12, 1)
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["First Name", "phone", "timezone", "program", "wake", "locale", "start"])
        for number in numbers:
            area, rest = divmod(number, 800 * 10_000)
            exchange, line = divmod(rest, 10_000)
            out.writerow(
                [
                    rng.choice(NAMES),
                    f"({AREA_CODES[area]}) {exchange + 200}-{line:04d}",
                    rng.choice(ZONES),
                    rng.choice(PROGRAMS),
                    rng.choice(WINDOWS),
                    rng.choice(("en", "es")),
                    (start + dt.timedelta(days=rng.randrange(30))).isoformat(),
                ]
            )


def run(rows: int, console: Console) -> tuple[ImportResult, float, int, int]:
    name, url = create_database("ptnudge_bench")
    try:
        upgrade(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        with transaction(sessions) as session:
            clinic = add_clinic(
                session=session,
                slug="bench",
                name="Bench clinic",
                phone="+13125550000",
                timezone="America/Chicago",
                actor="bench",
            )
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "patients.csv"
            write_csv(path, rows)
            result, seconds = timed_import(sessions, clinic, path, console)
        with sessions() as session:
            patients = session.scalar(sa.select(sa.func.count(Patient.id))) or 0
            items = session.scalar(sa.select(sa.func.count(PlanItem.id))) or 0
        engine.dispose()
        return result, seconds, patients, items
    finally:
        drop_database(name)


def timed_import(
    sessions: sessionmaker[Session], clinic: Clinic, path: Path, console: Console
) -> tuple[ImportResult, float]:
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("import", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        began = time.perf_counter()
        result = import_csv(
            sessions=sessions,
            clinic=clinic,
            path=path,
            actor="bench",
            now=dt.datetime.now(dt.UTC),
            progress=report,
        )
        return result, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    console = Console()
    result, seconds, patients, items = run(args.rows, console)
    rate = result.rows / seconds
    table = Table(title="CSV import into PostgreSQL (service.enrollment.importing.import_csv)")
    for column in ("rows", "added", "errors", "seconds", "rows/s", "target rows/s", "ratio"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{result.rows:,}",
        f"{result.added:,}",
        f"{len(result.errors):,}",
        f"{seconds:.1f}",
        f"{rate:,.0f}",
        f"{TARGET_ROWS_PER_SECOND:,}",
        f"{rate / TARGET_ROWS_PER_SECOND:.2f}x",
    )
    console.print(table)
    console.print(f"stored: {patients:,} patients, {items:,} plan items")
    for line, reason in result.errors[:5]:
        console.print(f"[red]line {line}: {reason}")
    console.print(f"reproduce: .venv/bin/python bench/import_bench.py --rows {args.rows}")
    if result.errors or patients != args.rows:
        sys.exit(1)


if __name__ == "__main__":
    main()
