"""The dispatcher turns due plan items into reminder rows once, and only those."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from service.delivery.dispatch import DispatchRules, dispatch_due
from service.delivery.messages import merged_kinds
from service.delivery.preview import preview
from service.enrollment import optouts
from service.enrollment.plans import refresh_next_due
from service.models import (
    Channel,
    ChannelChoice,
    Patient,
    PatientStatus,
    Reminder,
    ReminderStatus,
)
from service.web.urls import PublicUrls
from tests.factories import make_clinic, make_patient

NOW = dt.datetime(2026, 12, 2, 15, 0, 30, tzinfo=dt.UTC)  # 09:00:30 in Chicago
RULES = DispatchRules(
    stale_after=dt.timedelta(minutes=15), min_gap=dt.timedelta(minutes=10), batch_size=100
)
DAY = (dt.time(8, 0), dt.time(20, 0))


def rows(session: Session, patient: Patient) -> list[Reminder]:
    query = select(Reminder).where(Reminder.patient_id == patient.id).order_by(Reminder.due_at)
    return list(session.scalars(query))


def patient_due(session: Session, **kwargs: object) -> Patient:
    """A patient whose 09:00 stretch is due at NOW (scheduled from an hour before)."""
    clinic = make_clinic(session)
    kwargs.setdefault("items", [{"kind": "stretch", "at_times": ["09:00"]}])
    patient = make_patient(
        session,
        clinic,
        wake=DAY,
        schedule_after=NOW - dt.timedelta(hours=1),
        **kwargs,  # type: ignore[arg-type]
    )
    patient.created_at = NOW - dt.timedelta(days=1)  # enrolled yesterday: not silent
    session.flush()
    return patient


def test_a_due_item_becomes_one_queued_reminder_and_moves_to_its_next_time(
    session: Session,
) -> None:
    patient = patient_due(session)
    result = dispatch_due(session=session, rules=RULES, now=NOW)
    [reminder] = rows(session, patient)
    assert result.to_send == [reminder.id]
    assert reminder.status is ReminderStatus.QUEUED
    assert reminder.due_at == dt.datetime(2026, 12, 2, 15, 0, tzinfo=dt.UTC)
    assert reminder.to_address == patient.phone
    session.refresh(patient.plan_items[0])
    assert patient.plan_items[0].next_due_at == dt.datetime(2026, 12, 3, 15, 0, tzinfo=dt.UTC)


def test_dispatching_again_creates_nothing_more(session: Session) -> None:
    patient = patient_due(session)
    dispatch_due(session=session, rules=RULES, now=NOW)
    # A second dispatcher that read the old due time (or a re-run) hits the unique key.
    patient.plan_items[0].next_due_at = dt.datetime(2026, 12, 2, 15, 0, tzinfo=dt.UTC)
    session.flush()
    again = dispatch_due(session=session, rules=RULES, now=NOW)
    assert again.to_send == []
    assert len(rows(session, patient)) == 1


def test_an_idle_pass_touches_nothing(session: Session) -> None:
    patient = patient_due(session)
    result = dispatch_due(session=session, rules=RULES, now=NOW - dt.timedelta(minutes=5))
    assert result.claimed == 0
    assert result.to_send == []
    assert rows(session, patient) == []


def test_a_run_of_missed_nudges_leaves_at_most_one_to_send(session: Session) -> None:
    clinic = make_clinic(session)
    patient = make_patient(
        session,
        clinic,
        wake=DAY,
        items=[{"kind": "position_change", "every_minutes": 60}],
        max_per_day=20,
        schedule_after=NOW - dt.timedelta(hours=7),  # down since 02:00 local: due 08:00
    )
    patient.last_reply_at = NOW - dt.timedelta(hours=8)
    later = NOW + dt.timedelta(hours=4)  # 13:00:30 local
    result = dispatch_due(session=session, rules=RULES, now=later)
    found = rows(session, patient)
    statuses = [r.status for r in found]
    assert statuses.count(ReminderStatus.QUEUED) == 1
    assert found[-1].status is ReminderStatus.QUEUED  # the 13:00 one, on time
    assert set(statuses[:-1]) == {ReminderStatus.EXPIRED}
    assert len(found) == 6  # 08:00 … 13:00
    assert result.to_send == [found[-1].id]


def test_a_reminder_that_is_already_stale_is_expired_not_sent(session: Session) -> None:
    patient = patient_due(session)
    result = dispatch_due(session=session, rules=RULES, now=NOW + dt.timedelta(minutes=40))
    [reminder] = rows(session, patient)
    assert reminder.status is ReminderStatus.EXPIRED
    assert result.to_send == []


def test_reminders_within_the_minimum_gap_are_merged_into_one_message(session: Session) -> None:
    patient = patient_due(
        session,
        items=[
            {"kind": "stretch", "at_times": ["09:00"]},
            {"kind": "pelvic_tilt", "at_times": ["09:05"]},
            {"kind": "leg_strength", "at_times": ["09:30"]},
        ],
    )
    result = dispatch_due(session=session, rules=RULES, now=NOW)
    stretch, tilt = rows(session, patient)
    assert result.to_send == [stretch.id]
    assert tilt.status is ReminderStatus.MERGED
    assert tilt.merged_into_id == stretch.id
    # 09:30 is outside the gap: it stays due on its own.
    nexts = {item.kind: item.next_due_at for item in patient.plan_items}
    assert nexts["leg_strength"] == dt.datetime(2026, 12, 2, 15, 30, tzinfo=dt.UTC)


def test_the_kinds_merged_into_a_message_are_read_back_by_due_time_then_plan_order(
    session: Session,
) -> None:
    patient_due(
        session,
        items=[
            {"kind": "stretch", "at_times": ["09:00"]},
            {"kind": "leg_strength", "at_times": ["09:05"]},
            {"kind": "pelvic_tilt", "at_times": ["09:04"]},
            {"kind": "posture", "at_times": ["09:05"]},
        ],
    )
    result = dispatch_due(session=session, rules=RULES, now=NOW)
    [head_id] = result.to_send

    found = merged_kinds(session=session, head_ids=[head_id, head_id + 1000])

    assert found == {head_id: ["pelvic_tilt", "leg_strength", "posture"]}


def test_each_channel_gets_its_own_reminder_and_an_opted_out_one_gets_none(
    session: Session,
) -> None:
    patient = patient_due(session, channel=ChannelChoice.BOTH, email="ana@example.org")
    assert patient.phone is not None
    optouts.opt_out(
        session=session, address=patient.phone, channel=Channel.SMS, source="test", actor="t"
    )
    dispatch_due(session=session, rules=RULES, now=NOW)
    [reminder] = rows(session, patient)
    assert reminder.channel is Channel.EMAIL


def test_a_patient_paused_without_end_gets_nothing_and_has_nothing_due(
    session: Session,
) -> None:
    patient = patient_due(session)
    patient.status = PatientStatus.PAUSED
    session.flush()
    dispatch_due(session=session, rules=RULES, now=NOW)
    assert rows(session, patient) == []
    assert patient.plan_items[0].next_due_at is None


def test_a_snooze_for_later_is_queued_when_due_and_not_before(session: Session) -> None:
    patient = patient_due(session)
    snooze = Reminder(
        patient_id=patient.id,
        kind="stretch",
        channel=Channel.SMS,
        due_at=NOW + dt.timedelta(minutes=30),
        status=ReminderStatus.SCHEDULED,
    )
    session.add(snooze)
    session.flush()
    dispatch_due(session=session, rules=RULES, now=NOW)
    assert snooze.status is ReminderStatus.SCHEDULED
    result = dispatch_due(session=session, rules=RULES, now=NOW + dt.timedelta(minutes=31))
    session.refresh(snooze)
    assert snooze.status is ReminderStatus.QUEUED
    assert snooze.id in result.to_send


def went_out(session: Session, patient: Patient, moment: dt.datetime) -> None:
    """A stretch reminder delivered at ``moment``."""
    session.add(
        Reminder(
            patient_id=patient.id,
            kind="stretch",
            channel=Channel.SMS,
            due_at=moment,
            status=ReminderStatus.DELIVERED,
            sent_at=moment,
        )
    )
    session.flush()


def test_a_patient_silent_for_three_days_gets_one_reengagement_then_one_a_day(
    session: Session,
) -> None:
    patient = patient_due(
        session,
        items=[
            {"kind": "stretch", "at_times": ["09:00"]},
            {"kind": "pelvic_tilt", "at_times": ["11:00"]},
            {"kind": "leg_strength", "at_times": ["13:00"]},
        ],
    )
    patient.created_at = NOW - dt.timedelta(days=10)
    patient.last_reply_at = NOW - dt.timedelta(days=4)
    went_out(session, patient, NOW - dt.timedelta(days=9))
    session.flush()
    for hours in (0, 2, 4):
        dispatch_due(session=session, rules=RULES, now=NOW + dt.timedelta(hours=hours))
    found = {r.kind: r for r in rows(session, patient) if r.due_at > NOW - dt.timedelta(hours=1)}
    assert found["reengage"].status is ReminderStatus.QUEUED
    assert found["reengage"].actionable is False
    assert found["stretch"].status is ReminderStatus.CANCELED  # replaced by the re-engagement
    assert found["pelvic_tilt"].status is ReminderStatus.QUEUED  # the one of the day
    assert found["leg_strength"].status is ReminderStatus.CANCELED


def test_any_reply_restores_the_full_program(session: Session) -> None:
    patient = patient_due(session, items=[{"kind": "stretch", "at_times": ["09:00"]}])
    patient.created_at = NOW - dt.timedelta(days=10)
    patient.last_reply_at = NOW - dt.timedelta(hours=5)
    session.flush()
    dispatch_due(session=session, rules=RULES, now=NOW)
    [reminder] = rows(session, patient)
    assert reminder.status is ReminderStatus.QUEUED


def test_reminders_exactly_the_minimum_gap_apart_leave_as_two_messages_each_on_time(
    session: Session,
) -> None:
    patient = patient_due(
        session,
        items=[
            {"kind": "stretch", "at_times": ["09:00"]},
            {"kind": "heat", "at_times": ["09:10"]},
        ],
    )

    first = dispatch_due(session=session, rules=RULES, now=NOW)

    [stretch] = rows(session, patient)
    assert first.to_send == [stretch.id]
    assert stretch.kind == "stretch"
    assert stretch.status is ReminderStatus.QUEUED
    ten_past = NOW + dt.timedelta(minutes=10)  # 09:10:30 in Chicago
    second = dispatch_due(session=session, rules=RULES, now=ten_past)
    heat = rows(session, patient)[-1]
    assert heat.kind == "heat"
    assert second.to_send == [heat.id]
    assert heat.due_at == dt.datetime(2026, 12, 2, 15, 10, tzinfo=dt.UTC)


def test_reminders_less_than_the_minimum_gap_apart_leave_as_one_message(
    session: Session,
) -> None:
    patient = patient_due(
        session,
        items=[
            {"kind": "stretch", "at_times": ["09:00"]},
            {"kind": "heat", "at_times": ["09:09"]},
        ],
    )

    result = dispatch_due(session=session, rules=RULES, now=NOW)

    stretch, heat = rows(session, patient)
    assert result.to_send == [stretch.id]
    assert heat.status is ReminderStatus.MERGED
    assert heat.merged_into_id == stretch.id


def welcome_due(session: Session, patient: Patient, due_at: dt.datetime) -> Reminder:
    welcome = Reminder(
        patient_id=patient.id,
        kind="welcome",
        channel=Channel.SMS,
        actionable=False,
        due_at=due_at,
        status=ReminderStatus.SCHEDULED,
    )
    session.add(welcome)
    session.flush()
    return welcome


def test_a_welcome_due_at_night_waits_for_the_start_of_the_waking_window(
    session: Session,
) -> None:
    clinic = make_clinic(session)
    patient = make_patient(session, clinic, timezone="Asia/Tokyo", wake=DAY)
    enrolled = dt.datetime(2026, 12, 2, 18, 51, tzinfo=dt.UTC)  # 03:51 in Tokyo
    welcome = welcome_due(session, patient, enrolled)

    at_night = dispatch_due(session=session, rules=RULES, now=enrolled + dt.timedelta(seconds=15))

    assert welcome.id not in at_night.to_send
    session.refresh(welcome)
    assert welcome.status is ReminderStatus.SCHEDULED
    opening = dt.datetime(2026, 12, 2, 23, 0, tzinfo=dt.UTC)  # 08:00 in Tokyo
    assert welcome.due_at == opening
    before = dispatch_due(session=session, rules=RULES, now=opening - dt.timedelta(seconds=1))
    assert welcome.id not in before.to_send
    at_eight = dispatch_due(session=session, rules=RULES, now=opening + dt.timedelta(seconds=10))
    assert at_eight.to_send == [welcome.id]
    session.refresh(welcome)
    assert welcome.status is ReminderStatus.QUEUED


CORE_ITEMS = [
    {"kind": "position_change", "every_minutes": 60},
    {"kind": "stretch", "at_times": ["09:00", "13:00", "18:30"]},
    {"kind": "pelvic_tilt", "at_times": ["10:30"]},
    {"kind": "leg_strength", "at_times": ["11:00"], "days": ["mon", "wed", "fri"]},
    {"kind": "walk_or_cycle", "at_times": ["16:00"], "days": ["tue", "thu", "sat"]},
]


MORNING = dt.datetime(2026, 12, 2, 14, 0, tzinfo=dt.UTC)  # 08:00 CST, a Wednesday
Message = tuple[dt.datetime, Channel, list[str]]  # due, channel, the kinds it carries


def day_shown(session: Session, settings: Settings, patient: Patient) -> list[Message]:
    """The preview of the day from MORNING, as (due, channel, kinds)."""
    shown = preview(
        session=session,
        settings=settings,
        patient=patient,
        start=MORNING,
        days=1,
        urls=PublicUrls(settings.public_url),
    )
    return [(entry.due_at, entry.channel, sorted(entry.kinds)) for entry in shown]


def day_sent(session: Session, patient: Patient) -> list[Message]:
    """The messages the patient's queued reminders make, with what was merged into each."""
    found = rows(session, patient)
    merged = [r for r in found if r.status is ReminderStatus.MERGED]
    return [
        (
            r.due_at,
            r.channel,
            sorted([r.kind, *(m.kind for m in merged if m.merged_into_id == r.id)]),
        )
        for r in found
        if r.status is ReminderStatus.QUEUED
    ]


