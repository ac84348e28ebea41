"""The real pipeline: PostgreSQL, Redis, Celery worker processes and a fake Twilio process.

Every test gets a fresh PostgreSQL database, its own Redis database number (or its own
redis-server when the test restarts it), a fake Twilio in its own process, and workers started
as ``celery -A tasks.app worker`` subprocesses configured through the environment, exactly as
in production.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from config.settings import Settings
from service.models import OPEN_STATUSES, Reminder, ReminderStatus
from tests.conftest import Database, make_settings, redis_database
from tests.fakes.twilio_server import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    RemoteTwilioServer,
    twilio_server_process,
)
from tests.log_audit import LOG_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
FROM_NUMBER = "+13125550000"
SENT = {ReminderStatus.SENT, ReminderStatus.DELIVERED}
SWEEP_RECEIVED = re.compile(r"Task ptnudge\.sweep\[[^\]]+\] received")
SWEEP_FINISHED = re.compile(r"Task ptnudge\.sweep\[[^\]]+\] (?:succeeded|raised|failed)")
# The line the ``ptnudge.sweep`` task logs when it found anything (tasks/reminders.py).
SWEEP_LINE = re.compile(
    r"sweep: queue_depth=(?P<depth>\w+) requeued_lost=(?P<lost>\d+) "
    r"reconciled_sent=(?P<sent>\d+) reconciled_unsent=(?P<unsent>\d+) unknown=(?P<unknown>\d+)"
)


def wait_until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Pipeline:
    """Everything one pipeline test needs; ``env`` configures worker processes."""

    db: Database
    broker_url: str
    twilio: RemoteTwilioServer
    tmp_path: Path
    overrides: dict[str, str] = field(default_factory=dict)
    key_prefix: str = field(default_factory=lambda: f"t{secrets.token_hex(4)}:")
    workers: list[Worker] = field(default_factory=list)
    beats: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PTNUDGE_", "TWILIO_"))
        }
        env.update(
            {
                "PTNUDGE_ENV": "test",
                "PTNUDGE_DATABASE_URL": self.db.url,
                "PTNUDGE_BROKER_URL": self.broker_url,
                "PTNUDGE_SMS_BACKEND": "twilio",
                "PTNUDGE_SECRET_KEY": "test-secret-key-0123456789",
                "PTNUDGE_PUBLIC_URL": "http://127.0.0.1:9",
                "PTNUDGE_TWILIO_API_URL": self.twilio.url,
                "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
                "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
                "TWILIO_FROM_NUMBER": FROM_NUMBER,
                "PTNUDGE_STALE_AFTER_SECONDS": "3600",
                "PTNUDGE_REQUEUE_AFTER_SECONDS": "4",
                "PTNUDGE_RECONCILE_AFTER_SECONDS": "4",
                "PTNUDGE_RETRY_BACKOFF_SECONDS": "1",
                "PTNUDGE_TWILIO_TIMEOUT_SECONDS": "2",
                "PTNUDGE_MIN_GAP_MINUTES": "0",
                # Keys of this test only: no other worker on this Redis sees its tasks.
                "PTNUDGE_BROKER_KEY_PREFIX": self.key_prefix,
                "PYTHONPATH": str(REPO_ROOT),
            }
        )
        env.update(self.overrides)
        return env

    @property
    def settings(self) -> Settings:
        values = {key: value for key, value in self.env.items() if key.startswith("PTNUDGE_")}
        values.update({k: v for k, v in self.env.items() if k.startswith("TWILIO_")})
        values.pop("PTNUDGE_DATABASE_URL")
        values.pop("PTNUDGE_ENV")
        return make_settings(database_url=self.db.url, tmp_path=self.tmp_path, **values)

    def start_worker(
        self, *, concurrency: int = 2, name: str | None = None, queues: str | None = None
    ) -> Worker:
        """A worker; ``queues`` (``--queues``) as compose's two workers take them, else
        every queue the app declares."""
        worker = Worker(self.env, self.tmp_path, concurrency=concurrency, name=name, queues=queues)
        worker.start()
        self.workers.append(worker)
        return worker

    def start_beat(self, name: str) -> subprocess.Popen[bytes]:
        """``celery -A tasks.app beat`` with this pipeline's environment, logging to
        ``LOG_DIR/<name>.log``; stopped at the end of the test."""
        command = [
            sys.executable, "-m", "celery", "-A", "tasks.app", "beat", "--loglevel", "INFO",
            "--schedule", str(self.tmp_path / f"{name}-schedule"),
        ]  # fmt: skip
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with (LOG_DIR / f"{name}.log").open("ab") as log:
            beat = subprocess.Popen(command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=log)
        self.beats.append(beat)
        return beat

    def stop_beats(self) -> None:
        for beat in self.beats:
            if beat.poll() is None:
                beat.terminate()
                beat.wait(timeout=30)

    def open_reminders(self) -> int:
        with self.db.sessions() as session:
            query = select(func.count()).where(Reminder.status.in_(OPEN_STATUSES))
            return int(session.scalar(query) or 0)

    def sweeps_running(self) -> int:
        """``ptnudge.sweep`` tasks a live worker has received and not yet finished."""
        running = 0
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                log = worker.log()
                running += len(SWEEP_RECEIVED.findall(log)) - len(SWEEP_FINISHED.findall(log))
        return running

    def reminders(self) -> list[Reminder]:
        with self.db.sessions() as session:
            return list(session.scalars(select(Reminder)))

    def sweeps(self) -> SweepTotals:
        """What the ``ptnudge.sweep`` tasks run by this test's workers did, from their logs."""
        totals = SweepTotals()
        for worker in self.workers:
            for found in SWEEP_LINE.finditer(worker.log()):
                totals.depths.append(found["depth"])
                totals.requeued_lost += int(found["lost"])
                totals.reconciled_sent += int(found["sent"])
                totals.reconciled_unsent += int(found["unsent"])
                totals.unknown += int(found["unknown"])
        return totals

    def assert_exactly_once(self, expected: Collection[str]) -> None:
        """Each expected phone got exactly one message and no other phone got any; in the
        database each has exactly one sent reminder, and the sent reminders are the
        provider's messages, one for one."""
        messages = self.twilio.messages
        sent_to = collections.Counter(message["to"] for message in messages)
        duplicates = {to: n for to, n in sent_to.items() if n > 1}
        assert not duplicates, f"phones that got a message more than once: {len(duplicates)}"
        assert set(sent_to) == set(expected)
        rows = [row for row in self.reminders() if row.status in SENT]
        assert collections.Counter(row.to_address for row in rows) == sent_to
        assert {row.provider_id for row in rows} == {message["sid"] for message in messages}


