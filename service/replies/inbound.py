"""What a patient's text does: store it, act on it, and say what to answer.

``handle_sms`` is what the Twilio webhook calls (inside the request's transaction):

1. Deduplicate on MessageSid: the row is inserted first, and the unique key makes a retried
   (or concurrent) webhook find the first one; it then changes nothing and answers the same.
2. Store every message, body included, for the clinic (the body is never logged; past
   2,000 characters it is cut, and marked so).
3. Act on the reading of the reply (``service.replies.parser``): ``HANDLERS`` maps each
   reading to the one function that acts on it (opt out or in, record done / skipped / pain,
   snooze, pause, or pause and alert the clinic on a warning sign) and returns the command
   as recorded. A bare number answers the question (``QUESTION_KINDS``) that went out last
   within the reply window, if it has no answer yet: the pain question takes 0-10 into
   ``pain_scores``, the weekly check-in 0-7 days into ``checkin_answers``; out of range,
   nothing is stored and the answer states the range. Questions are not actionable: DONE
   never credits one.
4. Answer in the patient's language, or not at all (Twilio answered an exact opt-out
   keyword itself; a number that opted out gets nothing more but safety advice, a START
   confirmation and HELP). ``ANSWERS`` maps each recorded command to its answer, which
   reads only what is stored: a retried webhook gets the same answer without acting again.

A phone number can belong to several patients (families share phones): opting out, pausing
and the warning-sign pause apply to every patient on it, and the STOP confirmation names
every clinic on it. Any other reply belongs to the patient whose actionable reminder to that
phone went out most recently (by ``sent_at``): DONE/SKIP/LATER credit that reminder, and
HELP and free text name that patient's clinic. An answer to a question goes to the patient
whose question went out most recently.

A new reading is a ``Command`` in the parser, a handler in ``HANDLERS``, an answer in
``ANSWERS`` and, when it says something new, a message under ``templates/sms/``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from config.settings import Settings
from service import metrics
from service.db.dialects import insert_returning_new
from service.delivery.messages import patient_context
from service.delivery.rendering import (
    QUESTION_KINDS,
    TemplateError,
    render_sms,
)
from service.enrollment import optouts
from service.enrollment.patients import pause
from service.enrollment.plans import refresh_next_due, waking_window
from service.enrollment.scheduling import may_send_at, next_waking_minute
from service.masking import mask_phone
from service.models import (
    Channel,
    CheckinAnswer,
    InboundMessage,
    Outcome,
    PainScore,
    Patient,
    PatientStatus,
    Reminder,
    ReminderStatus,
)
from service.replies.alerts import record_alerts
from service.replies.emergency import emergency_number
from service.replies.outcomes import record_outcome
from service.replies.parser import Command, LaterKind, Reply, clip, parse_reply

log = logging.getLogger(__name__)

SNOOZE_DELAY = dt.timedelta(minutes=30)
PAIN_QUESTION_KIND = "pain_question"
CHECKIN_KIND = "weekly_checkin"
CHECKIN_DAYS = range(8)  # "How many days did you do your exercises this week?"
CALL_PAIN_SCORE = 8  # a pain score this high asks the clinic to look, like free text does
ACTOR = "patient_sms"
# Reminders that reached (or are reaching) the patient and can be answered.
ANSWERABLE = (ReminderStatus.SENDING, ReminderStatus.SENT, ReminderStatus.DELIVERED)
START_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
# Readings that act on the number itself, whether or not it belongs to an enrolled patient.
NUMBER_READINGS = frozenset({Command.STOP, Command.WARNING})
# Recorded commands the clinic should read even when the reply said nothing more.
UNDERSTOOD_BY_STAFF_ONLY = frozenset(
    {Command.OTHER, Command.NUMBER, Command.SYMPTOM, Command.QUIT_HELP}
)


class SenderError(ValueError):
    """The inbound ``From`` is not a phone number in international form: nothing is stored
    (a raw ``whatsapp:…``, an email address or a national number would otherwise land on
    the opt-out ledger as written, and match no patient or the wrong channel)."""


@lru_cache(maxsize=4096)
def sender_number(raw: str) -> str:
    """The ``From`` of an inbound SMS in E.164, or SenderError saying why not (remembered
    for the numbers seen last: the webhook and ``handle_sms`` both ask, and patients text
    from the same numbers all day)."""
    text = raw.strip()
    try:
        number = phonenumbers.parse(text, None) if text.startswith("+") else None
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_possible_number(number):
        raise SenderError("From must be a phone number in international form (+ and digits)")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


@dataclass(frozen=True)
class InboundResult:
    reply_text: str | None  # what to answer in TwiML; None: answer nothing
    alert_inbound_id: int | None  # set: enqueue the clinic alert for this message (after commit)


@dataclass
class Ledger:
    """The number's place on the opt-out ledger, read once per text: as it was before the
    text (on a replay: now), and as the handler left it (the answer reads that)."""

    before: bool
    now: bool


@dataclass(frozen=True)
class InboundContext:
    """One stored inbound text and what its handler and its answer read."""

    session: Session
    settings: Settings
    inbound: InboundMessage
    reply: Reply
    # Enrolled on the number; first: whose actionable reminder went out last (it names the
    # clinic), then the newest enrolled.
    patients: list[Patient]
    ledger: Ledger
    now: dt.datetime  # when the text arrived
    window: dt.timedelta  # how far back a reply may answer a reminder

    @property
    def opted_out(self) -> bool:
        """The number was opted out before this text (on a replay: now)."""
        return self.ledger.before


Handler = Callable[[InboundContext], Command]
Answer = tuple[str, dict[str, object]]  # a system message and its context beyond the patient's


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

    ``to_number`` is which of our numbers was texted; with one sender it decides nothing.
    A ``from_number`` that is not a phone number raises SenderError before anything is
    stored."""
    address = sender_number(from_number)
    body = clip(body.replace("\x00", ""))  # PostgreSQL text cannot hold NUL; no phone sends one
    inbound = _claim(session, message_sid=message_sid, address=address, body=body, now=now)
    if inbound is None:
        return _replay(session=session, settings=settings, message_sid=message_sid)
    ctx = _context(session=session, settings=settings, inbound=inbound)
    command = _act(ctx)
    inbound.command = command.value
    metrics.REPLIES.labels(command=command.value).inc()
    log.info("sms %s from %s: %s", message_sid, mask_phone(address), command.value)
    return _result(ctx)


