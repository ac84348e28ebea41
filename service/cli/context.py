"""What every command needs: settings (a bad one stops with a one-line error, exit 2), one
engine and session factory for the command, and who is acting (for the audit trail)."""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings, SettingsError, load_settings
from service.cli import output
from service.db import make_engine, make_sessionmaker

SETTINGS_EXIT_CODE = 2


@dataclass(frozen=True)
class CliContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    actor: str


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        output.fail(f"settings: {exc}", code=SETTINGS_EXIT_CODE)


@contextmanager
def command_context() -> Iterator[CliContext]:
    """Settings, engine and sessions for one command; the engine is closed at the end so a
    command leaves no connection behind. A database that cannot be reached is one line."""
    settings = settings_or_exit()
    engine = make_engine(settings.database_url)
    try:
        yield CliContext(settings, engine, make_sessionmaker(engine), actor())
    except OperationalError as exc:
        output.database_failed(exc)
    finally:
        engine.dispose()


def actor() -> str:
    """``cli:<os user>``: the audit trail says which account ran the command."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers): still say it was the CLI
        user = "unknown"
    return f"cli:{user}"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
