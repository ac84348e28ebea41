"""Inbound webhook benchmark: N signed Twilio webhooks against ``uvicorn service.web:app``.

A burst of replies follows every 09:00 reminder, and Twilio waits 15 s for an answer before
it retries. This starts one ``uvicorn service.web:app`` process on PostgreSQL (a scratch
database with ``--patients`` patients, each with one delivered reminder to answer), then
POSTs ``--n`` signed ``/twilio/inbound`` webhooks, ``--concurrency`` at a time, in a mix
patients really send: DONE (60 %), free text (25 %), STOP (5 %) and Twilio's retries of
a message already sent (10 %, same MessageSid). It prints requests/s, latency p50/p99,
errors, and the rows stored against the distinct MessageSids sent (every webhook must be
stored exactly once), and the CPU each request cost the server (every uvicorn process)
and the load generator; the exit status is 1 when any request failed or a row is missing or
doubled.

    .venv/bin/python bench/inbound_bench.py --n 2000 --concurrency 50

Aim (this 2-core machine): ≥ 300 requests/s and p99 < 500 ms at concurrency 50.
Needs PostgreSQL (127.0.0.1:5432, user postgres, trust); the scratch database is dropped at
the end, also on errors and Ctrl-C. Profile the server with ``--profile DIR`` (py-spy, when
installed, records the uvicorn process's stacks to DIR/inbound.folded: one collapsed stack a
line with its sample count, for speedscope or flamegraph.pl, or ``sort -k2 -n`` by hand).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from twilio.request_validator import RequestValidator

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.pipeline_bench import group_cpu_seconds, load_patients  # noqa: E402 - after the path fix
from bench.scratch import create_database, drop_database  # noqa: E402
from service.db import upgrade  # noqa: E402

AUTH_TOKEN = "bench-auth-token-0123456789"
PUBLIC_URL = "https://ptnudge.bench.example"
PATH = "/twilio/inbound"
FREE_TEXTS = (
    "can I do the stretches after my shot?",
    "running late today, will do them tonight",
    "my left knee is a bit sore after walking",
    "what time is my next visit?",
)
MIX = (("done", 0.60), ("text", 0.25), ("stop", 0.05), ("retry", 0.10))
# As deployed (Dockerfile): the server keeps an idle connection open longer than any client
# or proxy does (httpx: 5 s, Caddy: 2 min), so it is never the server that closes one the
# client is sending on. With uvicorn's default (5 s, equal to httpx's), a few webhooks in
# a run were lost that way: a ReadError, nothing stored, nothing in the server's log.
KEEP_ALIVE_SECONDS = 150
AIM_RPS = 300.0
AIM_P99_MS = 500.0

# One delivered, unanswered stretch reminder per patient, sent 20 minutes ago: a DONE finds
# it and records the outcome, as it would after the 09:00 reminder.
REMINDERS_SQL = """
INSERT INTO reminders (patient_id, plan_item_id, kind, channel, actionable, due_at, status,
    status_at, sent_at, attempts)