def dispatch_the_day(session: Session) -> None:
    """A pass every five minutes from MORNING to 20:00."""
    for step in range(12 * 12 + 1):
        dispatch_due(session=session, rules=RULES, now=MORNING + dt.timedelta(minutes=5 * step))


def answering_from_the_morning(session: Session, patient: Patient) -> None:
    patient.last_reply_at = MORNING  # answering: no back-off
    refresh_next_due(patient=patient, after=MORNING - dt.timedelta(minutes=1))
    session.flush()


def test_the_dispatcher_sends_the_day_the_preview_shows(
    session: Session, settings: Settings
) -> None:
    # stenosis-core in Chicago on Wednesday 2026-12-02; ticks every five minutes all day.
    patient = patient_due(session, items=CORE_ITEMS)
    answering_from_the_morning(session, patient)
    shown = day_shown(session, settings, patient)

    dispatch_the_day(session)

    assert day_sent(session, patient) == shown
    assert len(shown) == 10


def test_patients_who_share_a_plan_are_each_sent_the_day_their_preview_shows(
    session: Session, settings: Settings
) -> None:
    """A pass computes a plan's day once for every patient on it: each still gets their
    own items, channels and merges. The second patient's items were added in the reverse
    order (their ids run against the plan's order), the third is on the same plan by
    email and text."""
    patients = [
        patient_due(session, items=CORE_ITEMS),
        patient_due(session, items=CORE_ITEMS[::-1]),
        patient_due(session, items=CORE_ITEMS, channel=ChannelChoice.BOTH, email="a@example.org"),
    ]
    for patient in patients:
        answering_from_the_morning(session, patient)
    shown = {patient.id: day_shown(session, settings, patient) for patient in patients}

    dispatch_the_day(session)

    for patient in patients:
        found = rows(session, patient)
        own = {item.id: item.kind for item in patient.plan_items}
        assert all(own[r.plan_item_id] == r.kind for r in found if r.plan_item_id is not None)
        assert sorted(day_sent(session, patient)) == sorted(shown[patient.id])
    assert len(shown[patients[2].id]) == 20  # each message by text and by email


