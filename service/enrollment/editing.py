"""Changing a patient after enrollment (``ptnudge patients edit``).

An edit is held to the enrollment's rules by the enrollment's own code: the changes are laid
over the patient's current details and the whole is validated as an enrollment request, so
a bad value gets exactly the error ``patients enroll`` would give. Only the future moves:
reminders already sent or queued stay as they are; the plan items' next due times follow
the new plan.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from service import audit
from service.enrollment import optouts, plans
from service.enrollment.patients import (
    EnrollmentRequest,
    ProgramBook,
    ValidEnrollment,
    consent_audit_values,
    refuse_ended,
    same_patient,
    validate,
)
from service.enrollment.programs import Program
from service.masking import mask_recipient
from service.models import AuditEvent, Channel, Patient


@dataclass(frozen=True)
class EditRequest:
    """What staff asked to change, unparsed; None (or no tunings) keeps the current value.
    An empty ``email`` or ``phone`` clears it."""

    first_name: str | None = None
    program: str | None = None
    wake: str | None = None
    timezone: str | None = None
    locale: str | None = None
    channel: str | None = None
    phone: str | None = None
    email: str | None = None
    tune: tuple[str, ...] = ()
    max_per_day: str | None = None
    end: str | None = None
    consent_method: str | None = None


@dataclass(frozen=True)
class Edited:
    patient: Patient
    changes: dict[str, tuple[Any, Any]]  # field -> (before, after), addresses masked
    opted_out: tuple[str, ...] = ()  # new addresses the opt-out ledger holds (masked)


def edit(
    *,
    session: Session,
    patient: Patient,
    request: EditRequest,
    actor: str,
    now: dt.datetime,
    programs_dir: Path | None = None,
) -> Edited:
    """Change what the request gives.

    1. Refuse a removed or completed patient (enrolling them again re-activates them).
    2. Lay the changes over the current details and validate the whole as an enrollment
       (EnrollmentError, the same messages); refuse the phone and first name of another
       patient of the clinic (DuplicateError). Nothing is stored on an error.
    3. Store the new details; a new phone or email is a new address: consent is recorded
       again, and the opt-out ledger is checked (it still wins at send time).
    4. Rebuild the plan from today's phase of the tuned program, recompute next due times.
    5. Audit "edit" with the fields' before and after values.
    """
    refuse_ended(patient)
    merged = merged_request(patient, request)
    programs = ProgramBook(programs_dir)
    valid = validate(merged, clinic=patient.clinic, now=now, programs=programs)
    same_patient(session=session, clinic=patient.clinic, valid=valid, exclude=patient.id)
    before = editable(patient)
    _store(patient, valid)
    after = editable(patient)
    changes = {name: (was, after[name]) for name, was in before.items() if was != after[name]}
    if not changes:
        return Edited(patient, {})
    new_addresses = [
        (channel, after[name])
        for name, channel in (("phone", Channel.SMS), ("email", Channel.EMAIL))
        if name in changes and after[name]
    ]
    if new_addresses:
        _record_consent(session=session, patient=patient, valid=valid, actor=actor, now=now)
    _replan(session=session, patient=patient, program=valid.program, now=now)
    shown = {name: (_shown(name, was), _shown(name, new)) for name, (was, new) in changes.items()}
    _audit_edit(session=session, patient=patient, actor=actor, shown=shown)
    opted_out = optouts.opted_out_among(session=session, addresses=new_addresses)
    return Edited(
        patient, shown, tuple(mask_recipient(address) for _, address in sorted(opted_out))
    )


def _audit_edit(
    *, session: Session, patient: Patient, actor: str, shown: dict[str, tuple[Any, Any]]
) -> None:
    audit.record(
        session=session,
        actor=actor,
        action="edit",
        clinic_id=patient.clinic_id,
        patient_id=patient.id,
        detail={
            "before": {name: pair[0] for name, pair in shown.items()},
            "after": {name: pair[1] for name, pair in shown.items()},
        },
    )


def merged_request(patient: Patient, request: EditRequest) -> EnrollmentRequest:
    """The enrollment request the patient would make today, with the changes applied. A new
    program brings its own length unless an end date is given."""
    end = request.end
    if end is None and request.program is None and patient.end_date is not None:
        end = patient.end_date.isoformat()
    max_per_day = request.max_per_day
    if max_per_day is None and patient.tuned_max_per_day is not None:
        max_per_day = str(patient.tuned_max_per_day)
    return EnrollmentRequest(
        first_name=_given(request.first_name, patient.first_name) or "",
        phone=_given(request.phone, patient.phone),
        email=_given(request.email, patient.email),
        timezone=_given(request.timezone, patient.timezone),
        program=_given(request.program, patient.program_id),
        channel=_given(request.channel, patient.channel.value),
        wake=_given(request.wake, f"{patient.wake_start:%H:%M}-{patient.wake_end:%H:%M}"),
        locale=_given(request.locale, patient.locale),
        start=patient.start_date.isoformat(),
        tune=merge_tunings(tuple(patient.tunings or ()), request.tune),
        max_per_day=max_per_day,
        consent_method=request.consent_method,
        end=end,
    )


def _given(value: str | None, current: str | None) -> str | None:
    return current if value is None else value


def merge_tunings(current: tuple[str, ...], new: tuple[str, ...]) -> tuple[str, ...]:
    """The patient's tunings with the new ones after them; a new ``stretch.at=…`` replaces
    an earlier ``stretch.at=…`` (the later one would win anyway; the list stays short)."""
    merged: dict[str, str] = {}
    for given in (*current, *new):
        tuning = given.strip()
        if tuning:
            key = tuning.partition("=")[0]
            merged.pop(key, None)
            merged[key] = tuning
    return tuple(merged.values())


def editable(patient: Patient) -> dict[str, Any]:
    """The fields an edit may change, by the names of the ``patients edit`` options."""
    return {
        "first_name": patient.first_name,
        "phone": patient.phone,
        "email": patient.email,
        "timezone": patient.timezone,
        "locale": patient.locale,
        "channel": patient.channel.value,
        "wake": f"{patient.wake_start:%H:%M}-{patient.wake_end:%H:%M}",
        "program": patient.program_id,
        "tune": list(patient.tunings or ()),
        "max_per_day": patient.tuned_max_per_day,
        "end_date": patient.end_date.isoformat() if patient.end_date else None,
    }


def _shown(name: str, value: Any) -> Any:
    # The audit trail and the command's answer mask addresses: the patient row has them.
    return _masked(value) if name in {"phone", "email"} else value


def _masked(address: str | None) -> str | None:
    return None if address is None else mask_recipient(address)


def _store(patient: Patient, valid: ValidEnrollment) -> None:
    if valid.phone != patient.phone:
        patient.phone_invalid_code = None  # a new number has not failed yet
    patient.first_name = valid.first_name
    patient.phone = valid.phone
    patient.email = valid.email
    patient.timezone = valid.timezone
    patient.locale = valid.locale
    patient.channel = valid.channel
    patient.wake_start, patient.wake_end = valid.wake_start, valid.wake_end
    patient.program_id = valid.program.id
    patient.tunings = list(valid.tunings) or None
    patient.tuned_max_per_day = valid.tuned_max_per_day
    patient.end_date = valid.end_date


def _record_consent(
    *, session: Session, patient: Patient, valid: ValidEnrollment, actor: str, now: dt.datetime
) -> None:
    patient.consent_at = now
    patient.consent_method = valid.consent_method
    patient.consent_recorded_by = actor[:100]
    row = consent_audit_values(
        valid, patient_id=patient.id, clinic=patient.clinic, actor=actor, now=now, source="edit"
    )
    session.add(AuditEvent(**row))


def _replan(*, session: Session, patient: Patient, program: Program, now: dt.datetime) -> None:
    state = plans.set_program_state(patient=patient, program=program, now=now)
    plans.apply_plan(patient=patient, program=program.phase_program(state.phase or 0))
    session.flush()
    plans.refresh_next_due(patient=patient, after=now)
