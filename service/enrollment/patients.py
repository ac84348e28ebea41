"""Enrolling patients, and the few things staff do to them afterwards (pause, resume, remove).

Input arrives as strings (CLI flags, CSV cells) in an ``EnrollmentRequest``; ``validate`` turns
it into a ``ValidEnrollment`` or an ``EnrollmentError`` that lists every problem, field by
field. Nothing is stored until the whole request is valid, so a bad request leaves no trace.
The CSV import (``service/enrollment/importing.py``) shares ``validate`` and the row builders
below, so a row and a single enrollment are held to exactly the same rules.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import audit
from service.db import rows_changed
from service.enrollment import plans
from service.enrollment.clinics import NotFoundError, valid_email, valid_timezone
from service.enrollment.programs import Program, ProgramError, get_program, parse_time, tune
from service.models import (
    AuditEvent,
    Channel,
    ChannelChoice,
    Clinic,
    Patient,
    PatientStatus,
    PlanItem,
    Reminder,
    ReminderStatus,
)

DEFAULT_PROGRAM = "stenosis-core"
DEFAULT_WAKE = "08:00-20:00"
DEFAULT_LOCALE = "en"
DEFAULT_CONSENT = "recorded by clinic at enrollment"
LOCALES = ("en", "es")
MAX_FIRST_NAME = 100
MAX_CONSENT_METHOD = 60
WELCOME_KIND = "welcome"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NANP_REGIONS = frozenset(phonenumbers.region_codes_for_country_code(1))
_NANP_DIGITS = 10
_PLAIN_PHONE = re.compile(r"^[0-9 ().-]+$")
_PHONE_PUNCTUATION = str.maketrans("", "", " ().-")
# Messages still waiting to leave. "sending" is left alone: the provider may have it already,
# and the send task checks the patient's status again after claiming.
_CANCELABLE = (ReminderStatus.SCHEDULED, ReminderStatus.QUEUED)


class EnrollmentError(ValueError):
    """A request that cannot be enrolled. ``problems`` lists (field, message) for every bad
    field; ``field`` and ``message`` are the first, for callers that show one."""

    def __init__(self, field: str, message: str, *more: tuple[str, str]) -> None:
        self.problems: tuple[tuple[str, str], ...] = ((field, message), *more)
        self.field = field
        self.message = message
        super().__init__("; ".join(text for _, text in self.problems))


class DuplicateError(ValueError):
    """The phone (or, for email-only patients, the email) is already enrolled at the clinic."""

    def __init__(self, message: str, *, patient_id: int) -> None:
        super().__init__(message)
        self.patient_id = patient_id


class PatientStateError(ValueError):
    """An action that makes no sense in the patient's current status (pausing a removed one)."""


@dataclass(frozen=True)
class EnrollmentRequest:
    """What staff typed or the CSV held, unparsed. None or "" means "use the default"."""

    first_name: str
    phone: str | None = None
    email: str | None = None
    timezone: str | None = None
    program: str | None = None
    channel: str | None = None
    wake: str | None = None
    locale: str | None = None
    start: str | None = None
    tune: tuple[str, ...] = ()
    max_per_day: str | None = None
    consent_method: str | None = None


@dataclass(frozen=True)
class ValidEnrollment:
    """A request that passed every check, in the types the patient row takes."""

    first_name: str
    phone: str | None  # E.164
    email: str | None  # lower-case
    timezone: str
    locale: str
    channel: ChannelChoice
    wake_start: dt.time
    wake_end: dt.time
    program: Program  # tuned for this patient
    start_date: dt.date
    consent_method: str


@dataclass
class ProgramBook:
    """Programs by id and tuning, each file read once per run: an import of 100,000 rows
    asks for the same two or three programs over and over."""

    extra_dir: Path | None = None
    # Failures are kept too: 300 rows naming the same unknown program read its folder once.
    _cache: dict[tuple[str, tuple[str, ...], int | None], Program | ProgramError] = field(
        default_factory=dict, init=False, repr=False
    )

    def get(self, program_id: str, tunings: tuple[str, ...], max_per_day: int | None) -> Program:
        key = (program_id, tunings, max_per_day)
        if key not in self._cache:
            self._cache[key] = self._load(*key)
        found = self._cache[key]
        if isinstance(found, ProgramError):
            raise ProgramError(str(found))  # a fresh one: a raised exception keeps its traceback
        return found

    def _load(
        self, program_id: str, tunings: tuple[str, ...], max_per_day: int | None
    ) -> Program | ProgramError:
        try:
            base = get_program(program_id, self.extra_dir)
            if not tunings and max_per_day is None:
                return base
            return tune(base, tunings, max_per_day=max_per_day)
        except ProgramError as exc:
            return exc


