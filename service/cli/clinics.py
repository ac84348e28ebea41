"""``ptnudge clinics add|edit|list``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from service.cli import output
from service.cli.app import clinics_app
from service.cli.context import command_context
from service.db import transaction
from service.enrollment import clinics, patients
from service.models import Clinic

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def clinic_document(clinic: Clinic, patient_count: int | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": clinic.id,
        "slug": clinic.slug,
        "name": clinic.name,
        "phone": clinic.phone,
        "email": clinic.email,
        "timezone": clinic.timezone,
        "region": clinic.region,
        "created_at": output.iso(clinic.created_at),
    }
    if patient_count is not None:
        doc["patients"] = patient_count
    return doc


@clinics_app.command("add")
def add(
    *,
    slug: Annotated[str, typer.Option(help="Short id used by other commands, e.g. back-clinic.")],
    name: Annotated[str, typer.Option(help="Name patients see in messages.")],
    phone: Annotated[str, typer.Option(help="International format, e.g. +13125550100.")],
    timezone: Annotated[str, typer.Option(help="IANA zone, e.g. America/Chicago.")],
    email: Annotated[
        str | None,
        typer.Option(help="Where warning-sign alerts go (required without PTNUDGE_ALERT_EMAIL)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a clinic. Its phone's country is the default region for patients' numbers."""
    with command_context() as ctx, output.input_errors(), transaction(ctx.sessions) as session:
        clinic = clinics.add_clinic(
            session=session,
            slug=slug,
            name=name,
            phone=phone,
            timezone=timezone,
            email=email,
            actor=ctx.actor,
        )
        # After the field checks, so a bad phone is named first; refusing rolls it all back.
        clinics.require_alert_address(email=email, fallback=ctx.settings.alert_email)
        doc = clinic_document(clinic, 0)
    if as_json:
        output.print_json(doc)
    else:
        output.say(f"added clinic {doc['slug']} (id {doc['id']}, region {doc['region']})")


@clinics_app.command("edit")
def edit(
    slug: Annotated[str, typer.Argument(help="The clinic's slug.")],
    *,
    name: Annotated[str | None, typer.Option(help="Name patients see in messages.")] = None,
    phone: Annotated[str | None, typer.Option(help="International format.")] = None,
    email: Annotated[str | None, typer.Option(help="Where warning-sign alerts go.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a clinic's name, phone or alert address (validated like add, audited)."""
    with command_context() as ctx, output.input_errors(), transaction(ctx.sessions) as session:
        clinic = clinics.edit_clinic(
            session=session,
            slug=slug,
            actor=ctx.actor,
            fallback_email=ctx.settings.alert_email,
            name=name,
            phone=phone,
            email=email,
        )
        doc = clinic_document(clinic)
    if as_json:
        output.print_json(doc)
    else:
        output.say(f"updated clinic {doc['slug']}")


@clinics_app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """Every clinic, with its patient count."""
    with command_context() as ctx, ctx.sessions() as session:
        counts = patients.patients_by_clinic(session=session)
        docs = [
            clinic_document(clinic, counts.get(clinic.id, 0))
            for clinic in clinics.list_clinics(session=session)
        ]
    if as_json:
        output.print_json(docs)
        return
    output.print_table(
        title="Clinics",
        columns=("slug", "name", "phone", "timezone", "patients"),
        rows=[(d["slug"], d["name"], d["phone"], d["timezone"], d["patients"]) for d in docs],
    )
