"""``ptnudge replies list|ack`` end to end: the real commands against a committed database."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import select

from service.db import transaction
from service.models import AuditEvent, InboundMessage
from service.replies.inbox import ACK_ACTION
from tests.conftest import Database, make_settings
from tests.factories import make_clinic, make_patient
from tests.service.cli.test_patients import run
from tests.service.replies.test_inbound import NOW, sms

INBOX_FIELDS = {"id", "patient_id", "received_at", "text", "reading", "open"}


def _two_replies(db: Database, tmp_path: Path) -> tuple[str, int]:
    settings = make_settings(database_url=db.url, tmp_path=tmp_path)
    with transaction(db.sessions) as session:
        clinic = make_clinic(session, slug="back-clinic")
        patient = make_patient(session, clinic)
        sms(session, settings, patient, "is it ok to swim?", now=NOW - dt.timedelta(days=3))
        sms(session, settings, patient, "my knee hurts after the walk")
        return clinic.slug, patient.id


def test_replies_list_json_gives_the_contract_fields_newest_first(
    committed_db: Database, tmp_path: Path
) -> None:
    slug, patient_id = _two_replies(committed_db, tmp_path)

    result = run(committed_db, "replies", "list", "--clinic", slug, "--json")

    assert result.exit_code == 0, result.output
    docs = json.loads(result.stdout)
    assert [d["text"] for d in docs] == ["my knee hurts after the walk", "is it ok to swim?"]
    assert docs[0].keys() >= INBOX_FIELDS
    assert {d["patient_id"] for d in docs} == {patient_id}
    assert all(d["open"] for d in docs)
    assert docs[0]["received_at"].endswith("-06:00")  # the clinic's zone (Chicago, February)


def test_replies_since_keeps_the_later_days(committed_db: Database, tmp_path: Path) -> None:
    slug, _ = _two_replies(committed_db, tmp_path)
    day = (NOW - dt.timedelta(days=1)).date().isoformat()

    result = run(committed_db, "replies", "list", "--clinic", slug, "--since", day, "--json")

    assert [d["text"] for d in json.loads(result.stdout)] == ["my knee hurts after the walk"]


def test_replies_ack_closes_one_with_a_note_in_the_audit_trail(
    committed_db: Database, tmp_path: Path
) -> None:
    _two_replies(committed_db, tmp_path)
    newest = json.loads(run(committed_db, "replies", "list", "--json").stdout)[0]["id"]

    closed = run(committed_db, "replies", "ack", str(newest), "--note", "called her back")
    still_open = json.loads(run(committed_db, "replies", "list", "--open", "--json").stdout)

    assert closed.exit_code == 0, closed.output
    assert f"closed reply {newest}" in closed.stdout
    assert newest not in [d["id"] for d in still_open]
    assert len(still_open) == 1
    with committed_db.sessions() as session:
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == ACK_ACTION)).one()
        reply = session.get_one(InboundMessage, newest)
    assert audit.actor.startswith("cli:")
    assert (audit.detail or {})["note"] == "called her back"
    assert reply.ack_note == "called her back"


def test_replies_ack_of_an_unknown_id_says_so(committed_db: Database) -> None:
    result = run(committed_db, "replies", "ack", "424242")

    assert result.exit_code == 1
    assert "no reply with id 424242" in result.stderr


def test_replies_list_table_names_the_patient_and_cuts_long_texts(
    committed_db: Database, tmp_path: Path
) -> None:
    settings = make_settings(database_url=committed_db.url, tmp_path=tmp_path)
    with transaction(committed_db.sessions) as session:
        patient = make_patient(session, make_clinic(session))
        sms(session, settings, patient, "word " * 40)

    result = run(committed_db, "replies", "list")

    assert result.exit_code == 0, result.output
    assert f"Ana ({patient.id})" in result.stdout
    assert "word word" in result.stdout
    assert "…" in result.stdout
