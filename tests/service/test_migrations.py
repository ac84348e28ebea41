"""The migrations build exactly the schema the models describe, on both databases, and can
be walked back."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from service.db import MIGRATIONS_DIR, Base, upgrade
from service.models import (
    Channel,
    CheckinAnswer,
    InboundMessage,
    Patient,
    PlanItem,
    Reminder,
    ReminderStatus,
)
from tests.conftest import Database
from tests.factories import make_clinic, make_patient

NOW = dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.UTC)

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    return config


# SQLite cannot reflect an index on an expression (the family key on lower(first_name)), so
# the comparison skips it there (the test below checks it); PostgreSQL compares it in full.
@pytest.mark.filterwarnings(
    "ignore:Skipped unsupported reflection of expression-based index uq_patients_clinic_phone_name",
    "ignore:autogenerate skipping metadata-specified expression-based index",
)
def test_migrated_schema_matches_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def _tables(db: Database) -> set[str]:
    with db.engine.connect() as connection:
        return set(connection.dialect.get_table_names(connection))


def test_migrations_walk_down_to_nothing_and_back_up(database: Database) -> None:
    config = alembic_config(database.url)
    command.downgrade(config, "base")
    try:
        assert _tables(database) <= {"alembic_version"}
    finally:
        upgrade(database.url, "head")


def test_typed_reminder_links_keep_the_data_down_and_up(committed_db: Database) -> None:
    """0003 turns ``context["snooze_of"]`` into ``snooze_of_id`` and derives merged kinds from
    ``merged_into_id``; walking down writes both back into ``context``. Rows that point at
    these reminders (merged rows, inbound replies) keep pointing at them."""
    ids = _reminders_with_links(committed_db)
    config = alembic_config(committed_db.url)
    try:
        command.downgrade(config, "0002")
        contexts = dict(_select(committed_db, "id, context", "context IS NOT NULL"))
        assert {key: _json(value) for key, value in contexts.items()} == {
            ids["snooze"]: {"snooze_of": ids["original"]},
            ids["head"]: {"merged_kinds": ["leg_strength", "pelvic_tilt"]},
        }
    finally:
        upgrade(committed_db.url, "head")
    with committed_db.sessions() as session:
        snooze = session.get(Reminder, ids["snooze"])
        merged = session.scalars(
            select(Reminder.id).where(Reminder.merged_into_id == ids["head"]).order_by(Reminder.id)
        ).all()
        replies = session.scalars(select(InboundMessage.reminder_id)).all()
    assert snooze is not None
    assert snooze.snooze_of_id == ids["original"]
    assert list(merged) == [ids["tilt"], ids["legs"]]
    assert list(replies) == [ids["original"]]


def test_checkin_answers_come_with_0009_and_go_with_it(committed_db: Database) -> None:
    """0009 adds the weekly check-in answers; walking it back drops them and nothing else."""
    before = _tables(committed_db)
    assert "checkin_answers" in before
    try:
        command.downgrade(alembic_config(committed_db.url), "0008")
        assert _tables(committed_db) == before - {"checkin_answers"}
    finally:
        upgrade(committed_db.url, "head")
    with committed_db.sessions() as session, session.begin():
        patient = make_patient(session, make_clinic(session))
        session.add(CheckinAnswer(patient_id=patient.id, days=5, received_at=NOW))
    with committed_db.sessions() as session:
        assert session.scalars(select(CheckinAnswer.days)).all() == [5]


def _reminders_with_links(db: Database) -> dict[str, int]:
    """An answered reminder and its snoozed re-send, and a message with two merged into it."""
    with db.sessions() as session, session.begin():
        clinic = make_clinic(session)
        patient = make_patient(
            session,
            clinic,
            items=[
                {"kind": "stretch", "at_times": ["09:00"]},
                {"kind": "leg_strength", "at_times": ["09:05"]},
                {"kind": "pelvic_tilt", "at_times": ["09:05"]},
            ],
        )
        stretch, legs, tilt = patient.plan_items
        original = _reminder(patient, stretch, NOW, ReminderStatus.DELIVERED)
        session.add(original)
        session.flush()
        snooze = _reminder(patient, stretch, NOW + dt.timedelta(minutes=30))
        snooze.snooze_of_id = original.id
        head = _reminder(patient, stretch, NOW + dt.timedelta(days=1), ReminderStatus.SENT)
        session.add_all([snooze, head])
        session.flush()
        merged = []
        # Inserted out of plan order: the kinds come back by due time, then plan position.
        for item in (tilt, legs):
            row = _reminder(patient, item, NOW + dt.timedelta(days=1, minutes=5))
            row.status, row.merged_into_id = ReminderStatus.MERGED, head.id
            merged.append(row)
        session.add_all(merged)
        session.add(
            InboundMessage(
                channel=Channel.SMS,
                from_address=patient.phone or "",
                patient_id=patient.id,
                reminder_id=original.id,
                body="DONE",
                command="done",
            )
        )
        session.flush()
        return {
            "original": original.id,
            "snooze": snooze.id,
            "head": head.id,
            "tilt": merged[0].id,
            "legs": merged[1].id,
        }


def _reminder(
    patient: Patient,
    item: PlanItem,
    due_at: dt.datetime,
    status: ReminderStatus = ReminderStatus.SCHEDULED,
) -> Reminder:
    return Reminder(
        patient_id=patient.id,
        plan_item_id=item.id,
        kind=item.kind,
        channel=Channel.SMS,
        due_at=due_at,
        status=status,
        status_at=due_at,
    )


def _select(
    db: Database, columns: str, where: str, *, table: str = "reminders"
) -> list[tuple[Any, ...]]:
    with db.engine.connect() as connection:
        found = connection.execute(sa.text(f"SELECT {columns} FROM {table} WHERE {where}"))
        return [tuple(row) for row in found]


def _json(value: Any) -> Any:
    # Read without the model: SQLite hands back the stored text, PostgreSQL the parsed JSON.
    return json.loads(value) if isinstance(value, str) else value


def test_one_clinic_may_not_hold_one_phone_and_first_name_twice_in_any_case(
    database: Database,
) -> None:
    with database.engine.connect() as connection:
        transaction = connection.begin()
        try:
            clinic_id = connection.execute(
                sa.text(
                    "INSERT INTO clinics (slug, name, phone, timezone, region, created_at) "
                    "VALUES ('c', 'C', '+13125550199', 'UTC', 'US', :now) RETURNING id"
                ),
                {"now": NOW},
            ).scalar_one()
            for name in ("Ana", "Bo"):
                _insert_patient(connection, clinic_id, name)
            with pytest.raises(IntegrityError):
                _insert_patient(connection, clinic_id, "ANA")
        finally:
            transaction.rollback()


def _insert_patient(connection: sa.Connection, clinic_id: int, first_name: str) -> None:
    with connection.begin_nested():
        connection.execute(
            sa.text(
                "INSERT INTO patients (clinic_id, first_name, phone, timezone, locale, channel, "
                "wake_start, wake_end, program_id, start_date, max_per_day, status, created_at, "
                "updated_at) VALUES (:clinic, :name, '+13125550100', 'UTC', 'en', 'sms', "
                "'08:00:00', '20:00:00', 'stenosis-core', '2026-12-01', 10, 'active', :now, :now)"
            ),
            {"clinic": clinic_id, "name": first_name, "now": NOW},
        )


def test_alerts_written_one_per_patient_become_one_per_clinic(committed_db: Database) -> None:
    """0008: a family's reply alerted its clinic once per patient before; the first of each
    reply and clinic stays (the patient it was read for), the rest go."""
    with committed_db.sessions() as session, session.begin():
        clinic = make_clinic(session)
        ana = make_patient(session, clinic, phone="+13125550160")
        luis = make_patient(session, clinic, first_name="Luis", phone="+13125550160")
        inbound = InboundMessage(
            channel=Channel.SMS, from_address="+13125550160", body="I fell", command="warning"
        )
        session.add(inbound)
        session.flush()
        ids = (clinic.id, inbound.id, ana.id, luis.id)
    config = alembic_config(committed_db.url)
    command.downgrade(config, "0007")
    try:
        with committed_db.engine.begin() as connection:
            for patient_id in ids[2:]:
                connection.execute(
                    sa.text(
                        "INSERT INTO clinic_alerts (inbound_id, clinic_id, patient_id, to_address,"
                        " status, attempts, created_at) VALUES (:inbound, :clinic, :patient,"
                        " 'desk@example.org', 'sent', 1, :now)"
                    ),
                    {"inbound": ids[1], "clinic": ids[0], "patient": patient_id, "now": NOW},
                )
    finally:
        upgrade(committed_db.url, "head")
    assert _select(committed_db, "clinic_id, patient_id", "1 = 1", table="clinic_alerts") == [
        (ids[0], ids[2])
    ]
