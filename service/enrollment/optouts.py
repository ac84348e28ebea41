"""The opt-out ledger: an address (phone in E.164, or email) that asked for nothing more.

Opt-out is per address, not per patient: families share phones, so every patient on that
number stops at once, and every message still waiting for them is canceled. The ledger is
keyed by channel and address: a text STOP opts out a phone number's texts, never an email
address that happens to read the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Protocol, TypeAlias

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session, joinedload

from service import audit
from service.db import rows_changed
from service.db.dialects import among
from service.models import (
    CANCELABLE_STATUSES,
    Channel,
    OptOut,
    Patient,
    Reminder,
    ReminderStatus,
    utcnow,
)

# A ledger entry: the channel and the normalised address.
Key: TypeAlias = tuple[Channel, str]


def normalize_address(address: str) -> str:
    return address.strip().lower() if "@" in address else address.strip()


def key(channel: Channel, address: str) -> Key:
    return (channel, normalize_address(address))


def is_opted_out(*, session: Session, address: str, channel: Channel) -> bool:
    return session.get(OptOut, key(channel, address)) is not None


def opted_out_among(
    *, session: Session, addresses: Iterable[tuple[Channel, str | None]]
) -> set[Key]:
    """Which of these (channel, address) pairs are in the ledger (normalised), in one query."""
    wanted = {key(channel, a) for channel, a in addresses if a}
    if not wanted:
        return set()
    rows = session.execute(
        select(OptOut.channel, OptOut.address).where(
            among(OptOut.address, {address for _, address in wanted}, session=session)
        )
    ).tuples()
    return {(channel, address) for channel, address in rows if (channel, address) in wanted}


class Addressed(Protocol):
    """A patient's addresses: a ``Patient``, or the dispatcher's plain row of one."""

    @property
    def phone(self) -> str | None: ...
    @property
    def email(self) -> str | None: ...


def patient_addresses(patient: Addressed) -> list[tuple[Channel, str | None]]:
    """The patient's addresses as the ledger keys them."""
    return [(Channel.SMS, patient.phone), (Channel.EMAIL, patient.email)]


def listed(opted_out: set[Key], channel: Channel, address: str | None) -> bool:
    return address is not None and key(channel, address) in opted_out


def opted_out_channels(*, session: Session, patient: Patient) -> list[Channel]:
    """The patient's channels whose address is on the ledger. Enrolling (again) does not
    lift an opt-out: only the person's own START (or a new address) does."""
    ledger = opted_out_among(session=session, addresses=patient_addresses(patient))
    found = []
    for channel in patient.channel.channels():
        address = patient.phone if channel is Channel.SMS else patient.email
        if listed(ledger, channel, address):
            found.append(channel)
    return found


def patients_at(*, session: Session, address: str, channel: Channel) -> list[Patient]:
    """The patients on the address, each with its clinic (loaded in the same query: the
    answer to a text names it)."""
    return list(session.scalars(_patients_at(address, channel)))


def patients_and_listing(
    *, session: Session, address: str, channel: Channel
) -> tuple[list[Patient], bool]:
    """``patients_at`` and whether the address is on the ledger, in one query when anyone
    is enrolled on it (a text's first reads)."""
    channel_key, normalized = key(channel, address)
    listed = (
        select(OptOut.address)
        .where(OptOut.channel == channel_key, OptOut.address == normalized)
        .exists()
    )
    rows = session.execute(_patients_at(address, channel).add_columns(listed)).tuples().all()
    if not rows:
        return [], is_opted_out(session=session, address=address, channel=channel)
    return [patient for patient, _ in rows], bool(rows[0][1])


def _patients_at(address: str, channel: Channel) -> Select[tuple[Patient]]:
    column = Patient.phone if channel is Channel.SMS else func.lower(Patient.email)
    return (
        select(Patient)
        .options(joinedload(Patient.clinic))
        .where(column == normalize_address(address))
    )


def opt_out(
    *,
    session: Session,
    address: str,
    channel: Channel,
    source: str,
    actor: str,
    detail: dict[str, object] | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Record the opt-out and cancel every open message to that address on that channel.

    Returns how many queued messages were canceled. Recording twice is harmless: the first
    source and time are kept.
    """
    address = normalize_address(address)
    now = now or utcnow()
    if session.get(OptOut, (channel, address)) is None:
        session.add(OptOut(address=address, channel=channel, source=source, created_at=now))
    patients = patients_at(session=session, address=address, channel=channel)
    canceled = 0
    if patients:
        canceled = rows_changed(
            session,
            update(Reminder)
            .where(
                Reminder.patient_id.in_([p.id for p in patients]),
                Reminder.channel == channel,
                # A reminder already claimed ("sending") may be at the provider right now;
                # it is left to finish. The send task checks the ledger again after claiming.
                Reminder.status.in_(CANCELABLE_STATUSES),
            )
            .values(status=ReminderStatus.CANCELED, status_at=now, error_detail="opted out"),
        )
    for patient in _or_nobody(patients):
        audit.record(
            session=session,
            actor=actor,
            action="opt_out",
            clinic_id=patient.clinic_id if patient else None,
            patient_id=patient.id if patient else None,
            detail={"channel": channel.value, "source": source, **(detail or {})},
        )
    return canceled


def opt_in(
    *, session: Session, address: str, channel: Channel, actor: str, source: str
) -> list[Patient]:
    """Remove the opt-out. Returns the patients on that address so the caller can resume
    their schedules from now (missed reminders are not replayed)."""
    address = normalize_address(address)
    existing = session.get(OptOut, (channel, address))
    if existing is not None:
        session.delete(existing)
    patients = patients_at(session=session, address=address, channel=channel)
    for patient in _or_nobody(patients):
        audit.record(
            session=session,
            actor=actor,
            action="opt_in",
            clinic_id=patient.clinic_id if patient else None,
            patient_id=patient.id if patient else None,
            detail={"channel": channel.value, "source": source},
        )
    return patients


def _or_nobody(patients: list[Patient]) -> list[Patient | None]:
    """One audit row per patient on the address, or one with no patient for a stranger."""
    return list(patients) if patients else [None]
