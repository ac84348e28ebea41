"""What a patient's text does: store it, act on it, and say what to answer.

``handle_sms`` is what the Twilio webhook calls (inside the request's transaction):

1. Deduplicate on MessageSid: the row is inserted first, and the unique key makes a retried
   (or concurrent) webhook find the first one; it then changes nothing and answers the same.
2. Store every message, body included, for the clinic (the body is never logged; past
   2,000 characters it is cut, and marked so).
3. Act on the parsed reply (``service.replies.parser``): opt out or in, record done / skipped /
   pain, snooze, pause, or pause and alert the clinic on a warning sign.
4. Answer in the patient's language, or not at all (Twilio answered an exact opt-out
   keyword itself; a number that opted out gets nothing more but safety advice, a START
   confirmation and HELP).

A phone number can belong to several patients (families share phones): opting out, pausing
and the warning-sign pause apply to every patient on it; DONE/SKIP/LATER find the latest open
reminder of any of them.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.settings import Settings
from service import audit, metrics
from service.delivery.messages import format_phone
from service.delivery.rendering import TemplateError, render_email, render_sms
from service.enrollment import optouts
from service.enrollment.plans import refresh_next_due
from service.masking import mask_phone
from service.models import (
    AuditEvent,
    Channel,
    InboundMessage,
    Outcome,
    PainScore,
    Patient,
    PatientStatus,
    Reminder,
    ReminderStatus,
)
from service.replies.outcomes import SNOOZE_OF, record_outcome
from service.replies.parser import Command, Reply, clip, parse_reply
from service.transports.base import OutboundMessage, Transport

log = logging.getLogger(__name__)

CLINIC_ALERT_TASK = "ptnudge.clinic_alert"  # tasks/replies.py; the web app enqueues it by name
SNOOZE_DELAY = dt.timedelta(minutes=30)
PAIN_QUESTION_KIND = "pain_question"
CALL_PAIN_SCORE = 8  # a pain score this high asks the clinic to look, like free text does
ACTOR = "patient_sms"
ALERT_SENT = "clinic_alert_sent"
# Reminders that reached (or are reaching) the patient and can be answered.
ANSWERABLE = (ReminderStatus.SENDING, ReminderStatus.SENT, ReminderStatus.DELIVERED)
CANCELABLE = (ReminderStatus.SCHEDULED, ReminderStatus.QUEUED)
START_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})


@dataclass(frozen=True)
class InboundResult:
    reply_text: str | None  # what to answer in TwiML; None: answer nothing
    alert_inbound_id: int | None  # set: enqueue the clinic alert for this message (after commit)


def handle_sms(
    *,
    session: Session,
    settings: Settings,
    from_number: str,
    to_number: str,
    body: str,
    message_sid: str,
    now: dt.datetime,
) -> InboundResult:
    """Store, deduplicate, act on and answer one inbound SMS (see the module docstring).

    ``to_number`` is which of our numbers was texted; with one sender it decides nothing."""
    address = optouts.normalize_address(from_number)
    body = clip(body.replace("\x00", ""))  # PostgreSQL text cannot hold NUL; no phone sends one
    reply = parse_reply(body)
    inbound = _claim(session, message_sid=message_sid, address=address, body=body, now=now)
    if inbound is None:
        return _replay(session=session, settings=settings, message_sid=message_sid)
    patients = _patients_at(session, address)
    was_opted_out = optouts.is_opted_out(session=session, address=address)
    command = _apply(
        session=session,
        settings=settings,
        inbound=inbound,
        reply=reply,
        patients=patients,
        opted_out=was_opted_out,
    )
    inbound.command = command.value
    metrics.REPLIES.labels(command=command.value).inc()
    log.info("sms %s from %s: %s", message_sid, mask_phone(address), command.value)
    return _result(session=session, settings=settings, inbound=inbound, reply=reply)


# --- 1. deduplicate and store ------------------------------------------------------------


def _claim(
    session: Session, *, message_sid: str, address: str, body: str, now: dt.datetime
) -> InboundMessage | None:
    """Insert the message, or return None when this MessageSid was stored already."""
    if _stored(session, message_sid) is not None:
        return None
    inbound = InboundMessage(
        provider_id=message_sid,
        channel=Channel.SMS,
        from_address=address,
        body=body,
        command=Command.OTHER.value,
        needs_attention=False,
        received_at=now,
    )
    try:
        # A concurrent delivery of the same webhook waits on the unique key, then fails here.
        with session.begin_nested():
            session.add(inbound)
    except IntegrityError:
        return None
    return inbound


def _stored(session: Session, message_sid: str) -> InboundMessage | None:
    return session.scalars(
        select(InboundMessage).where(InboundMessage.provider_id == message_sid)
    ).first()


def _replay(*, session: Session, settings: Settings, message_sid: str) -> InboundResult:
    inbound = _stored(session, message_sid)
    if inbound is None:  # pragma: no cover - the unique key said it exists
        return InboundResult(None, None)
    reply = parse_reply(inbound.body)
    return _result(session=session, settings=settings, inbound=inbound, reply=reply)


def _patients_at(session: Session, address: str) -> list[Patient]:
    """Patients on the number who are still enrolled, newest first (it names the clinic)."""
    patients = optouts.patients_at(session=session, address=address, channel=Channel.SMS)
    active = [p for p in patients if p.status is not PatientStatus.REMOVED]
    return sorted(active, key=lambda p: (p.created_at, p.id), reverse=True)


# --- 2. act --------------------------------------------------------------------------------


def _apply(
    *,
    session: Session,
    settings: Settings,
    inbound: InboundMessage,
    reply: Reply,
    patients: list[Patient],
    opted_out: bool,
) -> Command:
    """Do what the reply asks; returns the command as recorded (a number answering a pain
    question is PAIN, a warning sign is WARNING even when it came with STOP)."""
    now = inbound.received_at
    if patients:
        _attach(inbound, patients[0])
    for patient in patients:
        patient.last_reply_at = now
    if reply.command is Command.STOP:
        _opt_out(session, inbound, reply)
    if reply.warning:
        _warning_pause(session, inbound, patients)
        return Command.WARNING
    if not patients or reply.command is Command.STOP:
        return reply.command
    command = _act(
        session=session,
        settings=settings,
        inbound=inbound,
        reply=reply,
        patients=patients,
        opted_out=opted_out,
    )
    if reply.comment or command in {Command.OTHER, Command.NUMBER}:
        inbound.needs_attention = True
    return command


def _act(
    *,
    session: Session,
    settings: Settings,
    inbound: InboundMessage,
    reply: Reply,
    patients: list[Patient],
    opted_out: bool,
) -> Command:
    now = inbound.received_at
    window = dt.timedelta(hours=settings.reply_window_hours)
    if reply.command is Command.START or (opted_out and reply.exact_keyword in START_KEYWORDS):
        # Twilio opts a number back in on a bare YES as well; so do we.
        _opt_in(session, inbound, patients, was_opted_out=opted_out)
        return Command.START
    if reply.command in {Command.DONE, Command.SKIP}:
        outcome = Outcome.DONE if reply.command is Command.DONE else Outcome.SKIPPED
        reminder = _latest_open(session, patients, now=now, window=window)
        if reminder is not None:
            record_outcome(session=session, reminder=reminder, outcome=outcome, now=now)
            _attach(inbound, reminder.patient, reminder)
    elif reply.command is Command.SNOOZE:
        _snooze(session, inbound, patients, window=window)
    elif reply.command is Command.PAUSE and reply.number is not None:
        _pause(session, inbound, patients, days=reply.number)
    elif reply.command in {Command.PAIN, Command.NUMBER} and reply.number is not None:
        return _pain(session, inbound, reply.command, reply.number, patients, window=window)
    return reply.command


def _attach(inbound: InboundMessage, patient: Patient, reminder: Reminder | None = None) -> None:
    inbound.patient_id = patient.id
    inbound.clinic_id = patient.clinic_id
    if reminder is not None:
        inbound.reminder_id = reminder.id


def _opt_out(session: Session, inbound: InboundMessage, reply: Reply) -> None:
    optouts.opt_out(
        session=session,
        address=inbound.from_address,
        channel=Channel.SMS,
        source="sms_keyword" if reply.exact_keyword else "sms_reply",
        actor=ACTOR,
        # The audit row keeps the words used: "stop texting me" is consent law's evidence.
        detail={"message": inbound.body, "message_sid": inbound.provider_id},
        now=inbound.received_at,
    )


def _opt_in(
    session: Session, inbound: InboundMessage, patients: list[Patient], *, was_opted_out: bool
) -> None:
    if not was_opted_out:
        return  # nothing to undo; recomputing due times now could drop one due this minute
    optouts.opt_in(
        session=session,
        address=inbound.from_address,
        channel=Channel.SMS,
        actor=ACTOR,
        source="sms_keyword",
    )
    for patient in patients:
        # Missed reminders are not replayed: the schedule resumes from now.
        refresh_next_due(patient=patient, after=inbound.received_at)


def _latest_open(
    session: Session, patients: list[Patient], *, now: dt.datetime, window: dt.timedelta
) -> Reminder | None:
    """The latest actionable reminder that reached one of the patients within the reply
    window and has no answer yet."""
    return session.scalars(
        select(Reminder)
        .where(
            Reminder.patient_id.in_([p.id for p in patients]),
            Reminder.actionable.is_(True),
            Reminder.status.in_(ANSWERABLE),
            Reminder.outcome.is_(None),
            Reminder.due_at >= now - window,
            Reminder.due_at <= now,
        )
        .order_by(Reminder.due_at.desc(), Reminder.id.desc())
        .limit(1)
    ).first()


def _snooze(
    session: Session, inbound: InboundMessage, patients: list[Patient], *, window: dt.timedelta
) -> None:
    """One re-send of the latest open reminder in 30 minutes, if that is still inside the
    patient's waking window (else nothing: the reply says so)."""
    now = inbound.received_at
    reminder = _latest_open(session, patients, now=now, window=window)
    if reminder is None:
        return
    _attach(inbound, reminder.patient, reminder)
    due_at = now + SNOOZE_DELAY
    if not within_waking_window(reminder.patient, due_at) or _snooze_pending(
        session, reminder, due_at
    ):
        return
    original = (reminder.context or {}).get(SNOOZE_OF, reminder.id)
    session.add(
        Reminder(
            patient_id=reminder.patient_id,
            plan_item_id=reminder.plan_item_id,
            kind=reminder.kind,
            channel=Channel.SMS,
            actionable=True,
            due_at=due_at,
            status=ReminderStatus.SCHEDULED,
            status_at=now,
            attempts=0,
            context={SNOOZE_OF: original},
        )
    )


