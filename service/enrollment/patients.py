"""Enrolling patients, and what staff do to them afterwards (edit, pause, resume, remove,
discharge); programs that end complete the patient, progressions move them to the next phase.

Input arrives as strings (CLI flags, CSV cells) in an ``EnrollmentRequest``; ``validate`` turns
it into a ``ValidEnrollment`` or an ``EnrollmentError`` that lists every problem, field by
field. Nothing is stored until the whole request is valid, so a bad request leaves no trace.
The CSV import (``service/enrollment/importing.py``) shares ``validate`` and the row builders
below, so a row and a single enrollment are held to exactly the same rules.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import Select, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from service import audit
from service.db import rows_changed
from service.enrollment import plans
from service.enrollment.clinics import NotFoundError, valid_email, valid_timezone
from service.enrollment.plans import ProgramState, plan_item_values
from service.enrollment.programs import (
    DEFAULT_WAKE_WINDOW,
    MAX_WEEKS,
    Program,
    ProgramError,
    get_program,
    parse_time,
    tune,
)
from service.models import (
    CANCELABLE_STATUSES,
    AuditEvent,
    Channel,
    ChannelChoice,
    Clinic,
    Outcome,
    Patient,
    PatientStatus,
    PlanItem,
    Reminder,
    ReminderStatus,
    went_out,
)

log = logging.getLogger(__name__)

DEFAULT_PROGRAM = "stenosis-core"
DEFAULT_WAKE = "{:%H:%M}-{:%H:%M}".format(*DEFAULT_WAKE_WINDOW)  # 08:00-20:00
DEFAULT_LOCALE = "en"
DEFAULT_CONSENT = "recorded by clinic at enrollment"
LOCALES = ("en", "es")
MAX_FIRST_NAME = 100
MAX_CONSENT_METHOD = 60
WELCOME_KIND = "welcome"
SYSTEM_ACTOR = "ptnudge"  # the audit trail's actor for what the program does by itself
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NANP_REGIONS = frozenset(phonenumbers.region_codes_for_country_code(1))
_NANP_DIGITS = 10
_PLAIN_PHONE = re.compile(r"^[0-9 ().-]+$")
_PHONE_PUNCTUATION = str.maketrans("", "", " ().-")


class EnrollmentError(ValueError):
    """A request that cannot be enrolled. ``problems`` lists (field, message) for every bad
    field; ``field`` and ``message`` are the first, for callers that show one."""

    def __init__(self, field: str, message: str, *more: tuple[str, str]) -> None:
        self.problems: tuple[tuple[str, str], ...] = ((field, message), *more)
        self.field = field
        self.message = message
        super().__init__("; ".join(text for _, text in self.problems))


class DuplicateError(ValueError):
    """The phone (or, for email-only patients, the email) and first name are already
    enrolled at the clinic."""

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
    weeks: str | None = None  # the program's length from the start date; or:
    end: str | None = None  # its last day (YYYY-MM-DD); neither: the program file's duration


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
    program: Program  # tuned for this patient (a progression: every phase)
    start_date: dt.date
    consent_method: str
    end_date: dt.date | None = None  # the last local day of the program
    tunings: tuple[str, ...] = ()
    tuned_max_per_day: int | None = None

    def state(self, now: dt.datetime) -> ProgramState:
        today = now.astimezone(ZoneInfo(self.timezone)).date()
        return plans.program_state(
            program=self.program, start=self.start_date, end=self.end_date, day=today
        )

    def plan(self, now: dt.datetime) -> Program:
        """The program the plan items come from today: a progression's current phase."""
        return self.program.phase_program(self.state(now).phase or 0)

    def changes_at(self, now: dt.datetime) -> dt.datetime | None:
        """When the plan next changes by itself (a phase begins, the program ends)."""
        day = self.state(now).changes_on
        return plans.local_midnight(day, self.timezone) if day else None


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
    end = check("end", _end_date, request, program, start)
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
        end_date=end,
        tunings=_tunings(request),
        tuned_max_per_day=_limit(request.max_per_day),
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
    limit = _limit(request.max_per_day)
    return programs.get(_or(request.program, DEFAULT_PROGRAM), _tunings(request), limit)


