"""Send-path benchmark: the CPU of ``send_reminders`` per message, in process, next to the
twilio client's own.

The pipeline benchmark measures everything at once, on two cores shared with PostgreSQL,
Redis and the fake; this one isolates what the worker's pool processes do for each message.
It loads N patients into a scratch PostgreSQL database (bulk SQL, as ``pipeline_bench``),
makes them due a minute ago, runs one ``run_tick`` (N queued reminders), and then calls
``send_reminders`` for them in batches of ``--batch`` (20, as the worker's send tasks)
against the fake Twilio server in its own process, as the send task does: the real Twilio
transport and the real database. The first batch is left out of the timing (connections,
caches). Then the same N messages from one plain loop of ``twilio.rest.Client`` calls.
CPU is this process's (``time.process_time``): the fake and PostgreSQL are other processes.

    .venv/bin/python bench/send_bench.py --n 2000
    .venv/bin/python bench/send_bench.py --n 2000 --profile send.pstats   # cProfile, CPU clock

Needs PostgreSQL (127.0.0.1:5432, user postgres, trust); the scratch database is dropped at
the end, also on errors.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.pipeline_bench import (  # noqa: E402 - after the path fix above
    Stack,
    load_patients,
    prepare_due,
    timed_loops,
)
from bench.scratch import create_database, drop_database  # noqa: E402
from service.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from service.delivery.sending import SendOutcome, Transports, send_reminders  # noqa: E402
from service.delivery.ticking import run_tick  # noqa: E402
from service.transports.registry import email_transport, sms_transport  # noqa: E402
from tasks.urls import public_urls  # noqa: E402
from tests.fakes.twilio_server import twilio_server_process  # noqa: E402

AIM = 3.0  # the delivery issue's: at most 3x the plain loop's CPU a message (whole pipeline)


@dataclass(frozen=True)
class Measure:
    n: int  # messages timed (the first batch is not)
    cpu_per_message: float
    wall_per_message: float
    loop_cpu_per_message: float
    loop_wall_per_message: float
    sent: int


def measure(n: int, batch: int, profile: Path | None) -> Measure:
    name, url = create_database("ptnudge_sendbench")
    try:
        with (
            twilio_server_process() as twilio,
            tempfile.TemporaryDirectory(prefix="ptnudge-send-bench-") as folder,
        ):
            upgrade(url)
            engine = make_engine(url)
            stack = Stack(url=url, broker_url="redis://unused", twilio=twilio, log_dir=Path(folder))
            settings = stack.settings()
            now = dt.datetime.now(dt.UTC)
            load_patients(engine, patients=n, later=now + dt.timedelta(days=1))
            prepare_due(
                engine, n=n, target=(now - dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
            )
            # As the worker builds its runtime: no pre-ping (tasks/runtime.py).
            sessions = make_sessionmaker(make_engine(url, pre_ping=False))
            ids = sorted(run_tick(settings=settings, sessions=sessions).to_send)
            transports = Transports(sms=sms_transport(settings), email=email_transport(settings))
            urls = public_urls(settings)

            def send(part: list[int]) -> int:
                results = send_reminders(
                    sessions=sessions,
                    settings=settings,
                    transports=transports,
                    urls=urls,
                    reminder_ids=part,
                    retry_policy=lambda _attempts: None,
                )
                return sum(1 for r in results.values() if r.outcome is SendOutcome.SENT)

            sent = send(ids[:batch])
            timed = ids[batch:]
            profiler = cProfile.Profile(time.process_time) if profile else None
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            for start in range(0, len(timed), batch):
                sent += send(timed[start : start + batch])
            if profiler:
                profiler.disable()
                profiler.dump_stats(profile)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            loop = timed_loops(stack, n=len(timed), threads=1)
            engine.dispose()
    finally:
        drop_database(name)
    return Measure(
        len(timed), cpu / len(timed), wall / len(timed), loop.cpu_per_message, 1 / loop.rate, sent
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="reminders to send")
    parser.add_argument("--batch", type=int, default=20, help="reminders per send_reminders call")
    parser.add_argument("--profile", type=Path, help="write a cProfile (CPU clock) here")
    args = parser.parse_args()
    if args.n <= args.batch:
        parser.error("--n must be larger than --batch: the first batch is not timed")
    m = measure(args.n, args.batch, args.profile)
    table = Table(title=f"send_reminders in process, {m.n:,} messages in batches of {args.batch}")
    for column in ("", "CPU ms/msg", "wall ms/msg", "CPU vs the loop"):
        table.add_column(column, justify="right")
    table.add_row(
        "send_reminders",
        f"{m.cpu_per_message * 1000:.3f}",
        f"{m.wall_per_message * 1000:.3f}",
        f"{m.cpu_per_message / m.loop_cpu_per_message:.2f}x",
    )
    table.add_row(
        "plain twilio loop",
        f"{m.loop_cpu_per_message * 1000:.3f}",
        f"{m.loop_wall_per_message * 1000:.3f}",
        "1.00x",
    )
    console = Console()
    console.print(table)
    if args.profile:
        console.print(f"profile: {args.profile} (python -m pstats {args.profile})")
    console.print(
        f"the whole pipeline's aim is at most {AIM:.0f}x the loop's CPU a message "
        "(bench/pipeline_bench.py measures it)"
    )
    command = " ".join([".venv/bin/python", "bench/send_bench.py", *sys.argv[1:]])
    console.print(f"reproduce: {command}")
    if m.sent != args.n:
        sys.exit(f"sent {m.sent} of {args.n}: the figures are not worth reading")


if __name__ == "__main__":
    main()