def enrolled_at(*, session: Session, address: str) -> list[Patient]:
    """Patients on the number who are still enrolled, newest first (it names the clinic)."""
    return _enrolled(optouts.patients_at(session=session, address=address, channel=Channel.SMS))


def _enrolled(patients: list[Patient]) -> list[Patient]:
    active = [p for p in patients if p.status is not PatientStatus.REMOVED]
    return sorted(active, key=lambda p: (p.created_at, p.id), reverse=True)


# --- 1. deduplicate and store ------------------------------------------------------------


def _claim(
    session: Session, *, message_sid: str, address: str, body: str, now: dt.datetime
) -> InboundMessage | None:
    """Insert the message, or return None when this MessageSid was stored already: one
    ``INSERT … ON CONFLICT DO NOTHING RETURNING``, which waits for a concurrent delivery of
    the same webhook to commit and then inserts nothing."""
    return insert_returning_new(
        InboundMessage,
        session=session,
        unique="provider_id",
        values={
            "provider_id": message_sid,
            "channel": Channel.SMS,
            "from_address": address,
            "body": body,
            "command": Command.OTHER.value,
            "needs_attention": False,
            "received_at": now,
        },
    )


def _stored(session: Session, message_sid: str) -> InboundMessage | None:
    return session.scalars(
        select(InboundMessage).where(InboundMessage.provider_id == message_sid)
    ).first()