def test_silence_counts_from_the_first_reminder_that_went_out_not_from_enrollment(
    session: Session,
) -> None:
    # Enrolled ten days ago to start today: nothing has gone out yet, so nobody is silent.
    patient = patient_due(session)
    patient.created_at = NOW - dt.timedelta(days=10)
    session.flush()

    result = dispatch_due(session=session, rules=RULES, now=NOW)

    [reminder] = rows(session, patient)
    assert reminder.kind == "stretch"
    assert reminder.status is ReminderStatus.QUEUED
    assert result.to_send == [reminder.id]


def test_a_patient_silent_since_their_first_reminder_went_out_is_backed_off(
    session: Session,
) -> None:
    patient = patient_due(session)
    patient.created_at = NOW - dt.timedelta(days=10)
    first_sent = NOW - dt.timedelta(days=4)
    went_out(session, patient, first_sent)

    dispatch_due(session=session, rules=RULES, now=NOW)

    kinds = {r.kind: r.status for r in rows(session, patient) if r.due_at > first_sent}
    assert kinds == {"reengage": ReminderStatus.QUEUED, "stretch": ReminderStatus.CANCELED}


def test_one_pass_backs_off_only_the_patients_whose_first_reminder_went_out_long_ago(
    session: Session,
) -> None:
    silent, recent = patient_due(session), patient_due(session)
    for patient in (silent, recent):
        patient.created_at = NOW - dt.timedelta(days=10)
    went_out(session, silent, NOW - dt.timedelta(days=5))
    went_out(session, recent, NOW - dt.timedelta(days=2))
    went_out(session, recent, NOW - dt.timedelta(days=1))

    dispatch_due(session=session, rules=RULES, now=NOW)

    def today(patient: Patient) -> dict[str, ReminderStatus]:
        return {r.kind: r.status for r in rows(session, patient) if r.due_at > NOW - DAY_AGO}

    assert today(silent) == {"reengage": ReminderStatus.QUEUED, "stretch": ReminderStatus.CANCELED}
    assert today(recent) == {"stretch": ReminderStatus.QUEUED}


