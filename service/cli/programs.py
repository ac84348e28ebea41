"""``ptnudge programs list|show|validate``: the home programs patients can be enrolled in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli import output
from service.cli.app import programs_app
from service.cli.context import settings_or_exit
from service.enrollment import programs
from service.enrollment.programs import Program, ProgramError

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _load_each(extra_dir: Path | None) -> tuple[list[Program], list[str]]:
    """Every program file on its own, so one broken file does not hide the others."""
    found, broken = [], []
    for path in programs.program_files(extra_dir).values():
        try:
            found.append(programs.load_program_file(path, extra_dir))
        except ProgramError as exc:
            broken.append(str(exc))
    return found, broken


def _summary(program: Program) -> dict[str, Any]:
    return {**programs.to_document(program), "source": str(program.source)}


@programs_app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """The programs available (built-in and PTNUDGE_PROGRAMS_DIR). Exit 1 if a file is bad."""
    found, broken = _load_each(settings_or_exit().programs_dir)
    if as_json:
        output.print_json([_summary(program) for program in found])
    else:
        output.print_table(
            title="Programs",
            columns=("id", "name", "items", "max/day", "length"),
            rows=[(p.id, p.name, *_shape(p)) for p in found],
        )
    if broken:
        output.fail("\n".join(broken))


def _shape(program: Program) -> tuple[str, str, str]:
    length = f"{program.duration_days // 7}w" if program.duration_days else "open-ended"
    if program.phases:
        return f"{len(program.phases)} phases", "per phase", length
    return str(len(program.items)), str(program.max_per_day), length


@programs_app.command("show")
def show(
    program_id: Annotated[str, typer.Argument(metavar="PROGRAM")], as_json: JsonFlag = False
) -> None:
    """One program's items, as a clinic would write them."""
    with output.input_errors():
        program = programs.get_program(program_id, settings_or_exit().programs_dir)
    if as_json:
        output.print_json(_summary(program))
        return
    output.say(f"{program.id}: {program.name}")
    if program.description:
        output.say(program.description)
    for number, phase in enumerate(program.phases, start=1):
        output.say(f"phase {number}: {phase.program.id}, {phase.weeks} week(s)")
        _print_items(phase.program)
    if not program.phases:
        _print_items(program)
        if program.duration_days:
            output.say(f"lasts {programs.format_duration(program.duration_days)}")


def _print_items(program: Program) -> None:
    output.print_table(
        title=None,
        columns=("kind", "when"),
        rows=[(item.kind, item.describe()) for item in program.items],
    )
    output.say(f"at most {program.max_per_day} messages a day")


@programs_app.command("validate")
def validate(
    files: Annotated[
        list[Path] | None,
        typer.Argument(metavar="[FILE]...", help="Program files; default: every known one."),
    ] = None,
) -> None:
    """Check program files; exit 1 naming the file, the item and the reason for each bad one.
    Warn when a program asks for more than its daily limit in the default waking window."""
    paths = files or list(programs.program_files(settings_or_exit().programs_dir).values())
    problems = []
    for path in paths:
        try:
            program = _load_file(path)
        except ProgramError as exc:
            problems.append(str(exc))
            continue
        size = f"{len(program.phases)} phases" if program.phases else f"{len(program.items)} items"
        output.say(f"ok  {path.name} ({size})")
        warning = programs.fit_warning(program)
        if warning is not None:
            output.note(f"warning: {warning}")
    if problems:
        output.fail("\n".join(problems))


def _load_file(path: Path) -> Program:
    if not path.is_file():
        raise ProgramError(f"{path}: no such file")
    return programs.load_program_file(path, settings_or_exit().programs_dir)