def _replay(*, session: Session, settings: Settings, message_sid: str) -> InboundResult:
    inbound = _stored(session, message_sid)
    if inbound is None:  # pragma: no cover - the unique key said it exists
        return InboundResult(None, None)
    return _result(_context(session=session, settings=settings, inbound=inbound))


def _context(*, session: Session, settings: Settings, inbound: InboundMessage) -> InboundContext:
    on_number, listed = optouts.patients_and_listing(
        session=session, address=inbound.from_address, channel=Channel.SMS
    )
    return InboundContext(
        session=session,
        settings=settings,
        inbound=inbound,
        reply=parse_reply(inbound.body),
        patients=_by_last_sent(session, _enrolled(on_number)),
        ledger=Ledger(before=listed, now=listed),
        now=inbound.received_at,
        window=dt.timedelta(hours=settings.reply_window_hours),
    )


def _by_last_sent(session: Session, patients: list[Patient]) -> list[Patient]:
    """The patients, whose actionable reminder went out most recently first (one query);
    patients with none keep their order after them."""
    if len(patients) < 2:
        return patients
    last_sent = dict(
        session.execute(
            select(Reminder.patient_id, func.max(Reminder.sent_at))
            .where(
                Reminder.patient_id.in_([p.id for p in patients]),
                Reminder.actionable.is_(True),
                Reminder.sent_at.is_not(None),
            )
            .group_by(Reminder.patient_id)
        )
        .tuples()
        .all()
    )
    never = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(patients, key=lambda p: _aware(last_sent.get(p.id)) or never, reverse=True)


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands an aggregate back naive: it was stored in UTC.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment


# Which reminder went out last: when the provider took it, or (still being sent) when it
# was due.
_WENT_OUT = func.coalesce(Reminder.sent_at, Reminder.due_at)


# --- 2. act --------------------------------------------------------------------------------


def _act(ctx: InboundContext) -> Command:
    """Do what the reply asks; returns the command as recorded (a number answering a pain
    question is PAIN, a warning sign is WARNING even when it came with STOP).

    1. The message belongs to the newest patient on the number until a handler finds the
       reminder it answers; every patient on the number has replied now.
    2. Without an enrolled patient only the readings about the number itself act.
    3. The reading picks its handler.
    4. A reply that says more than its command, or that only staff can read, is flagged.
    """
    if ctx.patients:
        _attach(ctx.inbound, ctx.patients[0])
    for patient in ctx.patients:
        patient.last_reply_at = ctx.now
    reading = _reading(ctx)
    if not ctx.patients and reading not in NUMBER_READINGS:
        return ctx.reply.command  # stored for the record: nobody to act for
    command = HANDLERS[reading](ctx)
    if reading not in NUMBER_READINGS and (
        ctx.reply.comment or command in UNDERSTOOD_BY_STAFF_ONLY
    ):
        ctx.inbound.needs_attention = True
    return command


def _reading(ctx: InboundContext) -> Command:
    """Which handler the reply goes to: a warning sign before everything (its handler also
    honours a STOP said with it), and a bare YES from an opted-out number is START (Twilio
    opts a number back in on it as well; so do we)."""
    reply = ctx.reply
    if reply.warning:
        return Command.WARNING
    if ctx.opted_out and reply.exact_keyword in START_KEYWORDS:
        return Command.START
    return reply.command


def _attach(inbound: InboundMessage, patient: Patient, reminder: Reminder | None = None) -> None:
    inbound.patient_id = patient.id
    inbound.clinic_id = patient.clinic_id
    if reminder is not None:
        inbound.reminder_id = reminder.id


def _keep(ctx: InboundContext) -> Command:
    """Nothing to do but store it (HELP, free text): the answer says the rest."""
    return ctx.reply.command


def _stop(ctx: InboundContext) -> Command:
    _opt_out(ctx)
    return Command.STOP