SELECT g, g, 'stretch', 'sms', true, :due, 'delivered', :due, :due, 1
FROM generate_series(1, :n) AS g
"""


@dataclass(frozen=True)
class Webhook:
    sid: str
    sender: str
    body: str


def webhooks(*, n: int, patients: int, seed: int) -> list[Webhook]:
    """N webhooks in the benchmark's mix; a retry repeats an earlier message exactly."""
    rng = random.Random(seed)
    sent: list[Webhook] = []
    kinds, weights = zip(*MIX, strict=True)
    for index in range(n):
        kind = rng.choices(kinds, weights)[0]
        if kind == "retry" and sent:
            sent.append(rng.choice(sent))
            continue
        sender = f"+1{2000000000 + rng.randint(1, patients)}"
        body = {"done": "Done!", "stop": "STOP"}.get(kind) or rng.choice(FREE_TEXTS)
        sent.append(Webhook(f"SM{index:032x}", sender, body))
    return sent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def web_server(
    url: str, *, workers: int, profile_dir: Path | None, log_dir: Path
) -> Iterator[tuple[str, int]]:
    """``uvicorn service.web:app`` (``--workers`` processes) on a free port, in a process
    group of its own; yields its base URL and the group's id (its CPU is read by group)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PTNUDGE_", "TWILIO_"))}
    env |= {
        "PTNUDGE_ENV": "test",
        "PTNUDGE_DATABASE_URL": url,
        "PTNUDGE_PUBLIC_URL": PUBLIC_URL,
        "PTNUDGE_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "PTNUDGE_SMS_BACKEND": "console",
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PYTHONPATH": str(REPO_ROOT),
    }
    command = [sys.executable, "-m", "uvicorn", "service.web:app", "--port", str(port),
               "--no-access-log", "--log-level", "warning", "--workers", str(workers),
               "--timeout-keep-alive", str(KEEP_ALIVE_SECONDS)]  # fmt: skip
    log = (log_dir / "uvicorn.log").open("wb")
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log, start_new_session=True
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}", process, log_dir / "uvicorn.log")
        with profiler(process.pid, profile_dir):
            yield f"http://127.0.0.1:{port}", process.pid
    finally:
        stop(process)
        log.close()


@contextlib.contextmanager
def profiler(pid: int, profile_dir: Path | None) -> Iterator[None]:
    """py-spy sampling the server 50 times a second while the webhooks are sent, only the
    thread that holds the GIL (``--gil``: where the CPU goes, not the threads waiting for
    the database or the pool); Ctrl-C makes it write its collapsed stacks. py-spy is looked
    up on PATH: ``PATH=.venv/bin:$PATH``."""
    if profile_dir is None or not shutil.which("py-spy"):
        yield
        return
    profile_dir.mkdir(parents=True, exist_ok=True)
    out = profile_dir / "inbound.folded"
    spy = subprocess.Popen(
        [
            "py-spy",
            "record",
            "--gil",
            "--format",
            "raw",
            "--rate",
            "50",
            "-o",
            str(out),
            "--pid",
            str(pid),
        ]
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_up(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(base + "/metrics", timeout=1)
            return
        time.sleep(0.2)
    raise RuntimeError("uvicorn did not start within 60 s")


@dataclass
class Outcome:
    seconds: float
    latencies: list[float]
    failures: Counter[str]  # what each failed request got: a status code or an exception
    server_cpu: float = 0.0  # CPU seconds of every uvicorn process while the webhooks ran
    client_cpu: float = 0.0  # the load generator's

    @property
    def errors(self) -> int:
        return sum(self.failures.values())


def signed_requests(hooks: list[Webhook], host: str) -> list[bytes]:
    """Each webhook as the bytes of its HTTP/1.1 request, signed as Twilio signs: prepared
    before the clock starts, so the load generator spends its CPU on sending, not signing."""
    validator = RequestValidator(AUTH_TOKEN)
    prepared = []
    for hook in hooks:
        params = {"MessageSid": hook.sid, "SmsSid": hook.sid, "From": hook.sender,
                  "To": "+13125550000", "Body": hook.body, "NumMedia": "0"}  # fmt: skip
        body = urllib.parse.urlencode(params).encode()
        signature = validator.compute_signature(PUBLIC_URL + PATH, params)
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nX-Twilio-Signature: {signature}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        prepared.append(head.encode() + body)
    return prepared


async def post_all(base: str, hooks: list[Webhook], *, concurrency: int) -> Outcome:
    """The webhooks over ``concurrency`` kept-alive connections, each sending its next
    request when the last one is answered (as many Twilio deliveries in flight at once).

    A few lines of HTTP/1.1 over asyncio streams rather than an HTTP client library: httpx
    spent ~2.6 ms of CPU a request here, which on two cores is CPU the server under test
    does not get. A connection the server closed, or any other failure, is counted and the
    connection opened again."""
    url = urllib.parse.urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    pending = iter(signed_requests(hooks, f"{host}:{port}"))
    latencies: list[float] = []
    failures: Counter[str] = Counter()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for request in pending:
                began = time.perf_counter()
                try:
                    status = await exchange(reader, writer, request)
                    failure = "" if status == 200 else f"HTTP {status}"
                except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                    failure = type(error).__name__
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                latencies.append(time.perf_counter() - began)
                if failure:
                    failures[failure] += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return Outcome(time.perf_counter() - began, latencies, failures)


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one request and read its whole response; returns the status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


def measured(base: str, group: int, hooks: list[Webhook], *, concurrency: int) -> Outcome:
    """``post_all`` with the CPU it cost the server and the load generator."""
    server, client = group_cpu_seconds(group), time.process_time()
    outcome = asyncio.run(post_all(base, hooks, concurrency=concurrency))
    outcome.server_cpu = group_cpu_seconds(group) - server
    outcome.client_cpu = time.process_time() - client
    return outcome


def stored_rows(engine: sa.Engine) -> tuple[int, int]:
    """Rows in inbound_messages, and distinct provider ids among them."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT provider_id) FROM inbound_messages")
        ).one()
    return int(row[0]), int(row[1])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(
    args: argparse.Namespace, outcome: Outcome, rows: tuple[int, int], distinct: int
) -> bool:
    rps = len(outcome.latencies) / outcome.seconds
    p50 = statistics.median(outcome.latencies) * 1000
    p99 = percentile(outcome.latencies, 0.99) * 1000
    exact = rows == (distinct, distinct)
    processes = "one uvicorn process" if args.workers == 1 else f"uvicorn --workers {args.workers}"
    table = Table(title=f"Inbound webhooks: {processes} on PostgreSQL, N={args.n}, "
                  f"concurrency {args.concurrency}")  # fmt: skip
    for column in ("measure", "measured", "aim", "met?"):
        table.add_column(column)
    table.add_row("requests/s", f"{rps:,.0f}", f"≥ {AIM_RPS:.0f}", _met(rps >= AIM_RPS))
    table.add_row("latency p50", f"{p50:,.0f} ms", "", "")
    table.add_row("latency p99", f"{p99:,.0f} ms", f"< {AIM_P99_MS:.0f} ms", _met(p99 < AIM_P99_MS))
    requests = max(1, len(outcome.latencies))
    table.add_row(
        "server CPU per request", f"{outcome.server_cpu / requests * 1000:.2f} ms", "", ""
    )
    table.add_row("load generator CPU per request",
                  f"{outcome.client_cpu / requests * 1000:.2f} ms", "", "")  # fmt: skip
    table.add_row("errors", str(outcome.errors), "0", _met(outcome.errors == 0))
    table.add_row("rows stored / distinct sids", f"{rows[0]} ({rows[1]} distinct) / {distinct}",
                  "each once", _met(exact))  # fmt: skip
    console = Console()
    console.print(table)
    console.print(f"reproduce: .venv/bin/python bench/inbound_bench.py --n {args.n} "
                  f"--concurrency {args.concurrency} --patients {args.patients} "
                  f"--workers {args.workers}")  # fmt: skip
    return exact and outcome.errors == 0