# --- validation --------------------------------------------------------------------------


def validate(
    request: EnrollmentRequest, *, clinic: Clinic, now: dt.datetime, programs: ProgramBook
) -> ValidEnrollment:
    """Check every field of the request; raise one EnrollmentError naming all bad fields."""
    problems: list[tuple[str, str]] = []

    def check(name: str, parse: Any, *args: Any) -> Any:
        try:
            return parse(*args)
        except (ValueError, ProgramError) as exc:
            problems.append((name, str(exc)))
            return None

    first_name = check("first_name", _first_name, request.first_name)
    phone = check("phone", _phone, request.phone, clinic.region)
    email = check("email", _email, request.email)
    channel = check("channel", _channel, request.channel, request.phone, request.email)
    zone = check("timezone", valid_timezone, _or(request.timezone, clinic.timezone))
    locale = check("locale", _locale, request.locale)
    wake = check("wake", parse_wake, _or(request.wake, DEFAULT_WAKE))
    program = check("program", _program, request, programs)
    start = check("start", _start, request.start, zone, now)
    consent = check("consent_method", _consent, request.consent_method)
    if problems:
        raise EnrollmentError(*problems[0], *problems[1:])
    return ValidEnrollment(
        first_name=first_name,
        phone=phone,
        email=email,
        timezone=zone,
        locale=locale,
        channel=channel,
        wake_start=wake[0],
        wake_end=wake[1],
        program=program,
        start_date=start,
        consent_method=consent,
    )


def _or(value: str | None, default: str) -> str:
    return value.strip() if value and value.strip() else default


def _first_name(raw: str | None) -> str:
    name = (raw or "").strip()
    if not name:
        raise ValueError("first name is required")
    if len(name) > MAX_FIRST_NAME:
        raise ValueError(f"first name is longer than {MAX_FIRST_NAME} characters")
    return name


def _phone(raw: str | None, region: str) -> str | None:
    """E.164, reading a national-format number as one of the clinic's country."""
    if not raw or not raw.strip():
        return None
    text = raw.strip()
    fast = _nanp_fast_path(text, region)
    if fast is not None:
        return fast
    try:
        number = phonenumbers.parse(text, region)
        valid = phonenumbers.is_valid_number(number)
    except phonenumbers.NumberParseException:
        valid = False
    if not valid:
        raise ValueError(f"phone {text!r} is not a valid number for {region}")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _nanp_fast_path(text: str, region: str) -> str | None:
    """The E.164 form of a plain North American number valid in the clinic's own region,
    or None to take the general path.

    ``phonenumbers.parse`` costs ~45 µs, most of an import row's validation. In the NANP
    (country code 1, no trunk prefix but an optional leading 1) a number written with only
    digits, spaces, dots, dashes and parentheses is its ten digits, so the parse can be
    skipped; validity is still decided by phonenumbers. Anything else (a "+", letters, an
    extension, another region's number) goes the general way. A property test checks that
    both paths agree.
    """
    if region not in _NANP_REGIONS or not _PLAIN_PHONE.match(text):
        return None
    digits = text.translate(_PHONE_PUNCTUATION)
    if len(digits) == _NANP_DIGITS + 1 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) != _NANP_DIGITS:
        return None
    number = phonenumbers.PhoneNumber(country_code=1, national_number=int(digits))
    if not phonenumbers.is_valid_number_for_region(number, region):
        return None
    return "+1" + digits


def _email(raw: str | None) -> str | None:
    return valid_email(raw) if raw and raw.strip() else None


def _channel(raw: str | None, phone: str | None, email: str | None) -> ChannelChoice:
    has_phone, has_email = bool(phone and phone.strip()), bool(email and email.strip())
    if not has_phone and not has_email:
        raise ValueError("a phone number or an email address is required")
    default = ChannelChoice.SMS if has_phone else ChannelChoice.EMAIL
    text = _or(raw, default.value).lower()
    try:
        choice = ChannelChoice(text)
    except ValueError:
        raise ValueError(f"channel {text!r} must be sms, email or both") from None
    channels = choice.channels()
    if Channel.SMS in channels and not has_phone:
        raise ValueError(f"channel {choice.value} needs a phone number")
    if Channel.EMAIL in channels and not has_email:
        raise ValueError(f"channel {choice.value} needs an email address")
    return choice