def _opt_out(ctx: InboundContext) -> None:
    inbound = ctx.inbound
    optouts.opt_out(
        session=ctx.session,
        address=inbound.from_address,
        channel=Channel.SMS,
        source="sms_keyword" if ctx.reply.exact_keyword else "sms_reply",
        actor=ACTOR,
        # The audit row keeps the words used: "stop texting me" is consent law's evidence.
        detail={"message": inbound.body, "message_sid": inbound.provider_id},
        now=inbound.received_at,
    )
    ctx.ledger.now = True


def _start(ctx: InboundContext) -> Command:
    if not ctx.opted_out:
        # Nothing to undo; recomputing due times now could drop one due this minute.
        return Command.START
    optouts.opt_in(
        session=ctx.session,
        address=ctx.inbound.from_address,
        channel=Channel.SMS,
        actor=ACTOR,
        source="sms_keyword",
    )
    ctx.ledger.now = False
    for patient in ctx.patients:
        # Missed reminders are not replayed: the schedule resumes from now.
        refresh_next_due(patient=patient, after=ctx.now)
    return Command.START


def _done_or_skipped(ctx: InboundContext) -> Command:
    command = ctx.reply.command
    reminder = _latest_open(ctx)
    if reminder is not None:
        outcome = Outcome.DONE if command is Command.DONE else Outcome.SKIPPED
        with ctx.session.no_autoflush:  # as in _latest_open: the rest is written once, at the end
            record_outcome(session=ctx.session, reminder=reminder, outcome=outcome, now=ctx.now)
        _attach(ctx.inbound, reminder.patient, reminder)
    return command


def _latest_open(ctx: InboundContext) -> Reminder | None:
    """The actionable reminder that went out last to one of the patients within the reply
    window and has no answer yet. Read without flushing first: what the text changed so far
    (who replied, whom the text belongs to) is no part of the query, and is written once, with
    the rest, at the end."""
    now = ctx.now
    with ctx.session.no_autoflush:
        return _latest_open_query(ctx, now)


def _latest_open_query(ctx: InboundContext, now: dt.datetime) -> Reminder | None:
    return ctx.session.scalars(
        select(Reminder)
        .where(
            Reminder.patient_id.in_([p.id for p in ctx.patients]),
            Reminder.actionable.is_(True),
            Reminder.status.in_(ANSWERABLE),
            Reminder.outcome.is_(None),
            Reminder.due_at >= now - ctx.window,
            Reminder.due_at <= now,
        )
        .order_by(_WENT_OUT.desc(), Reminder.id.desc())
        .limit(1)
    ).first()


def snooze_due(reply: Reply, patient: Patient, now: dt.datetime) -> dt.datetime:
    """When LATER asks for the reminder again: in the minutes it names ("in an hour"), the
    start of the next waking day ("tomorrow"), or 30 minutes by default."""
    delay = reply.delay
    if delay is None or (delay.kind is LaterKind.MINUTES and not delay.minutes):
        return now + SNOOZE_DELAY
    if delay.kind is LaterKind.MINUTES:
        return now + dt.timedelta(minutes=delay.minutes or 0)
    zone = ZoneInfo(patient.timezone)
    tomorrow = now.astimezone(zone).date() + dt.timedelta(days=1)
    midnight = dt.datetime.combine(tomorrow, dt.time(0), tzinfo=zone)
    return next_waking_minute(waking_window(patient), after=midnight)


def _snooze(ctx: InboundContext) -> Command:
    """One re-send of the latest open reminder when LATER asks (``snooze_due``), if that is
    inside the patient's waking window (else nothing: the reply says so)."""
    session, now = ctx.session, ctx.now
    reminder = _latest_open(ctx)
    if reminder is None:
        return Command.SNOOZE
    _attach(ctx.inbound, reminder.patient, reminder)
    due_at = snooze_due(ctx.reply, reminder.patient, now)
    if not may_send_at(waking_window(reminder.patient), due_at) or _snooze_pending(
        session, reminder, due_at
    ):
        return Command.SNOOZE
    # A snooze of a snooze still stands for the reminder first sent.
    original = reminder.snooze_of_id if reminder.snooze_of_id is not None else reminder.id
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
            snooze_of_id=original,
        )
    )
    return Command.SNOOZE


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