def show_failures(outcome: Outcome, log: Path) -> None:
    """What the failed requests got, and what the server said about them (its warnings,
    errors and tracebacks; the INFO line of every reply is left out)."""
    console = Console(stderr=True)
    console.print(f"failed requests: {dict(outcome.failures)}", markup=False)
    said = [line for line in log.read_text().splitlines() if " INFO " not in line]
    console.print("\n".join(said[-80:]) or "(the server logged nothing about them)", markup=False)


def _met(ok: bool) -> str:
    return "yes" if ok else "no"


def run(args: argparse.Namespace) -> bool:
    name, url = create_database("ptnudge_inbound_bench")
    try:
        upgrade(url)
        engine = sa.create_engine(url)
        now = dt.datetime.now(dt.UTC)
        load_patients(engine, patients=args.patients, later=now + dt.timedelta(hours=6))
        with engine.begin() as conn:
            conn.execute(sa.text(REMINDERS_SQL),
                         {"n": args.patients, "due": now - dt.timedelta(minutes=20)})  # fmt: skip
        hooks = webhooks(n=args.n, patients=args.patients, seed=args.seed)
        with (
            tempfile.TemporaryDirectory() as logs,
            web_server(url, workers=args.workers, profile_dir=args.profile, log_dir=Path(logs)) as (
                base,
                group,
            ),
        ):
            outcome = measured(base, group, hooks, concurrency=args.concurrency)
            if outcome.errors:
                show_failures(outcome, Path(logs) / "uvicorn.log")
        distinct = len({hook.sid for hook in hooks})
        ok = report(args, outcome, stored_rows(engine), distinct)
        engine.dispose()
        return ok
    finally:
        drop_database(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="webhooks to send (default 2000)")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight")
    parser.add_argument("--patients", type=int, default=5000, help="patients enrolled")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--seed", type=int, default=7, help="seed of the webhook mix")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy flame graph folder")
    args = parser.parse_args()
    sys.exit(0 if run(args) else 1)


if __name__ == "__main__":
    main()
