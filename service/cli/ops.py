"""Operations commands: tick, run, demo, status."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from kombu.exceptions import OperationalError as BrokerError
from rich.console import Console

from service.cli import output
from service.cli.app import app
from service.cli.context import command_context, settings_or_exit
from service.cli.demo import ZONE, run_demo
from service.db import upgrade
from service.delivery.status import collect_status
from service.delivery.ticking import run_tick


@app.command()
def tick(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """One dispatcher pass for what is due now (beat's pass, every PTNUDGE_TICK_SECONDS,
    also claims what falls due before its next tick)."""
    from tasks.app import create_app  # noqa: PLC0415 - the broker is needed only here
    from tasks.reminders import enqueue_sends  # noqa: PLC0415

    with command_context() as ctx:
        started = time.perf_counter()
        celery = create_app(ctx.settings)
        try:
            result = run_tick(
                settings=ctx.settings,
                sessions=ctx.sessions,
                after_commit=lambda batch: enqueue_sends(celery, batch.to_send),
            )
        except BrokerError as exc:
            # The batch is committed as queued: the sweeper queues it again once the
            # broker is back, so nothing is lost by stopping here.
            output.fail(
                f"the broker is unreachable ({output.first_line(exc)}); check "
                "PTNUDGE_BROKER_URL. Reminders already dispatched are queued again by the sweeper"
            )
        summary = {
            "due_items": result.items,
            "reminders_created": result.created,
            "queued": len(result.to_send),
            "expired": result.expired,
            "merged": result.merged,
            "milliseconds": round((time.perf_counter() - started) * 1000, 1),
        }
    if as_json:
        output.print_json(summary)
    else:
        output.print_table(title="tick", columns=("", "value"), rows=summary.items())


@app.command()
def run(
    port: Annotated[int, typer.Option(help="Port of the web app.")] = 8000,
    host: Annotated[str, typer.Option(help="Address the web app listens on.")] = "127.0.0.1",
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
) -> None:
    """Worker, beat and web in one command, on the configured backends.

    On embedded defaults (SQLite, the SQLite broker, console transports) nothing else needs to
    run. Ctrl-C stops all three.
    """
    settings = settings_or_exit()
    if settings.database_url.startswith("sqlite"):
        upgrade(settings.database_url)
    _share_metrics_folder()
    # Our own interpreter and fixed arguments: nothing here comes from outside.
    processes = {
        name: subprocess.Popen(cmd)  # noqa: S603
        for name, cmd in _commands(host=host, port=port, concurrency=concurrency).items()
    }
    # A SIGTERM (a service manager, `timeout`) stops the children too, like Ctrl-C does.
    signal.signal(signal.SIGTERM, _stop_requested)
    console = Console(stderr=True)
    console.print(f"ptnudge running: web on http://{host}:{port}, worker and beat. Ctrl-C stops.")
    _supervise(processes, console)
    failed = any(process.returncode not in (0, -signal.SIGTERM) for process in processes.values())
    raise typer.Exit(1 if failed else 0)


def _commands(*, host: str, port: int, concurrency: int) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "worker": [python, "-m", "celery", "-A", "tasks.app", "worker", "--loglevel", "INFO",
                   "--concurrency", str(concurrency)],
        "beat": [python, "-m", "celery", "-A", "tasks.app", "beat", "--loglevel", "INFO",
                 "--schedule", str(Path(".ptnudge") / "celerybeat-schedule")],
        "web": [python, "-m", "uvicorn", "service.web:app", "--host", host, "--port", str(port)],
    }  # fmt: skip


def _share_metrics_folder() -> None:
    # Web, worker and beat share a metrics folder: the web app's /metrics shows the
    # worker's counters too. The children inherit the variable.
    metrics_dir = Path(".ptnudge") / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())


def _supervise(processes: dict[str, subprocess.Popen[bytes]], console: Console) -> None:
    """Wait until one process stops or Ctrl-C (or SIGTERM); then stop them all, gently first."""
    try:
        while all(process.poll() is None for process in processes.values()):
            time.sleep(0.5)
        stopped = [name for name, process in processes.items() if process.poll() is not None]
        console.print(f"[red]{', '.join(stopped)} stopped; stopping the rest[/]")
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@app.command()
def demo(
    day: Annotated[
        str | None,
        typer.Option(
            help="The local day to play (YYYY-MM-DD); default yesterday, a finished day that "
            "reports and replies can be read for."
        ),
    ] = None,
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its SQLite files.")] = Path(
        ".ptnudge"
    )
    / "demo",
) -> None:
    """A guided, fast-forwarded day: a demo clinic and patient, the messages as they go out,
    the patient's replies, the adherence at the end, and commands to try next on its data.
    Needs no server."""
    if day is None:
        played = dt.datetime.now(ZoneInfo(ZONE)).date() - dt.timedelta(days=1)
    else:
        try:
            played = dt.date.fromisoformat(day)
        except ValueError:
            output.fail(f"--day {day!r} is not a date like 2026-12-01")
    os.environ.setdefault("PTNUDGE_ENV", "development")
    run_demo(console=Console(), workdir=workdir, day=played)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Queue depth, due backlog, last tick, reminders by status in the last 24 h, opt-outs
    today, clinic alerts not yet sent."""
    with command_context() as ctx, ctx.sessions() as session:
        found = collect_status(session=session, settings=ctx.settings)
    if as_json:
        output.print_json(found)
    else:
        output.print_table(title="ptnudge status", columns=("", "value"), rows=_flat(found))


def _flat(found: dict[str, object], prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in found.items():
        if isinstance(value, dict):
            rows.extend(_flat(value, prefix=f"{prefix}{key}."))
        else:
            rows.append((prefix + key, value))
    return rows


def _stop_requested(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