def _limit(raw: str | None) -> int | None:
    if not raw or not raw.strip():
        return None
    if not raw.strip().isdigit():
        raise ValueError(f"max per day {raw!r} must be a whole number")
    return int(raw)


def _tunings(request: EnrollmentRequest) -> tuple[str, ...]:
    return tuple(item.strip() for item in request.tune if item.strip())


def _end_date(
    request: EnrollmentRequest, program: Program | None, start: dt.date | None
) -> dt.date | None:
    """The last day: ``weeks`` from the start, the ``end`` date, or the program's duration."""
    weeks, end = (request.weeks or "").strip(), (request.end or "").strip()
    if weeks and end:
        raise ValueError("give the weeks or the end date, not both")
    if weeks and not (weeks.isdigit() and 1 <= int(weeks) <= MAX_WEEKS):
        raise ValueError(f"weeks {weeks!r} must be a whole number from 1 to {MAX_WEEKS}")
    if end:
        day = _iso_date(end, "end date")
        if start is not None and day < start:
            raise ValueError(f"end date {end} is before the start date {start.isoformat()}")
        return day
    days = int(weeks) * 7 if weeks else program.duration_days if program else None
    if start is None or not days:
        return None
    return start + dt.timedelta(days=days - 1)


def _start(raw: str | None, zone: str | None, now: dt.datetime) -> dt.date:
    if not raw or not raw.strip():
        # Today where the patient lives: late evening in Chicago is already tomorrow in UTC.
        return now.astimezone(ZoneInfo(zone or "UTC")).date()
    return _iso_date(raw.strip(), "start date")


@functools.lru_cache(maxsize=1024)
def _iso_date(text: str, label: str) -> dt.date:
    # Cached: an import's rows share a handful of start dates.
    try:
        if not _ISO_DATE.match(text):
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{label} {text!r} is not a date like 2026-12-01") from None


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
        "end_date": valid.end_date,
        "phase": valid.state(now).phase,
        "plan_changes_at": valid.changes_at(now),
        "tunings": list(valid.tunings) or None,
        "tuned_max_per_day": valid.tuned_max_per_day,
        "max_per_day": valid.plan(now).max_per_day,
        "status": PatientStatus.ACTIVE,
        "consent_at": now,
        "consent_method": valid.consent_method,
        "consent_recorded_by": actor[:100],
        "created_at": now,
        "updated_at": now,
    }


