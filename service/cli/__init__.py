"""The ``ptnudge`` admin script: commands, terminal output (Rich), the demo, the checks.

May import the core packages and ``tasks``; never ``service.web``."""

from __future__ import annotations

from service.cli import (  # noqa: F401 - imported for their @command registrations
    clinics,
    db,
    ops,
    patients,
    preview,
    programs,
    replies,
    report,
    templates,
)
from service.cli.app import app

app.add_typer(report.report_app, name="report")
app.add_typer(replies.replies_app, name="replies")


def main() -> None:
    app()