def _pause(ctx: InboundContext) -> Command:
    """PAUSE n: every patient on the number, until n days after their local today."""
    days = ctx.reply.number
    if days is None:
        return Command.PAUSE  # no usable number of days: the answer lists the keywords
    for patient in ctx.patients:
        today = ctx.now.astimezone(ZoneInfo(patient.timezone)).date()
        until = today + dt.timedelta(days=days)
        _pause_for_reply(ctx, patient, until=until, why={"days": days})
    return Command.PAUSE


def _warning(ctx: InboundContext) -> Command:
    """Stop nudging everyone on the number until the clinic has looked (open-ended pause);
    a STOP said with the warning sign opts the number out as well."""
    if ctx.reply.command is Command.STOP:
        _opt_out(ctx)
    ctx.inbound.needs_attention = True
    for patient in ctx.patients:
        _pause_for_reply(ctx, patient, until=None, why={"reason": "warning_sign"})
    # The alerts are rows of this same transaction: sent from the database, never lost.
    record_alerts(
        session=ctx.session, settings=ctx.settings, inbound=ctx.inbound, patients=ctx.patients
    )
    return Command.WARNING


def _pause_for_reply(
    ctx: InboundContext, patient: Patient, *, until: dt.date | None, why: dict[str, object]
) -> None:
    # Claimed ("sending") reminders are left alone: the send task checks the pause itself.
    detail = why | {"inbound_id": ctx.inbound.id}
    pause(
        session=ctx.session, patient=patient, until=until, actor=ACTOR, now=ctx.now, detail=detail
    )


def _number(ctx: InboundContext) -> Command:
    """PAIN n is always a score; a bare number answers the question that went out last
    while it is open (a pain score, or days of exercise), and is for the clinic otherwise."""
    if ctx.reply.command is Command.PAIN:
        return _pain(ctx, _open_question(ctx, kinds=(PAIN_QUESTION_KIND,)))
    question = _open_question(ctx, kinds=QUESTION_KINDS)
    if question is None:
        return Command.NUMBER
    if question.kind == CHECKIN_KIND:
        return _checkin(ctx, question)
    return _pain(ctx, question)


def _pain(ctx: InboundContext, question: Reminder | None) -> Command:
    score = ctx.reply.number
    if score is None:
        # Out of range: nothing is stored; the answer states the range of the question.
        if question is not None:
            _attach(ctx.inbound, question.patient, question)
        return Command.PAIN
    patient = question.patient if question is not None else ctx.patients[0]
    _attach(ctx.inbound, patient, question)
    ctx.session.add(PainScore(patient_id=patient.id, score=score, recorded_at=ctx.now))
    if score >= CALL_PAIN_SCORE:
        ctx.inbound.needs_attention = True
    return Command.PAIN


def _checkin(ctx: InboundContext, question: Reminder) -> Command:
    """Days of exercise this week, 0-7; another number is stored nowhere (the answer asks
    again, with the range)."""
    _attach(ctx.inbound, question.patient, question)
    days = _checkin_days(ctx.reply)
    if days is not None:
        ctx.session.add(
            CheckinAnswer(
                patient_id=question.patient_id,
                reminder_id=question.id,
                inbound_id=ctx.inbound.id,
                days=days,
                received_at=ctx.now,
            )
        )
    return Command.CHECKIN


def _checkin_days(reply: Reply) -> int | None:
    """The days of exercise a reply gives, when it is an answer the check-in takes (0-7)."""
    given = reply.error.given if reply.error is not None else reply.number
    return given if given in CHECKIN_DAYS else None


