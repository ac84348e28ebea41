"""Bulk loading stores exactly the values given, on both databases: rows joined from shared
parts, awkward characters, enums, JSON and NULL, and duplicates skipped on insert."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import Base
from service.db.dialects import bulk_loader
from service.models import AuditEvent, Channel, OptOut
from tests.factories import make_clinic

NOW = dt.datetime(2026, 11, 25, 14, 0, tzinfo=dt.UTC)
AUDIT = Base.metadata.tables[AuditEvent.__tablename__]
OPT_OUTS = Base.metadata.tables[OptOut.__tablename__]


def test_rows_joined_from_a_cell_and_a_shared_row_store_the_plain_values(
    session: Session,
) -> None:
    clinic = make_clinic(session)
    loader = bulk_loader(session)
    columns = ("actor", "action", "detail", "at", "patient_id")
    awkward = {"note": 'tab\there, newline\nthere, back\\slash, "quote"', "n": [1, 2]}
    shared = loader.row(AUDIT, columns, ("cli:a\tb", "import", awkward, NOW, None))
    rows = [loader.join((loader.cell(clinic.id), shared)) for _ in range(2)]

    loader.write(session, AUDIT, ("clinic_id", *columns), rows)

    stored = session.execute(
        select(AuditEvent.actor, AuditEvent.detail, AuditEvent.at, AuditEvent.patient_id).where(
            AuditEvent.clinic_id == clinic.id, AuditEvent.action == "import"
        )
    ).all()
    assert [tuple(row) for row in stored] == [("cli:a\tb", awkward, NOW, None)] * 2


def test_insert_new_skips_stored_rows_and_returns_the_inserted_ones(session: Session) -> None:
    session.add(OptOut(address="+13125550100", channel=Channel.SMS, source="sms_keyword"))
    session.flush()
    loader = bulk_loader(session)
    columns = ("address", "channel", "source", "created_at")

    inserted = loader.insert_new(
        session,
        OPT_OUTS,
        columns,
        [
            ("+13125550100", Channel.SMS, "import", NOW),
            ("ana@example.org", Channel.EMAIL, "import", NOW),
        ],
        unique=("channel", "address"),
        returning=(OPT_OUTS.c.address, OPT_OUTS.c.channel),
    )

    assert inserted == [("ana@example.org", Channel.EMAIL)]
    sources = dict(session.execute(select(OptOut.address, OptOut.source)).tuples().all())
    assert sources == {"+13125550100": "sms_keyword", "ana@example.org": "import"}


def test_insert_new_can_run_twice_in_one_transaction(session: Session) -> None:
    """The dispatcher inserts once per batch, and a caller may run batches in one
    transaction."""
    loader = bulk_loader(session)
    columns = ("address", "channel", "source", "created_at")

    for address in ("+13125550100", "+13125550101"):
        loader.insert_new(
            session,
            OPT_OUTS,
            columns,
            [(address, Channel.SMS, "import", NOW)],
            unique=("channel", "address"),
            returning=(OPT_OUTS.c.address,),
        )

    stored = session.scalars(select(OptOut.address).order_by(OptOut.address)).all()
    assert stored == ["+13125550100", "+13125550101"]