def _snooze_pending(session: Session, reminder: Reminder, due_at: dt.datetime) -> bool:
    """A re-send of this plan item is already waiting (a second LATER adds none), or the
    plan itself has that item due at that very minute."""
    if reminder.plan_item_id is None:
        return False
    waiting = session.scalars(
        select(Reminder.id).where(
            Reminder.patient_id == reminder.patient_id,
            Reminder.plan_item_id == reminder.plan_item_id,
            or_(
                Reminder.status == ReminderStatus.SCHEDULED,
                (Reminder.due_at == due_at) & (Reminder.channel == Channel.SMS),
            ),
        )
    ).first()
    return waiting is not None


def within_waking_window(patient: Patient, moment: dt.datetime) -> bool:
    local = moment.astimezone(ZoneInfo(patient.timezone)).time()
    return patient.wake_start <= local and local.replace(second=0, microsecond=0) <= (
        patient.wake_end
    )


def _pause(
    session: Session, inbound: InboundMessage, patients: list[Patient], *, days: int
) -> None:
    now = inbound.received_at
    for patient in patients:
        today = now.astimezone(ZoneInfo(patient.timezone)).date()
        _pause_patient(session, patient, until=today + dt.timedelta(days=days), now=now)
        audit.record(
            session=session,
            actor=ACTOR,
            action="pause",
            clinic_id=patient.clinic_id,
            patient_id=patient.id,
            detail={"days": days, "inbound_id": inbound.id},
        )