def _locale(raw: str | None) -> str:
    locale = _or(raw, DEFAULT_LOCALE).lower()
    if locale not in LOCALES:
        raise ValueError(f"locale {locale!r} must be one of {', '.join(LOCALES)}")
    return locale


@functools.lru_cache(maxsize=256)
def parse_wake(raw: str) -> tuple[dt.time, dt.time]:
    """``"08:00-20:00"`` as (start, end); the window must end after it starts, the same day."""
    start_text, dash, end_text = raw.strip().partition("-")
    if not dash:
        raise ValueError(f"wake window {raw!r} must look like 08:00-20:00")
    try:
        start, end = parse_time(start_text), parse_time(end_text)
    except ValueError:
        raise ValueError(f"wake window {raw!r} must look like 08:00-20:00") from None
    if end <= start:
        raise ValueError(f"wake window {raw!r} ends before it starts")
    return start, end


def _program(request: EnrollmentRequest, programs: ProgramBook) -> Program:
    limit: int | None = None
    if request.max_per_day and request.max_per_day.strip():
        if not request.max_per_day.strip().isdigit():
            raise ValueError(f"max per day {request.max_per_day!r} must be a whole number")
        limit = int(request.max_per_day)
    tunings = tuple(item.strip() for item in request.tune if item.strip())
    return programs.get(_or(request.program, DEFAULT_PROGRAM), tunings, limit)


def _start(raw: str | None, zone: str | None, now: dt.datetime) -> dt.date:
    if not raw or not raw.strip():
        # Today where the patient lives: late evening in Chicago is already tomorrow in UTC.
        return now.astimezone(ZoneInfo(zone or "UTC")).date()
    return _iso_date(raw.strip())


@functools.lru_cache(maxsize=1024)
def _iso_date(text: str) -> dt.date:
    # Cached: an import's rows share a handful of start dates.
    try:
        if not _ISO_DATE.match(text):
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"start date {text!r} is not a date like 2026-12-01") from None


def _consent(raw: str | None) -> str:
    method = _or(raw, DEFAULT_CONSENT)
    if len(method) > MAX_CONSENT_METHOD:
        raise ValueError(f"consent method is longer than {MAX_CONSENT_METHOD} characters")
    return method


# --- building rows (shared with the CSV import) ------------------------------------------


def patient_values(
    valid: ValidEnrollment, *, clinic: Clinic, actor: str, now: dt.datetime
) -> dict[str, Any]:
    """The patients row for a valid enrollment, consent included."""
    return {
        "clinic_id": clinic.id,
        "first_name": valid.first_name,
        "phone": valid.phone,
        "email": valid.email,
        "timezone": valid.timezone,
        "locale": valid.locale,
        "channel": valid.channel,
        "wake_start": valid.wake_start,
        "wake_end": valid.wake_end,
        "program_id": valid.program.id,
        "start_date": valid.start_date,
        "max_per_day": valid.program.max_per_day,
        "status": PatientStatus.ACTIVE,
        "consent_at": now,
        "consent_method": valid.consent_method,
        "consent_recorded_by": actor[:100],
        "created_at": now,
        "updated_at": now,
    }


def plan_item_values(program: Program) -> list[dict[str, Any]]:
    """The plan_items rows of a (tuned) program, by position, without patient or due time."""
    return [
        {
            "position": position,
            "kind": item.kind,
            "every_minutes": item.every_minutes,
            "at_times": [t.strftime("%H:%M") for t in item.at_times] or None,
            "days": list(item.days) if item.days is not None else None,
        }
        for position, item in enumerate(program.items)
    ]


def welcome_values(
    *, patient_id: int, channel: ChannelChoice, now: dt.datetime
) -> list[dict[str, Any]]:
    """One welcome message per channel, due now: the dispatcher queues scheduled rows."""
    return [
        {
            "patient_id": patient_id,
            "plan_item_id": None,
            "kind": WELCOME_KIND,
            "channel": each,
            "actionable": False,
            "due_at": now,
            "status": ReminderStatus.SCHEDULED,
            "status_at": now,
            "attempts": 0,
        }
        for each in channel.channels()
    ]