def _open_question(ctx: InboundContext, *, kinds: Sequence[str]) -> Reminder | None:
    """The question (of ``kinds``) that went out last to a patient on the number within the
    reply window, if it has no answer yet."""
    now = ctx.now
    question = ctx.session.scalars(
        select(Reminder)
        .where(
            Reminder.patient_id.in_([p.id for p in ctx.patients]),
            Reminder.kind.in_(kinds),
            Reminder.status.in_(ANSWERABLE),
            Reminder.due_at >= now - ctx.window,
            Reminder.due_at <= now,
        )
        .order_by(_WENT_OUT.desc(), Reminder.id.desc())
        .limit(1)
    ).first()
    if question is None or _answered(ctx.session, question):
        return None
    return question


def _answered(session: Session, question: Reminder) -> bool:
    """A pain question is answered by any score since it was asked (PAIN n included); a
    check-in by the answer stored for it."""
    if question.kind == CHECKIN_KIND:
        found = select(CheckinAnswer.id).where(CheckinAnswer.reminder_id == question.id)
    else:
        found = select(PainScore.id).where(
            PainScore.patient_id == question.patient_id, PainScore.recorded_at >= question.due_at
        )
    return session.scalars(found.limit(1)).first() is not None


HANDLERS: dict[Command, Handler] = {
    Command.STOP: _stop,
    Command.START: _start,
    Command.HELP: _keep,
    Command.DONE: _done_or_skipped,
    Command.SKIP: _done_or_skipped,
    Command.SNOOZE: _snooze,
    Command.PAUSE: _pause,
    Command.PAIN: _number,
    Command.NUMBER: _number,
    Command.CHECKIN: _number,  # never a reading, only recorded: a number all the same
    Command.WARNING: _warning,
    Command.ACK: _keep,
    Command.SYMPTOM: _keep,
    Command.QUIT_HELP: _keep,
    Command.OTHER: _keep,
}


# --- 3. answer -----------------------------------------------------------------------------


def _result(ctx: InboundContext) -> InboundResult:
    """The answer, derived only from what is stored, so a retried webhook gets the same."""
    inbound = ctx.inbound
    patient = ctx.session.get(Patient, inbound.patient_id) if inbound.patient_id else None
    if patient is None:
        quiet = ctx.reply.command is Command.STOP or _opted_out_now(ctx)
        return InboundResult(None if quiet else _render("unknown_sender", "en", {}) or None, None)
    alert = inbound.id if inbound.command == Command.WARNING.value else None
    # Safety advice names the emergency number of the clinic's country.
    base = patient_context(patient, patient.clinic) | {
        "emergency_number": emergency_number(region=patient.clinic.region)
    }
    parts = [
        _render(message, patient.locale, base | extra)
        for message, extra in ANSWERS[Command(inbound.command)](ctx)
    ]
    return InboundResult(" ".join(part for part in parts if part) or None, alert)


def _opted_out_now(ctx: InboundContext) -> bool:
    return ctx.ledger.now


def _twilio_answered(ctx: InboundContext) -> bool:
    """Twilio answers an exact opt-out keyword itself unless Advanced Opt-Out hands it to us."""
    return ctx.settings.twilio_handles_opt_out_replies and bool(ctx.reply.exact_keyword)


def _answer_stop(ctx: InboundContext) -> list[Answer]:
    """The confirmation names every clinic on the number: the opt-out is for all of them."""
    if _twilio_answered(ctx):
        return []
    names = dict.fromkeys(patient.clinic.name for patient in ctx.patients)
    return [("stop_confirm", {"clinic_name": ", ".join(names)} if names else {})]


def _answer_start(ctx: InboundContext) -> list[Answer]:
    return [] if _twilio_answered(ctx) else [("start_confirm", {})]


def _answer_help(_: InboundContext) -> list[Answer]:
    return [("help", {})]


def _answer_warning(ctx: InboundContext) -> list[Answer]:
    advice: list[Answer] = [("warning_sign", {})]
    return advice + _answer_stop(ctx) if ctx.reply.command is Command.STOP else advice