def _warning_pause(session: Session, inbound: InboundMessage, patients: list[Patient]) -> None:
    """Stop nudging everyone on the number until the clinic has looked (open-ended pause)."""
    inbound.needs_attention = True
    for patient in patients:
        _pause_patient(session, patient, until=None, now=inbound.received_at)
        audit.record(
            session=session,
            actor=ACTOR,
            action="pause",
            clinic_id=patient.clinic_id,
            patient_id=patient.id,
            detail={"reason": "warning_sign", "inbound_id": inbound.id},
        )


def _pause_patient(
    session: Session, patient: Patient, *, until: dt.date | None, now: dt.datetime
) -> None:
    patient.status = PatientStatus.PAUSED
    patient.paused_until = until
    refresh_next_due(patient=patient, after=now)
    # Claimed ("sending") reminders are left alone: the send task checks the pause itself.
    waiting = select(Reminder).where(
        Reminder.patient_id == patient.id, Reminder.status.in_(CANCELABLE)
    )
    for reminder in session.scalars(waiting):
        reminder.status = ReminderStatus.CANCELED
        reminder.status_at = now
        reminder.error_detail = "paused"


def _pain(
    session: Session,
    inbound: InboundMessage,
    command: Command,
    score: int,
    patients: list[Patient],
    *,
    window: dt.timedelta,
) -> Command:
    """PAIN n is always a score; a bare number only while a pain question is open."""
    now = inbound.received_at
    question = _open_pain_question(session, patients, now=now, window=window)
    if command is Command.NUMBER and question is None:
        return Command.NUMBER
    patient = question.patient if question is not None else patients[0]
    _attach(inbound, patient, question)
    session.add(PainScore(patient_id=patient.id, score=score, recorded_at=now))
    if score >= CALL_PAIN_SCORE:
        inbound.needs_attention = True
    return Command.PAIN