@dataclass
class SweepTotals:
    depths: list[str] = field(default_factory=list)  # the send queue's depth at each sweep
    requeued_lost: int = 0  # queued reminders whose task the broker lost, queued again
    reconciled_sent: int = 0  # left mid-send, found at the provider: marked sent
    reconciled_unsent: int = 0  # left mid-send, not at the provider: queued again
    unknown: int = 0


class Worker:
    """``celery -A tasks.app worker`` in its own process group (so kill -9 takes the pool)."""

    def __init__(
        self,
        env: dict[str, str],
        tmp_path: Path,
        *,
        concurrency: int,
        name: str | None,
        queues: str | None = None,
    ) -> None:
        self.env = env
        self.queues = queues
        self.name = name or f"w{random.randrange(10**6)}"
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{self.name}.log"
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "celery", "-A", "tasks.app", "worker",
            "--loglevel", "INFO", "--concurrency", str(self.concurrency),
            "--hostname", f"{self.name}@%h", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        if self.queues:
            command += ["--queues", self.queues]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        wait_until(self._ready, timeout=60, what=f"worker {self.name} to start")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited early:\n{self.log_path.read_text()[-3000:]}")
        return b" ready." in self.log_path.read_bytes()

    def kill9(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def freeze(self) -> None:
        """Stop the worker and its pool where they are (SIGSTOP): as busy as it can be."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
            os.killpg(self.process.pid, signal.SIGCONT)  # a frozen worker acts on it only so
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill9()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def redis_broker_url() -> Iterator[str]:
    """A Redis database of this test's own, emptied before and after."""
    with redis_database() as url:
        yield url


class RedisServer:
    """A redis-server of the test's own, which the test may stop and start again."""

    def __init__(self, tmp_path: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError("redis-server is not installed; the broker-restart test needs it")
        self.binary = binary
        self.port = free_port()
        self.dir = tmp_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _pings(client), timeout=20, what="redis-server to start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def fake_twilio() -> Iterator[RemoteTwilioServer]:
    with twilio_server_process() as server:
        yield server


@pytest.fixture
def pipeline(
    postgres_db: Database, redis_broker_url: str, fake_twilio: RemoteTwilioServer, tmp_path: Path
) -> Iterator[Pipeline]:
    pipe = Pipeline(db=postgres_db, broker_url=redis_broker_url, twilio=fake_twilio,
                    tmp_path=tmp_path)  # fmt: skip
    yield pipe
    pipe.stop_beats()
    for worker in pipe.workers:
        worker.stop()
