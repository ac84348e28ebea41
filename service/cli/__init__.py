"""The ``ptnudge`` admin script. Importing the command modules registers their commands."""

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

# The report group is written beside this one; add it once its module defines it.
_report_app = getattr(report, "report_app", None)
if _report_app is not None:
    app.add_typer(_report_app, name="report")
app.add_typer(replies.replies_app, name="replies")


def main() -> None:
    app()
