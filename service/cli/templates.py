"""``ptnudge templates check``: every template rendered against worst-case context."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli import output
from service.cli.app import templates_app
from service.cli.templates_check import check_templates


@templates_app.command("check")
def check(
    folder: Annotated[
        Path | None,
        typer.Option("--dir", help="A templates folder to check; default: the shipped one."),
    ] = None,
) -> None:
    """Fail (exit 1) on an undefined variable or an SMS longer than one segment."""
    if folder is not None and not folder.is_dir():
        output.fail(f"{folder}: no such folder")
    problems = check_templates(templates_dir=folder)
    if problems:
        for problem in problems:
            output.note(str(problem))  # "sms/es/stretch.1.txt: line 1: why"
        output.fail(f"{len(problems)} template problem(s)")
    output.say("templates ok")
