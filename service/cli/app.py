"""The root ``ptnudge`` command and its groups. Commands live in one module per group
(``service/cli/patients.py`` …) and register themselves on these apps when imported."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="ptnudge",
    help="Reminders for physical-therapy home programs: clinics, patients, programs, previews.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
clinics_app = typer.Typer(help="Clinics that enroll patients.", no_args_is_help=True)
programs_app = typer.Typer(help="Home programs (config/programs/*.yaml).", no_args_is_help=True)
patients_app = typer.Typer(help="Enroll, import and manage patients.", no_args_is_help=True)
templates_app = typer.Typer(help="Message templates.", no_args_is_help=True)

app.add_typer(db_app, name="db")
app.add_typer(clinics_app, name="clinics")
app.add_typer(programs_app, name="programs")
app.add_typer(patients_app, name="patients")
app.add_typer(templates_app, name="templates")