def enrollment_audit_values(
    valid: ValidEnrollment,
    *,
    patient_id: int,
    clinic: Clinic,
    actor: str,
    now: dt.datetime,
    source: str,
) -> list[dict[str, Any]]:
    """The "enroll" and "consent" audit rows (no phone or email: the row is the record of who
    agreed to what, the patient row holds the address)."""
    enroll_row = {
        "at": now,
        "actor": actor[:100],
        "clinic_id": clinic.id,
        "patient_id": patient_id,
        "action": "enroll",
        "detail": {"program": valid.program.id, "channel": valid.channel.value, "source": source},
    }
    consent = consent_audit_values(
        valid, patient_id=patient_id, clinic=clinic, actor=actor, now=now, source=source
    )
    return [enroll_row, consent]


def consent_audit_values(
    valid: ValidEnrollment,
    *,
    patient_id: int,
    clinic: Clinic,
    actor: str,
    now: dt.datetime,
    source: str,
) -> dict[str, Any]:
    """The "consent" audit row alone. The CSV import writes only this one per patient (plus
    one "import" row for the file): at 100,000 rows, every row per patient counts."""
    return {
        "at": now,
        "actor": actor[:100],
        "clinic_id": clinic.id,
        "patient_id": patient_id,
        "action": "consent",
        "detail": {
            "method": valid.consent_method,
            "channels": [each.value for each in valid.channel.channels()],
            "program": valid.program.id,
            "source": source,
        },
    }


# --- enrolling one patient ---------------------------------------------------------------


def enroll(
    *,
    session: Session,
    clinic: Clinic,
    request: EnrollmentRequest,
    actor: str,
    now: dt.datetime,
    programs_dir: Path | None = None,
    source: str = "cli",
) -> Patient:
    """Enroll one patient.

    1. Validate every field (EnrollmentError lists them all; nothing stored).
    2. Refuse a phone (or email-only address) already enrolled at the clinic (DuplicateError).
    3. Add the patient and the plan items of the tuned program, flush for ids.
    4. Compute each item's next due time from now.
    5. Queue the welcome message(s) and write the "enroll" and "consent" audit rows.
    """
    valid = validate(request, clinic=clinic, now=now, programs=ProgramBook(programs_dir))
    _refuse_duplicate(session=session, clinic=clinic, valid=valid)
    patient = Patient(**patient_values(valid, clinic=clinic, actor=actor, now=now))
    patient.plan_items = [PlanItem(**values) for values in plan_item_values(valid.program)]
    try:
        # A savepoint: losing a race with another enrollment of the same phone rolls back
        # only this patient, and the caller gets the same clear error as without the race.
        with session.begin_nested():
            session.add(patient)
            session.flush()
    except IntegrityError:
        _refuse_duplicate(session=session, clinic=clinic, valid=valid)
        raise
    plans.refresh_next_due(patient=patient, after=now)
    for values in welcome_values(patient_id=patient.id, channel=valid.channel, now=now):
        session.add(Reminder(**values))
    for values in enrollment_audit_values(
        valid, patient_id=patient.id, clinic=clinic, actor=actor, now=now, source=source
    ):
        session.add(AuditEvent(**values))
    session.flush()
    return patient


def _refuse_duplicate(*, session: Session, clinic: Clinic, valid: ValidEnrollment) -> None:
    query = select(Patient).where(Patient.clinic_id == clinic.id).order_by(Patient.id).limit(1)
    if valid.phone:
        existing = session.scalar(query.where(Patient.phone == valid.phone))
        address = valid.phone
    else:
        existing = session.scalar(query.where(Patient.email == valid.email))
        address = valid.email or ""
    if existing is not None:
        status = "" if existing.status is PatientStatus.ACTIVE else f" ({existing.status.value})"
        raise DuplicateError(
            f"{address} is already enrolled at {clinic.slug} as patient {existing.id}{status}",
            patient_id=existing.id,
        )


# --- after enrollment --------------------------------------------------------------------


def get_patient(*, session: Session, patient_id: int, clinic: Clinic | None = None) -> Patient:
    """The patient; with a clinic, a patient of another clinic is "not found" (staff of one
    clinic never learn that an id exists elsewhere)."""
    patient = session.get(Patient, patient_id)
    if patient is None or (clinic is not None and patient.clinic_id != clinic.id):
        where = f" at {clinic.slug}" if clinic is not None else ""
        raise NotFoundError(f"no patient {patient_id}{where}")
    return patient


