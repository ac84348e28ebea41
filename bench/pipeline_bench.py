"""Delivery pipeline benchmark: N reminders due in the same minute, through the real pipeline.

Loads ``--patients`` patients into a scratch PostgreSQL database with bulk SQL, starts the fake
Twilio server process, one ``celery -A tasks.app worker`` (ptnudge's default pool: two
processes per CPU, or ``--concurrency``) and ``celery -A tasks.app beat`` (the dispatcher
every PTNUDGE_TICK_SECONDS, default 15 s), makes N reminders due at the next whole minute,
and measures until every one is sent:

- lateness p50/p99: the fake's own receive time of each message (``received_at``, to the
  microsecond) minus its due time;
- throughput end to end: N / (the fake's last receive time - due time);
- CPU seconds per message summed over every ptnudge process (the worker, its pool, beat:
  utime + stime + cutime + cstime from ``/proc/<pid>/stat`` over their process groups);
- one idle ``run_tick`` at ``--patients`` patients, in process, as beat's task runs it in
  the worker (no pre-ping, one tick's look-ahead), median of ``--idle-runs`` (9);
  ``--idle-only`` loads the patients, times that and stops (no worker, no N);
- worker RSS: sum of VmRSS over the worker's process group, sampled every second (peak);
- baseline: the same N messages from one plain loop of ``twilio.rest.Client`` calls, right
  before the pipeline's run and right after it (its rate over both, and CPU per message),
  and from 8 such loops in threads: if 8 are much faster than 1, or the client used more
  CPU than the fake during the single loop, one loop is bound by its client, not by the
  fake, and the ratio is against a real limit;
- the ETA-per-task design (``bench/eta_design.py``: one Celery task per reminder queued ahead
  with an ETA, Celery's defaults, a pool as large as ptnudge's) with the same N due at the
  next minute, while ptnudge's worker and beat are stopped (SIGSTOP): its rate, lateness and
  CPU per message (its worker and pool, from the first task queued). ``--no-eta-design``
  skips it.

    .venv/bin/python bench/pipeline_bench.py --n 2000 --tick 2 --patients 100000
    .venv/bin/python bench/pipeline_bench.py --n 5000 --patients 1000000
    .venv/bin/python bench/pipeline_bench.py --idle-only --patients 1000000 --idle-runs 100

Needs PostgreSQL (127.0.0.1:5432, user postgres, trust) and Redis (127.0.0.1:6379). The scratch
database is dropped and the Redis database (an empty one of 10-15) flushed at the end, also on
errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import redis
import sqlalchemy as sa
from celery import Celery
from rich.console import Console
from rich.table import Table
from twilio.rest import Client

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.eta_design import QUEUE, READY, TASK  # noqa: E402
from bench.scratch import create_database, drop_database  # noqa: E402
from config.settings import Settings, load_settings  # noqa: E402 - after the path fix above
from service.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from service.delivery.ticking import look_ahead, run_tick  # noqa: E402
from tests.fakes.twilio_server import (  # noqa: E402
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    RemoteTwilioServer,
    twilio_server_process,
)

REDIS_URL = os.environ.get("PTNUDGE_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
FROM_NUMBER = "+13125550000"
TICK_SECONDS = 15.0  # PTNUDGE_TICK_SECONDS default; beat dispatches this often (--tick)
LOOP_THREADS = 8  # the plain loop's second run: enough threads to outrun one client
CLIENT_BOUND = 1.5  # 8 threads this much faster than 1: the single loop is client-bound
LEAD_SECONDS = 20  # the due minute is at least this far ahead when it is set
LONG_RUN_SECONDS = 600  # a run expected to take longer is only started when asked
IDLE_TICK_RUNS = 9
BODY = "Hi Pat, time for your stretch: 10 slow knee-to-chest pulls. Reply DONE when finished."
SENT_STATUSES = ("sent", "delivered")
OPEN_STATUSES = ("scheduled", "queued", "sending")


# --- scratch database and bulk load ------------------------------------------------------------


# Everyone's stretch is at the same minute, UTC, awake all day. Nobody is due at load time:
# ``prepare_due`` later moves the first N patients' item to the target instant.
LOAD_SQL = [
    """INSERT INTO clinics (id, slug, name, phone, timezone, region, created_at)
       VALUES (1, 'bench', 'Bench clinic', '+13125550000', 'UTC', 'US', now())""",
    """INSERT INTO patients (id, clinic_id, first_name, phone, timezone, locale, channel,
           wake_start, wake_end, program_id, start_date, max_per_day, status,
           created_at, updated_at)
       SELECT g, 1, 'Pat', '+1' || (2000000000 + g)::text, 'UTC', 'en', 'sms',
           '00:00', '23:59', 'stenosis-core', current_date - 30, 100, 'active', now(), now()
       FROM generate_series(1, :n) AS g""",
    """INSERT INTO plan_items (id, patient_id, position, kind, at_times, next_due_at)
       SELECT g, g, 0, 'stretch', CAST(:at_times AS json), :later
       FROM generate_series(1, :n) AS g""",
    "SELECT setval('clinics_id_seq', 1)",
    "SELECT setval('patients_id_seq', :n)",
    "SELECT setval('plan_items_id_seq', :n)",
]


def load_patients(engine: sa.Engine, *, patients: int, later: dt.datetime) -> float:
    began = time.perf_counter()
    params = {"n": patients, "later": later, "at_times": f'["{later:%H:%M}"]'}
    with engine.begin() as conn:
        for statement in LOAD_SQL:
            conn.execute(sa.text(statement), params)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    return time.perf_counter() - began


def prepare_due(engine: sa.Engine, *, n: int, target: dt.datetime) -> None:
    """Make patients 1..N due at ``target`` (their daily stretch at that minute, UTC)."""
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM reminders"))
        conn.execute(
            sa.text(
                "UPDATE plan_items SET at_times = CAST(:at_times AS json), next_due_at = :target,"
                " last_due_at = NULL WHERE patient_id <= :n"
            ),
            {"n": n, "target": target, "at_times": f'["{target:%H:%M}"]'},
        )


def next_target(now: dt.datetime) -> dt.datetime:
    """The next whole minute at least LEAD_SECONDS ahead, kept clear of the 23:59 window end."""
    target = (now + dt.timedelta(seconds=LEAD_SECONDS + 60)).replace(second=0, microsecond=0)
    if target.hour == 23 and target.minute >= 58:
        target = (target + dt.timedelta(days=1)).replace(hour=0, minute=1)
    return target


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Stack:
    url: str
    broker_url: str
    twilio: RemoteTwilioServer
    log_dir: Path
    tick: float = TICK_SECONDS
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """The integration tests' worker environment, minus their shortened delivery timings:
        the benchmark measures the defaults (tick, requeue, reconcile, stale, min gap)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PTNUDGE_", "TWILIO_"))}
        env.update(
            {
                "PTNUDGE_ENV": "test",
                "PTNUDGE_DATABASE_URL": self.url,
                "PTNUDGE_BROKER_URL": self.broker_url,
                "PTNUDGE_SMS_BACKEND": "twilio",
                "PTNUDGE_SECRET_KEY": "test-secret-key-0123456789",
                "PTNUDGE_PUBLIC_URL": "http://127.0.0.1:9",
                "PTNUDGE_TWILIO_API_URL": self.twilio.url,
                "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
                "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
                "TWILIO_FROM_NUMBER": FROM_NUMBER,
                "PTNUDGE_TICK_SECONDS": str(self.tick),
                "PYTHONPATH": str(REPO_ROOT),
            }
        )
        return env

    def settings(self) -> Settings:
        return load_settings(
            env="test",
            database_url=self.url,
            broker_url=self.broker_url,
            sms_backend="twilio",
            secret_key="test-secret-key-0123456789",
            twilio_api_url=self.twilio.url,
            twilio_account_sid=DEFAULT_ACCOUNT_SID,
            twilio_auth_token=DEFAULT_AUTH_TOKEN,
            twilio_from_number=FROM_NUMBER,
            tick_seconds=self.tick,
            _env_file=None,
        )

    def start(
        self,
        name: str,
        *args: str,
        ready: bytes,
        app: str = "tasks.app",
        env: dict[str, str] | None = None,
    ) -> None:
        command = [sys.executable, "-m", "celery", "-A", app, *args]
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            self.processes[name] = subprocess.Popen(
                command, cwd=REPO_ROOT, env={**self.env, **(env or {})}, stdout=log,
                stderr=log, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while ready not in log_path.read_bytes():
            if self.processes[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.3)

    def stop(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
                os.killpg(process.pid, signal.SIGCONT)  # a stopped group acts on it only so
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def group_files(pgid: int, name: str) -> Iterator[str]:
    """``/proc/<pid>/<name>`` of every process in the group (the worker and its prefork
    pool), read; processes that end meanwhile are passed over."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.getpgid(int(entry.name)) == pgid:
                yield (entry / name).read_text()


def group_rss_mb(pgid: int) -> float:
    """Sum of VmRSS over every process in the group."""
    total_kb = 0
    for status in group_files(pgid, "status"):
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def cpu_seconds(stat: str) -> float:
    """User + system CPU seconds, with reaped children's, from a ``/proc/<pid>/stat`` line
    (every thread of the process)."""
    # Fields after the ")" that ends the command name: utime is the 12th of them.
    ticks = sum(int(value) for value in stat.rsplit(")", 1)[1].split()[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds of every process in the group."""
    return sum(cpu_seconds(stat) for stat in group_files(pgid, "stat"))


PTNUDGE_PROCESSES = ("worker", "beat")
ETA_WORKER = "eta-worker"


def ptnudge_cpu_seconds(stack: Stack) -> float:
    """Summed over the worker's and beat's process groups."""
    return sum(group_cpu_seconds(stack.processes[name].pid) for name in PTNUDGE_PROCESSES)


@contextlib.contextmanager
def paused(stack: Stack, names: tuple[str, ...]) -> Iterator[None]:
    """These process groups stopped (SIGSTOP) while the other design has the cores; they go on
    where they were afterwards (SIGCONT)."""
    groups = [stack.processes[name].pid for name in names if name in stack.processes]
    for pgid in groups:
        os.killpg(pgid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pgid in groups:
            os.killpg(pgid, signal.SIGCONT)


class RssSampler:
    """Samples the worker group's RSS every second in a thread; keeps the peak."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, group_rss_mb(self.pgid))
            self._stop.wait(1.0)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def redis_database() -> Iterator[str]:
    """An empty Redis database numbered 10-15 (others may be in use by tests), flushed
    before and after."""
    for number in range(10, 16):
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}")
        if client.dbsize() == 0:
            break
        client.close()
    else:
        raise RuntimeError("no empty Redis database among 10-15")
    client.flushdb()
    try:
        yield f"{REDIS_URL}/{number}"
    finally:
        client.flushdb()
        client.close()


# --- measurements ------------------------------------------------------------------------------


@dataclass
class RunResult:
    n: int
    sent: int
    statuses: dict[str, int]
    seconds: float  # due instant -> the fake's last receive time
    p50: float  # the fake's receive time - due time
    p99: float
    queued_first: float  # due -> first reminder row queued (0: claimed ahead of its time)
    queued_last: float
    fake_accepted: int
    peak_rss_mb: float
    complete: bool
    cpu_seconds: float  # every ptnudge process, from setting the due time to the last send
    early: int  # messages the fake received before their due time (must be 0)


@dataclass
class LoopResult:
    """The plain loop right before the pipeline's run and right after it (this machine's
    speed drifts, and a long burst sits between the two), then LOOP_THREADS loops."""

    before: Loop  # one plain loop
    after: Loop
    threaded_rate: float  # LOOP_THREADS loops in threads, messages/s

    @property
    def rate(self) -> float:
        """Both single loops as one: 2N messages over their summed time."""
        return 2 / (1 / self.before.rate + 1 / self.after.rate)

    @property
    def cpu_per_message(self) -> float:
        return (self.before.cpu_per_message + self.after.cpu_per_message) / 2

    @property
    def bound_by(self) -> str:
        """What limits one loop: 8 threads much faster say the client's round trips; if
        not, whichever of the client and the fake is busier (8 threads share one
        interpreter, so a client near a whole core gains nothing from them)."""
        if self.threaded_rate >= CLIENT_BOUND * self.rate:
            return "the client's round trips (8 threads are faster: the fake has room)"
        client = self.after.cpu_per_message * self.after.rate
        fake = self.after.fake_cpu_per_message * self.after.rate
        shares = f"client {client:.0%} of a core, fake {fake:.0%}"
        if client >= fake:
            return f"the client's CPU ({shares}; 8 threads share its interpreter)"
        return f"the fake server ({shares})"


def idle_tick_ms(stack: Stack, *, runs: int = IDLE_TICK_RUNS) -> list[float]:
    """``run_tick`` with nothing due, in process, as beat's task runs it in the worker: an
    engine without pre-ping (``tasks/runtime.py``) and one tick's look-ahead. The first run
    (connect, warm caches) is dropped."""
    engine = make_engine(stack.url, pre_ping=False)
    sessions = make_sessionmaker(engine)
    settings = stack.settings()
    times = []
    for _ in range(runs + 1):
        began = time.perf_counter()
        result = run_tick(settings=settings, sessions=sessions, ahead=look_ahead(settings))
        times.append((time.perf_counter() - began) * 1000)
        if result.to_send:
            raise RuntimeError("the idle tick found due reminders")
    engine.dispose()
    return times[1:]


def wait_for_sends(
    engine: sa.Engine, *, n: int, timeout: float, console: Console
) -> tuple[bool, dict[str, int]]:
    """Poll the reminders table until all N reached a final status (or the timeout)."""
    deadline = time.monotonic() + timeout
    statuses: dict[str, int] = {}
    last_print = 0.0
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT status, count(*) FROM reminders GROUP BY status"))
            statuses = {str(status): int(count) for status, count in rows}
        created = sum(statuses.values())
        if created >= n and not any(statuses.get(s) for s in OPEN_STATUSES):
            return True, statuses
        if time.monotonic() - last_print > 10:
            console.log(f"  reminders by status: {statuses or '{}'}")
            last_print = time.monotonic()
        time.sleep(1.0)
    return False, statuses


def queued_span(engine: sa.Engine, target: dt.datetime) -> tuple[float, ...]:
    """Sent count, and due -> first / last reminder queued (0 for a claim ahead of time)."""
    query = sa.text(
        """SELECT count(*),
                  extract(epoch FROM min(queued_at) - :target),
                  extract(epoch FROM max(queued_at) - :target)
           FROM reminders WHERE sent_at IS NOT NULL"""
    )
    with engine.connect() as conn:
        row = conn.execute(query, {"target": target}).one()
    return tuple(float(value or 0) for value in row)


def received_lateness(stack: Stack, target: dt.datetime) -> list[float]:
    """Each message's lateness at the provider, sorted: its receive time there - due time
    (everyone in a run is due at ``target``)."""
    return sorted(
        (dt.datetime.fromisoformat(message["received_at"]) - target).total_seconds()
        for message in stack.twilio.messages
    )


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank on sorted values (0 when there are none)."""
    if not values:
        return 0.0
    return values[min(len(values) - 1, max(0, round(fraction * len(values)) - 1))]


def run_pipeline(
    stack: Stack, engine: sa.Engine, *, n: int, timeout: float, console: Console
) -> RunResult:
    stack.twilio.reset()
    target = next_target(dt.datetime.now(dt.UTC))
    prepare_due(engine, n=n, target=target)
    console.log(f"N={n:,}: due at {target:%H:%M:%S} UTC; waiting")
    cpu_before = ptnudge_cpu_seconds(stack)  # the look-ahead dispatch runs before the due time
    with RssSampler(stack.processes["worker"].pid) as sampler:
        complete, statuses = wait_for_sends(engine, n=n, timeout=timeout, console=console)
    cpu = ptnudge_cpu_seconds(stack) - cpu_before
    sent, queued_first, queued_last = queued_span(engine, target)
    late = received_lateness(stack, target)
    return RunResult(
        n=n,
        sent=int(sent),
        queued_first=queued_first,
        queued_last=queued_last,
        statuses=statuses,
        seconds=late[-1] if late else 0.0,
        p50=percentile(late, 0.5),
        p99=percentile(late, 0.99),
        fake_accepted=len(late),
        peak_rss_mb=sampler.peak,
        complete=complete,
        cpu_seconds=cpu,
        early=sum(1 for value in late if value < 0),
    )


# --- the ETA-per-task design (bench/eta_design.py), on the same cores -------------------------


@dataclass
class EtaResult:
    accepted: int
    seconds: float  # due instant -> the fake's last receive time
    p50: float
    p99: float
    cpu_seconds: float  # its worker and pool, from the first task queued to the last send
    early: int
    complete: bool

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0


ETA_QUEUE_RATE = 1000  # tasks/s the benchmark queues at least: the due minute leaves room


def start_eta_worker(stack: Stack, *, concurrency: int | None) -> None:
    """The ETA-per-task design's worker, with a pool as large as ptnudge's; it waits stopped
    until its turn."""
    env = {
        "BENCH_ETA_BROKER_URL": stack.broker_url,
        "BENCH_ETA_DATABASE_URL": stack.url,
        "BENCH_ETA_TWILIO_URL": stack.twilio.url,
        "BENCH_ETA_FROM": FROM_NUMBER,
    }
    if concurrency:
        env["BENCH_ETA_CONCURRENCY"] = str(concurrency)
    # At WARNING, as Celery's per-task INFO lines would cost it a share of its CPU.
    stack.start(ETA_WORKER, "worker", "--loglevel", "WARNING", "--without-gossip",
                "--without-mingle", "--hostname", f"eta{os.getpid()}@%h",
                ready=READY.encode(), app="bench.eta_design", env=env)  # fmt: skip
    os.killpg(stack.processes[ETA_WORKER].pid, signal.SIGSTOP)


def run_eta_design(stack: Stack, *, n: int, timeout: float, console: Console) -> EtaResult:
    """Patients 1..N, one task each with ``eta`` at the next due minute; ptnudge's worker and
    beat are stopped meanwhile."""
    stack.twilio.reset()
    with paused(stack, PTNUDGE_PROCESSES):
        os.killpg(stack.processes[ETA_WORKER].pid, signal.SIGCONT)
        try:
            now = dt.datetime.now(dt.UTC)
            target = next_target(now + dt.timedelta(seconds=n / ETA_QUEUE_RATE))
            console.log(f"N={n:,}, ETA-per-task design: due at {target:%H:%M:%S} UTC; queueing")
            cpu_before = group_cpu_seconds(stack.processes[ETA_WORKER].pid)
            sender = Celery("eta-design-sender", broker=stack.broker_url)
            with sender.producer_or_acquire() as producer:
                for patient_id in range(1, n + 1):
                    sender.send_task(
                        TASK, args=[patient_id], eta=target, queue=QUEUE, producer=producer
                    )
            if dt.datetime.now(dt.UTC) >= target:
                raise RuntimeError("queueing the ETA tasks took past their due time")
            deadline = time.monotonic() + timeout
            while stack.twilio.message_count < n and time.monotonic() < deadline:
                time.sleep(0.5)
            cpu = group_cpu_seconds(stack.processes[ETA_WORKER].pid) - cpu_before
        finally:
            os.killpg(stack.processes[ETA_WORKER].pid, signal.SIGSTOP)
    late = received_lateness(stack, target)
    return EtaResult(
        accepted=len(late),
        seconds=late[-1] if late else 0.0,
        p50=percentile(late, 0.5),
        p99=percentile(late, 0.99),
        cpu_seconds=cpu,
        early=sum(1 for value in late if value < 0),
        complete=len(late) >= n,
    )


def plain_client(stack: Stack) -> Client:
    client = Client(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)
    # As service/transports/sms.py does: no edge/region rewriting, the fake's base URL.
    client.edge = None
    client.region = None
    client.api.base_url = stack.twilio.url
    return client


def _send_range(client: Client, numbers: range) -> None:
    for g in numbers:
        client.messages.create(to=f"+1{2000000000 + g}", from_=FROM_NUMBER, body=BODY)


@dataclass(frozen=True)
class Loop:
    rate: float  # messages/s
    cpu_per_message: float  # this process's CPU seconds (the client's)
    fake_cpu_per_message: float  # the fake server's CPU seconds


def timed_loops(stack: Stack, *, n: int, threads: int) -> Loop:
    """The same N messages from ``threads`` plain loops of twilio client calls (each its own
    client): messages/s, and the CPU a message of this process and of the fake."""
    stack.twilio.reset()
    parts = [range(1 + k, n + 1, threads) for k in range(threads)]
    workers = [
        threading.Thread(target=_send_range, args=(plain_client(stack), part)) for part in parts
    ]
    fake_stat = Path(f"/proc/{stack.twilio.pid}/stat")
    fake = cpu_seconds(fake_stat.read_text())
    began, cpu = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    fake = cpu_seconds(fake_stat.read_text()) - fake
    accepted = stack.twilio.message_count
    if accepted != n:
        raise RuntimeError(f"plain loop x{threads}: the fake accepted {accepted} of {n}")
    return Loop(n / seconds, cpu / n, fake / n)


def loop_after(stack: Stack, *, n: int, before: Loop) -> LoopResult:
    after = timed_loops(stack, n=n, threads=1)
    threaded = timed_loops(stack, n=n, threads=LOOP_THREADS)
    return LoopResult(before=before, after=after, threaded_rate=threaded.rate)


# --- report ------------------------------------------------------------------------------------


@dataclass
class Report:
    patients: int
    load_seconds: float
    idle_ms: list[float]
    idle_rss_mb: float | None  # None: no worker was started (--idle-only)
    runs: list[tuple[RunResult, LoopResult, EtaResult | None]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def ratio(value: float, target: float, *, higher_is_better: bool, aim: float = 1.0) -> str:
    """value / target, marked ok when it is at least (or under) ``aim``."""
    if value <= 0 or target <= 0:
        return "-"
    met = value >= aim * target if higher_is_better else value < aim * target
    mark = "[green]ok[/]" if met else "[red]MISSED[/]"
    return f"{value / target:.2f}x {mark}"


def print_report(report: Report, console: Console, command: str) -> None:
    table = Table(title=f"ptnudge delivery pipeline at {report.patients:,} patients")
    for column in ("metric", "value", "target", "ratio"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    idle = statistics.median(report.idle_ms)
    table.add_row(
        f"idle tick, median of {len(report.idle_ms)} (ms)",
        f"{idle:.1f} (min {min(report.idle_ms):.1f}, max {max(report.idle_ms):.1f})",
        "< 5",
        ratio(idle, 5.0, higher_is_better=False),
    )
    if report.idle_rss_mb is not None:
        table.add_row("worker RSS, idle (MB)", f"{report.idle_rss_mb:.0f}", "", "")
    for run, loop, eta in report.runs:
        add_run_rows(table, run, loop)
        if eta is not None:
            add_eta_rows(table, run, loop, eta)
    console.print(table)
    for run, _, _ in report.runs:
        console.print(
            f"N={run.n:,}: final statuses {run.statuses}; fake accepted {run.fake_accepted:,}"
        )
    for note in report.skipped:
        console.print(f"[yellow]{note}[/]")
    console.print(f"data load: {report.patients:,} patients in {report.load_seconds:.1f} s")
    console.print(f"reproduce: [bold]{command}[/]")


def add_run_rows(table: Table, run: RunResult, loop: LoopResult) -> None:
    rate = run.fake_accepted / run.seconds if run.seconds > 0 else 0.0
    tag = f"N={run.n:,}" + ("" if run.complete else " [red](incomplete)[/]")
    table.add_row(f"{tag} sent / due", f"{run.sent:,} / {run.n:,}", f"{run.n:,}", "")
    table.add_row(f"{tag} received before due", f"{run.early}", "0", "")
    table.add_row(
        f"{tag} pipeline msg/s (due -> last received)",
        f"{rate:.0f} ({run.seconds:.1f} s)",
        f">= {0.8 * loop.rate:.0f} (0.8x loop)",
        # Against the loop itself, not against the aim: "0.58x loop".
        ratio(rate, loop.rate, higher_is_better=True, aim=0.8).replace("x", "x loop", 1),
    )
    table.add_row(
        f"{tag} plain twilio loop msg/s, 1 thread (before / after)",
        f"{loop.rate:.0f} ({loop.before.rate:.0f} / {loop.after.rate:.0f})",
        "",
        "",
    )
    table.add_row(
        f"{tag} plain twilio loop msg/s, {LOOP_THREADS} threads",
        f"{loop.threaded_rate:.0f}",
        "",
        f"{loop.threaded_rate / loop.rate:.2f}x" if loop.rate else "-",
    )
    table.add_row(f"{tag} one plain loop is bound by", loop.bound_by, "", "")
    table.add_row(
        f"{tag} due -> queued, first / last (s)",
        f"{run.queued_first:.1f} / {run.queued_last:.1f}",
        "0 (claimed ahead)",
        "",
    )
    table.add_row(
        f"{tag} lateness p50 (s)",
        f"{run.p50:.2f}",
        "< 1",
        ratio(run.p50, 1.0, higher_is_better=False),
    )
    # N due at once leave one after another: even the plain loop's last message of the burst
    # is N / rate late, so half of them are at least N / 2 / rate late in any design.
    floor = run.n / 2 / loop.rate if loop.rate else 0.0
    table.add_row(
        f"{tag} lateness p50 floor at the loop's rate (s)",
        f"{floor:.2f}",
        "",
        f"p50 {run.p50 / floor:.2f}x of it" if floor else "-",
    )
    p99_aim = 1.0 + run.n / loop.rate if loop.rate else 0.0
    table.add_row(
        f"{tag} lateness p99 (s)",
        f"{run.p99:.2f}",
        f"< {p99_aim:.1f} (1 + N / loop rate)",
        ratio(run.p99, p99_aim, higher_is_better=False),
    )
    cpu = run.cpu_seconds / run.fake_accepted if run.fake_accepted else 0.0
    table.add_row(
        f"{tag} CPU ms/msg, all ptnudge processes",
        f"{cpu * 1000:.2f}",
        f"<= {3 * loop.cpu_per_message * 1000:.2f} (3x loop)",
        ratio(cpu, 3 * loop.cpu_per_message, higher_is_better=False),
    )
    table.add_row(
        f"{tag} CPU ms/msg, plain loop (1 thread)", f"{loop.cpu_per_message * 1000:.2f}", "", ""
    )
    table.add_row(f"{tag} worker RSS, peak (MB)", f"{run.peak_rss_mb:.0f}", "", "")


def add_eta_rows(table: Table, run: RunResult, loop: LoopResult, eta: EtaResult) -> None:
    tag = f"N={run.n:,} ETA-per-task design" + ("" if eta.complete else " [red](incomplete)[/]")
    rate = run.fake_accepted / run.seconds if run.seconds > 0 else 0.0
    table.add_row(f"{tag} received / before due", f"{eta.accepted:,} / {eta.early}", "", "")
    table.add_row(
        f"{tag} msg/s (due -> last received)",
        f"{eta.rate:.0f} ({eta.seconds:.1f} s)",
        "",
        f"{eta.rate / loop.rate:.2f}x loop" if loop.rate else "-",
    )
    table.add_row(
        f"N={run.n:,} pipeline msg/s vs the ETA-per-task design",
        f"{rate:.0f} vs {eta.rate:.0f}",
        "ahead of it",
        ratio(rate, eta.rate, higher_is_better=True),
    )
    table.add_row(f"{tag} lateness p50 / p99 (s)", f"{eta.p50:.2f} / {eta.p99:.2f}", "", "")
    cpu = eta.cpu_seconds / eta.accepted if eta.accepted else 0.0
    table.add_row(
        f"{tag} CPU ms/msg, its worker",
        f"{cpu * 1000:.2f}",
        "",
        f"{cpu / loop.cpu_per_message:.2f}x loop" if loop.cpu_per_message else "-",
    )


# --- main --------------------------------------------------------------------------------------


def allowed_to_run(estimate: float, *, allow_long: bool, console: Console) -> bool:
    if estimate <= LONG_RUN_SECONDS or allow_long:
        return True
    question = f"the next run is estimated at {estimate / 60:.0f} min; run it? [y/N] "
    if sys.stdin.isatty():
        return console.input(question).strip().lower() == "y"
    return False


def run_all(args: argparse.Namespace, console: Console, stack: Stack, engine: sa.Engine) -> Report:
    later = next_target(dt.datetime.now(dt.UTC)) + dt.timedelta(days=1)
    console.log(f"loading {args.patients:,} patients (bulk SQL)")
    load_seconds = load_patients(engine, patients=args.patients, later=later)
    console.log(f"loaded in {load_seconds:.1f} s; timing idle ticks")
    idle = idle_tick_ms(stack, runs=args.idle_runs)
    if args.idle_only:
        return Report(args.patients, load_seconds, idle, None)
    pool = ["--concurrency", str(args.concurrency)] if args.concurrency else []
    stack.start("worker", "worker", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                "--hostname", f"bench{os.getpid()}@%h", *pool, ready=b" ready.")  # fmt: skip
    stack.start("beat", "beat", "--loglevel", "INFO", "--schedule",
                str(stack.log_dir / "beat-schedule"), ready=b"beat: Starting")  # fmt: skip
    if args.eta_design:
        start_eta_worker(stack, concurrency=args.concurrency)
    report = Report(args.patients, load_seconds, idle, group_rss_mb(stack.processes["worker"].pid))
    rate = 0.0
    for n in sorted(set(args.n)):
        estimate = n / rate + 60 if rate else 0.0
        if not allowed_to_run(estimate, allow_long=args.allow_long, console=console):
            report.skipped.append(
                f"N={n:,} skipped: estimated {estimate / 60:.0f} min at {rate:.0f} msg/s "
                "(pass --allow-long to run it)"
            )
            continue
        timeout = max(300.0, 3 * estimate)
        console.log(f"N={n:,}: plain twilio loop before the pipeline")
        before = timed_loops(stack, n=n, threads=1)
        run = run_pipeline(stack, engine, n=n, timeout=timeout, console=console)
        console.log(f"N={n:,}: pipeline done; plain twilio loop again")
        loop = loop_after(stack, n=n, before=before)
        eta = None
        if args.eta_design:
            eta = run_eta_design(stack, n=n, timeout=timeout, console=console)
        report.runs.append((run, loop, eta))
        # The send phase's rate: the wait for the first tick is paid once, not per message.
        sending = run.seconds - run.queued_first
        rate = run.sent / sending if sending > 0 else 0.0
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="reminders due at once (repeat)")
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument(
        "--tick", type=float, default=TICK_SECONDS, help="PTNUDGE_TICK_SECONDS for beat"
    )
    parser.add_argument("--allow-long", action="store_true", help="run N expected > 10 min")
    parser.add_argument(
        "--idle-only", action="store_true", help="only load the patients and time idle ticks"
    )
    parser.add_argument(
        "--idle-runs", type=int, default=IDLE_TICK_RUNS, help="idle ticks to time (median)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="worker pool processes (default: ptnudge's own, two per CPU)",
    )
    parser.add_argument(
        "--no-eta-design",
        dest="eta_design",
        action="store_false",
        help="skip the ETA-per-task design's run after each N (bench/eta_design.py)",
    )
    args = parser.parse_args()
    args.n = [] if args.idle_only else args.n or [5000]
    if args.n and max(args.n) > args.patients:
        parser.error("--n cannot exceed --patients")
    command = " ".join([".venv/bin/python", "bench/pipeline_bench.py", *sys.argv[1:]])
    console = Console(width=max(Console().width, 120))
    signal.signal(signal.SIGTERM, _interrupt)
    name, url = create_database("ptnudge_pipebench")
    try:
        with (
            redis_database() as broker_url,
            twilio_server_process() as twilio,
            tempfile.TemporaryDirectory(prefix="ptnudge-bench-") as folder,
        ):
            upgrade(url)
            engine = make_engine(url)
            stack = Stack(
                url=url, broker_url=broker_url, twilio=twilio, log_dir=Path(folder), tick=args.tick
            )
            try:
                report = run_all(args, console, stack, engine)
            finally:
                stack.stop()
                engine.dispose()
            print_report(report, console, command)
    finally:
        drop_database(name)
    # A figure is only worth reading if every due reminder reached the provider exactly once.
    short = [
        f"N={run.n:,}: {run.fake_accepted:,}"
        for run, _, _ in report.runs
        if run.fake_accepted != run.n
    ]
    if short:
        raise SystemExit(f"the fake did not accept exactly N: {'; '.join(short)}")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