DAY_AGO = dt.timedelta(hours=12)


def test_in_back_off_the_one_daily_reminder_rotates_through_the_kinds_exercises_first(
    session: Session,
) -> None:
    clinic = make_clinic(session)
    first_day = dt.datetime(2026, 12, 2, 14, 0, tzinfo=dt.UTC)  # 08:00 CST
    patient = make_patient(
        session,
        clinic,
        wake=DAY,
        items=[
            {"kind": "position_change", "every_minutes": 60},
            {"kind": "stretch", "at_times": ["09:00"]},
            {"kind": "pelvic_tilt", "at_times": ["11:00"]},
        ],
        max_per_day=20,  # every hourly nudge is in the plan: the back-off alone thins it
        schedule_after=first_day - dt.timedelta(minutes=1),
    )
    # Silent since the morning of the first day (no reply to the first reminder, three days
    # before), and already asked to come back.
    patient.created_at = first_day - dt.timedelta(days=5)
    went_out(session, patient, first_day - dt.timedelta(days=3, minutes=30))
    session.add(
        Reminder(
            patient_id=patient.id,
            kind="reengage",
            channel=Channel.SMS,
            actionable=False,
            due_at=first_day - dt.timedelta(minutes=10),
            status=ReminderStatus.SENT,
            sent_at=first_day - dt.timedelta(minutes=10),
        )
    )
    session.flush()

    for day in range(4):
        for hour in range(13):
            moment = first_day + dt.timedelta(days=day, hours=hour, seconds=30)
            dispatch_due(session=session, rules=RULES, now=moment)

    found = rows(session, patient)
    sent = [r for r in found if r.actionable and r.status is ReminderStatus.QUEUED]
    carried = [
        (r.due_at.day, sorted([r.kind, *(m.kind for m in found if m.merged_into_id == r.id)]))
        for r in sent
    ]
    # One message a day: the stretch (with the 09:00 position change it travels with), then
    # the pelvic tilts, then a position change on its own, then the stretch again.
    assert carried == [
        (2, ["position_change", "stretch"]),
        (3, ["pelvic_tilt", "position_change"]),
        (4, ["position_change"]),
        (5, ["position_change", "stretch"]),
    ]
    assert [r.due_at.hour for r in sent] == [15, 17, 14, 15]  # 09:00, 11:00, 08:00, 09:00