def list_patients(
    *,
    session: Session,
    clinic: Clinic | None = None,
    status: PatientStatus | None = None,
    limit: int | None = None,
) -> list[Patient]:
    query = select(Patient).order_by(Patient.id).limit(limit)
    if clinic is not None:
        query = query.where(Patient.clinic_id == clinic.id)
    if status is not None:
        query = query.where(Patient.status == status)
    return list(session.scalars(query))


def count_patients(
    *, session: Session, clinic: Clinic | None = None, status: PatientStatus | None = None
) -> int:
    query = select(func.count(Patient.id))
    if clinic is not None:
        query = query.where(Patient.clinic_id == clinic.id)
    if status is not None:
        query = query.where(Patient.status == status)
    return session.scalar(query) or 0


def patients_by_clinic(*, session: Session) -> dict[int, int]:
    """How many patients each clinic has (for ``clinics list``)."""
    rows = session.execute(select(Patient.clinic_id, func.count()).group_by(Patient.clinic_id))
    return {row[0]: row[1] for row in rows}


def recent_reminders(*, session: Session, patient: Patient, limit: int = 10) -> list[Reminder]:
    query = (
        select(Reminder)
        .where(Reminder.patient_id == patient.id)
        .order_by(Reminder.due_at.desc(), Reminder.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def pause(
    *, session: Session, patient: Patient, until: dt.date | None, actor: str, now: dt.datetime
) -> Patient:
    """Stop reminders until the given local date (None: until resumed). Messages waiting to
    go out are canceled; the schedule restarts from the pause's end, never replaying."""
    if patient.status is PatientStatus.REMOVED:
        raise PatientStateError(f"patient {patient.id} was removed; enroll them again instead")
    today = now.astimezone(ZoneInfo(patient.timezone)).date()
    if until is not None and until <= today:
        raise PatientStateError(f"pause until {until.isoformat()}: the date must be after today")
    patient.status = PatientStatus.PAUSED
    patient.paused_until = until
    canceled = _cancel_open(session=session, patient=patient, now=now, why="paused")
    plans.refresh_next_due(patient=patient, after=now)
    detail = {"until": until.isoformat() if until else None, "canceled": canceled}
    _audit(session=session, patient=patient, actor=actor, action="pause", detail=detail)
    return patient


def resume(*, session: Session, patient: Patient, actor: str, now: dt.datetime) -> Patient:
    """Start reminders again from now (what was missed while paused is not replayed)."""
    if patient.status is PatientStatus.REMOVED:
        raise PatientStateError(f"patient {patient.id} was removed; enroll them again instead")
    if patient.status is PatientStatus.ACTIVE:
        raise PatientStateError(f"patient {patient.id} is not paused")
    patient.status = PatientStatus.ACTIVE
    patient.paused_until = None
    plans.refresh_next_due(patient=patient, after=now)
    _audit(session=session, patient=patient, actor=actor, action="resume", detail=None)
    return patient


def remove(*, session: Session, patient: Patient, actor: str, now: dt.datetime) -> Patient:
    """End the patient's program: nothing more is due and waiting messages are canceled. The
    row stays (adherence history, audit), so enrolling the same phone again at this clinic is
    refused as a duplicate that names the removed patient."""
    if patient.status is PatientStatus.REMOVED:
        return patient
    patient.status = PatientStatus.REMOVED
    patient.paused_until = None
    for item in patient.plan_items:
        item.next_due_at = None
    canceled = _cancel_open(session=session, patient=patient, now=now, why="removed")
    _audit(
        session=session,
        patient=patient,
        actor=actor,
        action="remove",
        detail={"canceled": canceled},
    )
    return patient


def _cancel_open(*, session: Session, patient: Patient, now: dt.datetime, why: str) -> int:
    return rows_changed(
        session,
        update(Reminder)
        .where(Reminder.patient_id == patient.id, Reminder.status.in_(_CANCELABLE))
        .values(status=ReminderStatus.CANCELED, status_at=now, error_detail=why)
        .execution_options(synchronize_session="fetch"),
    )


def _audit(
    *, session: Session, patient: Patient, actor: str, action: str, detail: dict[str, Any] | None
) -> None:
    audit.record(
        session=session,
        actor=actor,
        action=action,
        clinic_id=patient.clinic_id,
        patient_id=patient.id,
        detail=detail,
    )