def _open_pain_question(
    session: Session, patients: list[Patient], *, now: dt.datetime, window: dt.timedelta
) -> Reminder | None:
    """The latest pain question within the reply window that no score has answered yet."""
    question = session.scalars(
        select(Reminder)
        .where(
            Reminder.patient_id.in_([p.id for p in patients]),
            Reminder.kind == PAIN_QUESTION_KIND,
            Reminder.status.in_(ANSWERABLE),
            Reminder.due_at >= now - window,
            Reminder.due_at <= now,
        )
        .order_by(Reminder.due_at.desc(), Reminder.id.desc())
        .limit(1)
    ).first()
    if question is None:
        return None
    answered = session.scalars(
        select(PainScore.id).where(
            PainScore.patient_id == question.patient_id, PainScore.recorded_at >= question.due_at
        )
    ).first()
    return question if answered is None else None


# --- 3. answer -----------------------------------------------------------------------------


def _result(
    *, session: Session, settings: Settings, inbound: InboundMessage, reply: Reply
) -> InboundResult:
    """The answer, derived only from what is stored, so a retried webhook gets the same."""
    patient = session.get(Patient, inbound.patient_id) if inbound.patient_id else None
    if patient is None:
        quiet = reply.command is Command.STOP or optouts.is_opted_out(
            session=session, address=inbound.from_address
        )
        return InboundResult(None if quiet else _render("unknown_sender", "en", {}) or None, None)
    alert = inbound.id if inbound.command == Command.WARNING.value else None
    base = patient_context(patient)
    parts = [
        _render(message, patient.locale, base | extra)
        for message, extra in _answers(session, settings, inbound, reply, patient)
    ]
    return InboundResult(" ".join(part for part in parts if part) or None, alert)


def _answers(
    session: Session,
    settings: Settings,
    inbound: InboundMessage,
    reply: Reply,
    patient: Patient,
) -> list[tuple[str, dict[str, object]]]:
    """The system messages to answer with, and their context beyond the patient's own."""
    command = Command(inbound.command)
    twilio_answered = settings.twilio_handles_opt_out_replies and bool(reply.exact_keyword)
    answers: list[tuple[str, dict[str, object]]] = []
    if reply.warning:
        answers.append(("warning_sign", {}))
    if reply.command is Command.STOP:
        if not twilio_answered:
            answers.append(("stop_confirm", {}))
        return answers
    if command is Command.START:
        return [] if twilio_answered else [("start_confirm", {})]
    if command is Command.HELP:
        return [("help", {})]
    if answers or optouts.is_opted_out(session=session, address=inbound.from_address):
        return answers  # after STOP: nothing but safety advice, START and HELP
    return [_answer(session, inbound, reply, command)]


