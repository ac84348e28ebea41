"""Dispatcher benchmark: N plan items due in the same minute, one ``run_tick``, against SQL.

The dispatcher's cost should be the database's, not Python's per patient. For each N this
loads N patients with one daily stretch item due at the same minute into a scratch
PostgreSQL database (bulk SQL), runs one ``run_tick`` in process (the same call beat's task
makes; nothing is enqueued), and compares it with the floor: one plain
``INSERT … SELECT`` of the same N reminder rows in the same database, on a table as clean
as the tick found it (the tick's rows deleted, then ``VACUUM ANALYZE reminders``, both
outside the timing).

    .venv/bin/python bench/dispatch_bench.py --n 20000 --n 100000

Aim: the tick at most 30x the plain INSERT at N = 20,000. Needs PostgreSQL (127.0.0.1:5432,
user postgres, trust); each scratch database is dropped at the end, also on errors.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.pipeline_bench import load_patients  # noqa: E402 - after the path fix above
from bench.scratch import create_database, drop_database  # noqa: E402
from config.settings import load_settings  # noqa: E402
from service.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from service.delivery.ticking import run_tick  # noqa: E402

AIM_RATIO = 30.0

# The floor: the rows the dispatcher writes for N due items, in one statement.
PLAIN_INSERT = """
INSERT INTO reminders (patient_id, plan_item_id, kind, channel, actionable, due_at, status,
    status_at, queued_at, attempts)
SELECT p.patient_id, p.id, p.kind, 'sms', true, :due, 'queued', now(), now(), 0
FROM plan_items AS p
"""


@dataclass(frozen=True)
class Measure:
    n: int
    tick_seconds: float
    created: int
    insert_seconds: float
    inserted: int

    @property
    def ratio(self) -> float:
        return self.tick_seconds / self.insert_seconds


def measure(n: int) -> Measure:
    name, url = create_database("ptnudge_dispatch_bench")
    try:
        upgrade(url)
        engine = make_engine(url)
        due = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        load_patients(engine, patients=n, later=due)
        settings = load_settings(env="test", database_url=url, _env_file=None)
        began = time.perf_counter()
        result = run_tick(settings=settings, sessions=make_sessionmaker(engine), now=due)
        tick = time.perf_counter() - began
        insert, inserted = plain_insert(engine, due)
        engine.dispose()
        return Measure(n, tick, result.created, insert, inserted)
    finally:
        drop_database(name)


def plain_insert(engine: sa.Engine, due: dt.datetime) -> tuple[float, int]:
    """The same rows again, into a table as clean as the tick found it: the dispatcher's rows
    are deleted and ``VACUUM ANALYZE reminders`` clears their dead tuples and index entries,
    both outside the timing. Without the vacuum the INSERT writes around N dead rows in the
    heap and in each of the six indexes, and the floor is slower than it is."""
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM reminders"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE reminders"))
    began = time.perf_counter()
    with engine.begin() as conn:
        inserted = conn.execute(sa.text(PLAIN_INSERT), {"due": due}).rowcount
    return time.perf_counter() - began, inserted


def report(measures: list[Measure]) -> bool:
    table = Table(title="Dispatch: one run_tick vs one plain INSERT … SELECT (PostgreSQL)")
    for column in ("N due", "run_tick", "reminders/s", "plain INSERT", "ratio", "aim", "met?"):
        table.add_column(column, justify="right")
    for m in measures:
        table.add_row(
            f"{m.n:,}",
            f"{m.tick_seconds:.2f} s",
            f"{m.created / m.tick_seconds:,.0f}",
            f"{m.insert_seconds:.3f} s",
            f"{m.ratio:.0f}x",
            f"≤ {AIM_RATIO:.0f}x" if m.n == 20_000 else "",
            ("yes" if m.ratio <= AIM_RATIO else "no") if m.n == 20_000 else "",
        )
    console = Console()
    console.print(table)
    ns = " ".join(f"--n {m.n}" for m in measures)
    console.print(f"reproduce: .venv/bin/python bench/dispatch_bench.py {ns}")
    return all(m.created == m.n == m.inserted for m in measures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="plan items due (repeatable)")
    args = parser.parse_args()
    measures = [measure(n) for n in args.n or [20_000, 100_000]]
    if not report(measures):
        counts = ", ".join(
            f"N={m.n}: {m.created} by the tick, {m.inserted} by SQL" for m in measures
        )
        print(f"not one reminder per due item: {counts}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
