"""How every command answers: a Rich table for people or ``--json`` for scripts on stdout;
notes and errors on stderr; exit code 1 for bad input, 2 for bad settings (and click's own
usage errors)."""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError

from service.enrollment.clinics import NotFoundError

INPUT_ERROR_CODE = 1


def stdout() -> Console:
    # Built per call: the test runner swaps sys.stdout between invocations.
    return Console(highlight=False, soft_wrap=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def print_json(data: object) -> None:
    """Plain JSON (no colour codes, even on a terminal), dates as ISO 8601."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(value: object) -> object:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def print_table(
    *, title: str | None, columns: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    stdout().print(table)


def say(message: str) -> None:
    """A line for people on stdout (a command's result when it has no table)."""
    stdout().print(message, markup=False, soft_wrap=True)


def note(message: str) -> None:
    """A remark on stderr, so it never mixes into --json output or a captured id."""
    stderr().print(message, markup=False, soft_wrap=True)


def fail(message: str, *, code: int = INPUT_ERROR_CODE) -> NoReturn:
    for line in message.splitlines() or [""]:
        # Never wrapped: an error line is grepped for and pasted into tickets whole.
        stderr().print(f"error: {line}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def input_errors() -> Iterator[None]:
    """Turn the service layer's input errors into ``error: …`` and exit 1. Every service
    error about input is a ValueError (or NotFoundError); anything else is a bug and keeps
    its traceback."""
    try:
        yield
    except NotFoundError as exc:
        fail(str(exc.args[0]) if exc.args else "not found")
    except ValueError as exc:
        problems = getattr(exc, "problems", None)
        fail("\n".join(text for _, text in problems) if problems else str(exc))
    except OperationalError as exc:
        database_failed(exc)


def database_failed(exc: OperationalError) -> NoReturn:
    """One line for a database that cannot be used (down, wrong URL, not migrated), never
    the driver's traceback; the URL is left out (it may carry a password)."""
    fail(
        f"the database is unreachable or not migrated ({first_line(exc.orig or exc)}); "
        "check PTNUDGE_DATABASE_URL, or try `ptnudge db upgrade`"
    )


def first_line(exc: BaseException) -> str:
    """A driver's message without its continuation lines ("Is the server running…")."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (0600): reports carry patients'
    names and pain trends. An existing file is narrowed to 0600 before it is overwritten."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(text)


def iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None