def test_a_question_goes_out_by_text_alone_and_asks_for_no_done(
    session: Session, settings: Settings
) -> None:
    patient = patient_due(
        session,
        channel=ChannelChoice.BOTH,
        email="ana@example.org",
        items=[
            {"kind": "stretch", "at_times": ["09:00"]},
            {"kind": "pain_question", "at_times": ["09:00"]},
        ],
    )

    result = dispatch_due(session=session, rules=RULES, now=NOW)

    found = {(r.kind, r.channel): r for r in rows(session, patient)}
    assert set(found) == {
        ("stretch", Channel.SMS),
        ("stretch", Channel.EMAIL),
        ("pain_question", Channel.SMS),
    }
    question = found["pain_question", Channel.SMS]
    # Due with the stretch, it still leaves as a message of its own.
    assert (question.actionable, question.status) == (False, ReminderStatus.QUEUED)
    assert found["stretch", Channel.SMS].status is ReminderStatus.QUEUED
    assert question.id in result.to_send
    # The preview shows the day as it is sent.
    shown = preview(
        session=session,
        settings=settings,
        patient=patient,
        start=NOW - dt.timedelta(hours=1),
        days=1,
        urls=PublicUrls(settings.public_url),
    )
    assert {(entry.kinds, entry.channel) for entry in shown} == {
        (("stretch",), Channel.SMS),
        (("stretch",), Channel.EMAIL),
        (("pain_question",), Channel.SMS),
    }