def _answer_reminder(ctx: InboundContext) -> list[Answer]:
    """DONE, SKIP, LATER: about the reminder the reply was attached to, if any."""
    if _opted_out_now(ctx):
        return []  # after STOP: nothing but safety advice, START and HELP
    inbound = ctx.inbound
    reminder = ctx.session.get(Reminder, inbound.reminder_id) if inbound.reminder_id else None
    if reminder is None:
        return [("done_nothing_open", {})]
    command = Command(inbound.command)
    if command is Command.DONE:
        return [("done_ack", {"kind": reminder.kind})]
    if command is Command.SNOOZE:
        return [_snooze_answer(ctx.reply, reminder.patient, inbound.received_at)]
    return [("skip_ack", {})]


def _snooze_answer(reply: Reply, patient: Patient, now: dt.datetime) -> Answer:
    due_at = snooze_due(reply, patient, now)
    if not may_send_at(waking_window(patient), due_at):
        # Too late in the patient's day for a re-send: the reminder is let go.
        return ("snooze_too_late", {})
    if reply.delay is not None and reply.delay.kind is LaterKind.NEXT_MORNING:
        return ("snooze_tomorrow", {"at": due_at.astimezone(ZoneInfo(patient.timezone))})
    return ("snooze_ack", {"n": int((due_at - now).total_seconds() // 60)})


def _answer_number(ctx: InboundContext) -> list[Answer]:
    """PAUSE n, PAIN n: an acknowledgement that repeats the number."""
    if _opted_out_now(ctx):
        return []
    number, error = ctx.reply.number, ctx.reply.error
    if error is not None:
        return [
            ("out_of_range", {"command": ctx.inbound.command, "low": error.low, "high": error.high})
        ]
    if number is None:
        return _answer_keywords(ctx)
    return [(f"{ctx.inbound.command}_ack", {"n": number})]


def _answer_checkin(ctx: InboundContext) -> list[Answer]:
    """The days recorded, or (nothing recorded: out of range) the range to answer in."""
    if _opted_out_now(ctx):
        return []
    days = _checkin_days(ctx.reply)  # what the handler stored, read by the same rule
    if days is not None:
        return [("checkin_ack", {"n": days})]
    low, high = CHECKIN_DAYS.start, CHECKIN_DAYS.stop - 1
    return [("out_of_range", {"command": "checkin", "low": low, "high": high})]


def _answer_keywords(ctx: InboundContext) -> list[Answer]:
    return [] if _opted_out_now(ctx) else [("keywords", {})]


def _answer_nothing(_: InboundContext) -> list[Answer]:
    """ "ok", "thanks", "👍": heard; an answer would only start a conversation about nothing."""
    return []


def _answer_symptom(ctx: InboundContext) -> list[Answer]:
    return [] if _opted_out_now(ctx) else [("symptom_ack", {})]


def _answer_quit(ctx: InboundContext) -> list[Answer]:
    """Leaving, said in other words: never an opt-out on a guess, never ignored."""
    return [] if _opted_out_now(ctx) else [("quit_help", {})]


ANSWERS: dict[Command, Callable[[InboundContext], list[Answer]]] = {
    Command.STOP: _answer_stop,
    Command.START: _answer_start,
    Command.HELP: _answer_help,
    Command.DONE: _answer_reminder,
    Command.SKIP: _answer_reminder,
    Command.SNOOZE: _answer_reminder,
    Command.PAUSE: _answer_number,
    Command.PAIN: _answer_number,
    Command.CHECKIN: _answer_checkin,
    Command.NUMBER: _answer_keywords,
    Command.WARNING: _answer_warning,
    Command.ACK: _answer_nothing,
    Command.SYMPTOM: _answer_symptom,
    Command.QUIT_HELP: _answer_quit,
    Command.OTHER: _answer_keywords,
}


def _render(message: str, locale: str, context: dict[str, object]) -> str:
    try:
        return render_sms(message=message, locale=locale, context=context)
    except TemplateError:
        # The reply is a courtesy; what the message did (an opt-out above all) must still
        # commit, so a broken template costs the answer, never the effect.
        log.exception("cannot render the %s reply", message)
        return ""