def welcome_values(
    *, patient_id: int, channel: ChannelChoice, now: dt.datetime, kind: str = WELCOME_KIND
) -> list[dict[str, Any]]:
    """One welcome message (or another system message) per channel, due now: the
    dispatcher queues scheduled rows."""
    return [
        {
            "patient_id": patient_id,
            "plan_item_id": None,
            "kind": kind,
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
    action: str = "enroll",
) -> list[dict[str, Any]]:
    """The "enroll" (or "reactivate") and "consent" audit rows (no phone or email: the row is
    the record of who agreed to what, the patient row holds the address)."""
    enroll_row = {
        "at": now,
        "actor": actor[:100],
        "clinic_id": clinic.id,
        "patient_id": patient_id,
        "action": action,
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


@dataclass(frozen=True)
class Enrolled:
    patient: Patient
    reactivated: bool = False  # a removed or completed patient, enrolled again


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
    """Enroll one patient (see ``enroll_patient``); the patient, new or re-activated."""
    return enroll_patient(
        session=session,
        clinic=clinic,
        request=request,
        actor=actor,
        now=now,
        programs_dir=programs_dir,
        source=source,
    ).patient


def enroll_patient(
    *,
    session: Session,
    clinic: Clinic,
    request: EnrollmentRequest,
    actor: str,
    now: dt.datetime,
    programs_dir: Path | None = None,
    source: str = "cli",
) -> Enrolled:
    """Enroll one patient, or re-activate the removed or completed one it names.

    1. Validate every field (EnrollmentError lists them all; nothing stored).
    2. The same phone (email-only: email) and first name at the clinic: refuse while that
       patient is enrolled (DuplicateError); re-activate them when removed or completed.
    3. Add the patient and the plan items of the tuned program, flush for ids.
    4. Compute each item's next due time from now.
    5. Queue the welcome message(s) and write the "enroll" and "consent" audit rows.
    """
    valid = validate(request, clinic=clinic, now=now, programs=ProgramBook(programs_dir))
    existing = same_patient(session=session, clinic=clinic, valid=valid)
    if existing is not None:
        patient = reactivate(
            session=session, patient=existing, valid=valid, actor=actor, now=now, source=source
        )
        return Enrolled(patient, reactivated=True)
    patient = Patient(**patient_values(valid, clinic=clinic, actor=actor, now=now))
    patient.plan_items = [PlanItem(**values) for values in plan_item_values(valid.plan(now))]
    try:
        # A savepoint: losing a race with another enrollment of the same phone rolls back
        # only this patient, and the caller gets the same clear error as without the race.
        with session.begin_nested():
            session.add(patient)
            session.flush()
    except IntegrityError:
        same_patient(session=session, clinic=clinic, valid=valid)
        raise
    plans.refresh_next_due(patient=patient, after=now)
    _welcome(session=session, patient=patient, valid=valid, actor=actor, now=now, source=source)
    return Enrolled(patient)


def reactivate(
    *,
    session: Session,
    patient: Patient,
    valid: ValidEnrollment,
    actor: str,
    now: dt.datetime,
    source: str,
) -> Patient:
    """Enroll a removed or completed patient again: the same row (their history stays
    theirs), today's details and program from the request, a new consent, a new welcome."""
    values = patient_values(valid, clinic=patient.clinic, actor=actor, now=now)
    for name, value in values.items():
        if name not in {"clinic_id", "created_at"}:
            setattr(patient, name, value)
    patient.paused_until = None
    plans.apply_plan(patient=patient, program=valid.plan(now))
    session.flush()
    plans.refresh_next_due(patient=patient, after=now)
    _welcome(
        session=session,
        patient=patient,
        valid=valid,
        actor=actor,
        now=now,
        source=source,
        action="reactivate",
    )
    return patient


def _welcome(
    *,
    session: Session,
    patient: Patient,
    valid: ValidEnrollment,
    actor: str,
    now: dt.datetime,
    source: str,
    action: str = "enroll",
) -> None:
    for values in welcome_values(patient_id=patient.id, channel=valid.channel, now=now):
        session.add(Reminder(**values))
    for values in enrollment_audit_values(
        valid,
        patient_id=patient.id,
        clinic=patient.clinic,
        actor=actor,
        now=now,
        source=source,
        action=action,
    ):
        session.add(AuditEvent(**values))
    session.flush()


def same_patient_query(
    *, clinic: Clinic, phone: str | None, email: str | None, first_name: str
) -> Select[tuple[Patient]]:
    """The clinic's patient with this phone (no phone: this email) and this first name, in
    any case: family members may share a phone, one person is enrolled once."""
    address = Patient.phone == phone if phone else Patient.email == email
    return (
        select(Patient)
        .where(
            Patient.clinic_id == clinic.id,
            address,
            func.lower(Patient.first_name) == first_name.lower(),
        )
        .order_by(Patient.id)
        .limit(1)
    )


def same_patient(
    *, session: Session, clinic: Clinic, valid: ValidEnrollment, exclude: int | None = None
) -> Patient | None:
    """The removed or completed patient this enrollment names (to re-activate), or None;
    DuplicateError while that patient is still enrolled."""
    query = same_patient_query(
        clinic=clinic, phone=valid.phone, email=valid.email, first_name=valid.first_name
    )
    if exclude is not None:
        query = query.where(Patient.id != exclude)
    existing = session.scalar(query)
    if existing is None or (existing.status.ended and exclude is None):
        return existing
    address = valid.phone or valid.email or ""
    status = "" if existing.status is PatientStatus.ACTIVE else f" ({existing.status.value})"
    raise DuplicateError(
        f"{existing.first_name} ({address}) is already enrolled at {clinic.slug} as patient "
        f"{existing.id}{status}",
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
    *,
    session: Session,
    patient: Patient,
    until: dt.date | None,
    actor: str,
    now: dt.datetime,
    detail: dict[str, object] | None = None,
) -> Patient:
    """Stop reminders until the given local date (None: until resumed). Messages waiting to
    go out are canceled; the schedule restarts from the pause's end, never replaying.
    ``detail`` adds to the audit row what asked for the pause (a patient's reply)."""
    refuse_ended(patient)
    today = now.astimezone(ZoneInfo(patient.timezone)).date()
    if until is not None and until <= today:
        raise PatientStateError(f"pause until {until.isoformat()}: the date must be after today")
    patient.status = PatientStatus.PAUSED
    patient.paused_until = until
    canceled = _cancel_open(session=session, patient=patient, now=now, why="paused")
    plans.refresh_next_due(patient=patient, after=now)
    recorded = {"until": until.isoformat() if until else None, "canceled": canceled}
    _audit(
        session=session,
        patient=patient,
        actor=actor,
        action="pause",
        detail=recorded | (detail or {}),
    )
    return patient


def resume(*, session: Session, patient: Patient, actor: str, now: dt.datetime) -> Patient:
    """Start reminders again from now (what was missed while paused is not replayed)."""
    refuse_ended(patient)
    if patient.status is PatientStatus.ACTIVE:
        raise PatientStateError(f"patient {patient.id} is not paused")
    patient.status = PatientStatus.ACTIVE
    patient.paused_until = None
    plans.refresh_next_due(patient=patient, after=now)
    _audit(session=session, patient=patient, actor=actor, action="resume", detail=None)
    return patient


def refuse_ended(patient: Patient) -> None:
    if patient.status.ended:
        raise PatientStateError(
            f"patient {patient.id} is {patient.status.value}; enroll them again instead"
        )


def remove(*, session: Session, patient: Patient, actor: str, now: dt.datetime) -> Patient:
    """End the patient's program: nothing more is due and waiting messages are canceled. The
    row stays (adherence history, audit); enrolling the same phone and first name again at
    this clinic re-activates it."""
    if patient.status is PatientStatus.REMOVED:
        return patient
    patient.status = PatientStatus.REMOVED
    canceled = _stop(session=session, patient=patient, now=now, why="removed")
    _audit(
        session=session,
        patient=patient,
        actor=actor,
        action="remove",
        detail={"canceled": canceled},
    )
    return patient


def _stop(*, session: Session, patient: Patient, now: dt.datetime, why: str) -> int:
    """Nothing more due, no change ahead, waiting messages canceled (how many)."""
    patient.paused_until = None
    patient.plan_changes_at = None
    for item in patient.plan_items:
        item.next_due_at = None
    return _cancel_open(session=session, patient=patient, now=now, why=why)


# --- programs that end and progress ------------------------------------------------------


def discharge(*, session: Session, patient: Patient, actor: str, now: dt.datetime) -> Patient:
    """Complete the patient's program now, as its end date would (``complete``)."""
    refuse_ended(patient)
    return complete(session=session, patient=patient, actor=actor, now=now, why="discharged")


def complete(
    *, session: Session, patient: Patient, actor: str, now: dt.datetime, why: str
) -> Patient:
    """The program is over: the patient is completed, nothing more is due, waiting messages
    are canceled, and one closing message (their adherence, in one friendly line) goes out
    in their waking hours. Reports keep their history."""
    patient.status = PatientStatus.COMPLETED
    canceled = _stop(session=session, patient=patient, now=now, why="completed")
    # The closing message's figures are counted when it is composed (``program_adherence``).
    done, delivered = program_adherence(session=session, patient=patient)
    _system_message(session=session, patient=patient, kind=plans.CLOSING_KIND, now=now)
    detail = {"why": why, "canceled": canceled, "done": done, "delivered": delivered}
    _audit(session=session, patient=patient, actor=actor, action="complete", detail=detail)
    return patient


def program_adherence(*, session: Session, patient: Patient) -> tuple[int, int]:
    """Reminders done, and delivered, since the start date (a re-activated patient's earlier
    program is not counted again)."""
    since = plans.local_midnight(patient.start_date, patient.timezone)
    row = session.execute(
        select(
            func.coalesce(func.sum(case((Reminder.outcome == Outcome.DONE, 1), else_=0)), 0),
            func.count(),
        ).where(
            Reminder.patient_id == patient.id,
            Reminder.actionable.is_(True),
            went_out(),
            Reminder.due_at >= since,
        )
    ).one()
    return int(row[0]), int(row[1])


def _system_message(
    *,
    session: Session,
    patient: Patient,
    kind: str,
    now: dt.datetime,
) -> None:
    """A message that is not a reminder, due at the next moment the patient is awake."""
    due = plans.wake_moment(patient, now)
    for values in welcome_values(
        patient_id=patient.id, channel=patient.channel, now=due, kind=kind
    ):
        session.add(Reminder(**values))


def advance_programs(
    *, session: Session, now: dt.datetime, programs_dir: Path | None, limit: int = 500
) -> int:
    """The tick's step for programs: each patient whose plan changes by now moves to the
    phase of their local today, or is completed past the end date. Returns how many."""
    due = session.scalars(
        select(Patient)
        .where(Patient.plan_changes_at <= now)
        .order_by(Patient.plan_changes_at)
        .limit(limit)
        .options(selectinload(Patient.plan_items), selectinload(Patient.clinic))
    ).all()
    for patient in due:
        advance_program(session=session, patient=patient, now=now, programs_dir=programs_dir)
    session.flush()
    return len(due)


def advance_program(
    *, session: Session, patient: Patient, now: dt.datetime, programs_dir: Path | None
) -> None:
    """Complete the patient past their end date; else switch their plan to today's phase
    (one line tells them), and set when it next changes."""
    if patient.status.ended:
        patient.plan_changes_at = None
        return
    if patient.end_date is not None and plans.local_today(patient, now) > patient.end_date:
        complete(session=session, patient=patient, actor=SYSTEM_ACTOR, now=now, why="end date")
        return
    try:
        program = plans.patient_program(patient, programs_dir)
    except ProgramError as exc:
        # The file is gone or changed beyond the patient's tuning: keep today's plan to the
        # end date rather than stop a patient's program because of a file.
        log.warning("patient %s keeps the current plan: %s", patient.id, exc)
        end = patient.end_date
        at = plans.local_midnight(end + dt.timedelta(days=1), patient.timezone) if end else None
        patient.plan_changes_at = at
        return
    before = patient.phase
    state = plans.set_program_state(patient=patient, program=program, now=now)
    if state.phase is not None and state.phase != before:
        plans.apply_plan(patient=patient, program=program.phase_program(state.phase))
        session.flush()
        _system_message(session=session, patient=patient, kind=plans.PHASE_CHANGE_KIND, now=now)
        detail = {"phase": state.phase + 1, "program": program.phase_program(state.phase).id}
        _audit(session=session, patient=patient, actor=SYSTEM_ACTOR, action="phase", detail=detail)
    plans.refresh_next_due(patient=patient, after=now)


def _cancel_open(*, session: Session, patient: Patient, now: dt.datetime, why: str) -> int:
    return rows_changed(
        session,
        update(Reminder)
        .where(Reminder.patient_id == patient.id, Reminder.status.in_(CANCELABLE_STATUSES))
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