def test_a_pass_looking_ahead_claims_what_falls_due_before_the_next_tick_with_its_instant(
    session: Session,
) -> None:
    patient = patient_due(session)
    due = dt.datetime(2026, 12, 2, 15, 0, tzinfo=dt.UTC)
    ahead = dataclasses.replace(RULES, ahead=dt.timedelta(seconds=15))

    too_early = dispatch_due(session=session, rules=ahead, now=due - dt.timedelta(seconds=20))
    result = dispatch_due(session=session, rules=ahead, now=due - dt.timedelta(seconds=10))

    assert too_early.claimed == 0
    [reminder] = rows(session, patient)
    assert result.to_send == [reminder.id]
    assert result.send_at == {reminder.id: due}
    assert reminder.status is ReminderStatus.QUEUED
    # The sweeper counts its wait from the due time, not from the early claim.
    assert reminder.queued_at == due
    session.refresh(patient.plan_items[0])
    assert patient.plan_items[0].next_due_at == due + dt.timedelta(days=1)


def test_a_question_claimed_ahead_waits_for_its_instant_like_the_reminder_beside_it(
    session: Session,
) -> None:
    patient = patient_due(
        session,
        items=[
            {"kind": "stretch", "at_times": ["09:00"]},
            {"kind": "pain_question", "at_times": ["09:00"]},
        ],
    )
    due = dt.datetime(2026, 12, 2, 15, 0, tzinfo=dt.UTC)
    ahead = dataclasses.replace(RULES, ahead=dt.timedelta(seconds=15))

    result = dispatch_due(session=session, rules=ahead, now=due - dt.timedelta(seconds=10))

    found = {r.kind: r.id for r in rows(session, patient)}
    assert set(found) == {"stretch", "pain_question"}
    assert sorted(result.to_send) == sorted(found.values())
    assert result.send_at == {found["stretch"]: due, found["pain_question"]: due}


def test_a_reminder_already_due_has_no_instant_to_wait_for(session: Session) -> None:
    patient_due(session)
    ahead = dataclasses.replace(RULES, ahead=dt.timedelta(seconds=15))
    result = dispatch_due(session=session, rules=ahead, now=NOW)
    assert len(result.to_send) == 1
    assert result.send_at == {}


def test_a_late_pass_looking_ahead_keeps_the_next_nudge_just_past_the_minimum_gap(
    session: Session,
) -> None:
    """Looking ahead must not widen what the minimum gap swallows: a nudge every 11 minutes
    dispatched 50 s late keeps its next one, 11 minutes after it, as a message of its own."""
    patient = patient_due(
        session, items=[{"kind": "stretch", "every_minutes": 11}], max_per_day=200
    )
    item = patient.plan_items[0]
    assert item.next_due_at is not None
    first = item.next_due_at
    ahead = dataclasses.replace(RULES, ahead=dt.timedelta(seconds=15))

    dispatch_due(session=session, rules=ahead, now=first + dt.timedelta(seconds=50))

    session.refresh(item)
    assert item.next_due_at == first + dt.timedelta(minutes=11)