def _answer(
    session: Session, inbound: InboundMessage, reply: Reply, command: Command
) -> tuple[str, dict[str, object]]:
    if command in {Command.DONE, Command.SKIP, Command.SNOOZE}:
        reminder = session.get(Reminder, inbound.reminder_id) if inbound.reminder_id else None
        return _reminder_answer(inbound, command, reminder)
    if command in {Command.PAUSE, Command.PAIN} and reply.number is not None:
        return f"{command.value}_ack", {"n": reply.number}
    return "keywords", {}


def _reminder_answer(
    inbound: InboundMessage, command: Command, reminder: Reminder | None
) -> tuple[str, dict[str, object]]:
    if reminder is None:
        return "done_nothing_open", {}
    if command is Command.DONE:
        return "done_ack", {"kind": reminder.kind}
    if command is Command.SNOOZE and within_waking_window(
        reminder.patient, inbound.received_at + SNOOZE_DELAY
    ):
        return "snooze_ack", {"n": int(SNOOZE_DELAY.total_seconds() // 60)}
    if command is Command.SNOOZE:
        # Too late in the patient's day for a re-send: the reminder is let go.
        return "snooze_too_late", {}
    return "skip_ack", {}


def _render(message: str, locale: str, context: dict[str, object]) -> str:
    try:
        return render_sms(message=message, locale=locale, context=context)
    except TemplateError:
        # The reply is a courtesy; what the message did (an opt-out above all) must still
        # commit, so a broken template costs the answer, never the effect.
        log.exception("cannot render the %s reply", message)
        return ""


def patient_context(patient: Patient) -> dict[str, object]:
    clinic = patient.clinic
    return {
        "first_name": patient.first_name,
        "clinic_name": clinic.name,
        "clinic_phone": format_phone(clinic.phone),
    }


# --- the clinic alert ----------------------------------------------------------------------


def send_clinic_alert(
    *, session: Session, settings: Settings, inbound_id: int, transport: Transport
) -> None:
    """Email the clinic about a warning-sign reply: one email per patient on the number (they
    were all paused), to the clinic's address or, without one, to PTNUDGE_EMAIL_FROM.

    Runs in the worker, possibly more than once for one reply (a retried task, a retried
    webhook): a patient already alerted for this reply is skipped. A TransportError leaves
    the caller's transaction to roll back and the task to retry.
    """
    inbound = session.get(InboundMessage, inbound_id)
    if inbound is None or inbound.command != Command.WARNING.value:
        return
    for patient in _alert_patients(session, inbound):
        if _alerted(session, patient, inbound):
            continue
        to = patient.clinic.email or settings.email_from
        if not to:
            log.error("no address for the clinic alert of patient %s", patient.id)
            continue
        receipt = transport.send(_alert_message(inbound, patient, to))
        audit.record(
            session=session,
            actor="system",
            action=ALERT_SENT,
            clinic_id=patient.clinic_id,
            patient_id=patient.id,
            detail={"inbound_id": inbound.id, "message_id": receipt.provider_id},
        )


def _alert_patients(session: Session, inbound: InboundMessage) -> list[Patient]:
    if inbound.patient_id is None:
        return []
    patients = _patients_at(session, inbound.from_address)
    first = session.get(Patient, inbound.patient_id)
    others = [p for p in patients if p.id != inbound.patient_id]
    return ([first] if first is not None else []) + others


def _alerted(session: Session, patient: Patient, inbound: InboundMessage) -> bool:
    details = session.scalars(
        select(AuditEvent.detail).where(
            AuditEvent.patient_id == patient.id, AuditEvent.action == ALERT_SENT
        )
    )
    return any((detail or {}).get("inbound_id") == inbound.id for detail in details)


def _alert_message(inbound: InboundMessage, patient: Patient, to: str) -> OutboundMessage:
    clinic = patient.clinic
    email = render_email(
        message="clinic_alert",
        locale="en",
        context={
            "clinic_name": clinic.name,
            "first_name": patient.first_name,
            "patient_id": patient.id,
            "reply_text": inbound.body,
            "received_at": inbound.received_at.astimezone(ZoneInfo(clinic.timezone)),
        },
    )
    return OutboundMessage(
        channel=Channel.EMAIL,
        to=to,
        body=email.text,
        reference=f"alert{inbound.id}-p{patient.id}",
        subject=email.subject,
        html=email.html,
    )
