"""Adherence figures from real databases (SQLite and PostgreSQL), checked number by number."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from service.models import CheckinAnswer, Outcome, PatientStatus, ReminderStatus
from service.reporting.adherence import (
    Counts,
    Flag,
    PainPoint,
    PatientAdherence,
    build_report,
    current_streak,
    pain_slope_per_week,
    patient_adherence,
)
from tests.factories import make_clinic, make_patient
from tests.service.reporting.report_data import add_pain, add_reminder, add_reply, local

# Thursday 26 Nov 2026, 14:00 in Chicago (CST, UTC-6).
NOW = dt.datetime(2026, 11, 26, 20, 0, tzinfo=dt.UTC)
SINCE = local(dt.date(2026, 11, 16), 0)  # Monday 16 Nov, local midnight
D = dt.date


def only(
    session: Session, *, clinic_id: int | None = None, threshold: float = 0.5
) -> list[PatientAdherence]:
    return patient_adherence(
        session=session, clinic_id=clinic_id, since=SINCE, now=NOW, threshold=threshold
    )


def test_counts_only_delivered_actionable_reminders_of_the_period(session: Session) -> None:
    clinic = make_clinic(session)
    ana = make_patient(session, clinic, first_name="Ana")
    add_reminder(session, ana, due_at=local(D(2026, 11, 15), 9), outcome=Outcome.DONE)  # before
    add_reminder(session, ana, due_at=local(D(2026, 11, 16), 9), outcome=Outcome.DONE)
    add_reminder(session, ana, due_at=local(D(2026, 11, 16), 13), outcome=Outcome.SKIPPED)
    add_reminder(
        session, ana, due_at=local(D(2026, 11, 16), 18, 30), kind="pelvic_tilt",
        status=ReminderStatus.SENT,
    )  # fmt: skip
    add_reminder(session, ana, due_at=local(D(2026, 11, 17), 9), status=ReminderStatus.FAILED)
    add_reminder(session, ana, due_at=local(D(2026, 11, 17), 10), actionable=False)
    add_reminder(session, ana, due_at=local(D(2026, 11, 17), 11), status=ReminderStatus.EXPIRED)
    add_reminder(session, ana, due_at=local(D(2026, 11, 17), 12), status=ReminderStatus.CANCELED)
    add_reminder(session, ana, due_at=local(D(2026, 11, 24), 9), outcome=Outcome.DONE)
    add_reminder(session, ana, due_at=local(D(2026, 11, 25), 9), outcome=Outcome.DONE)
    # Due 5 hours ago: still inside the 12-hour reply window, so pending, not unanswered.
    add_reminder(session, ana, due_at=local(D(2026, 11, 26), 9), kind="pelvic_tilt")
    add_reminder(session, ana, due_at=local(D(2026, 11, 26), 18, 30), status=ReminderStatus.QUEUED)
    session.flush()

    [result] = only(session)

    assert (result.delivered, result.done, result.skipped, result.unanswered) == (6, 3, 1, 1)
    assert result.pending == 1
    assert result.adherence == 0.5
    assert {kind.kind: kind.counts for kind in result.per_kind} == {
        "pelvic_tilt": Counts(delivered=2, done=0, skipped=0, unanswered=1),
        "stretch": Counts(delivered=4, done=3, skipped=1, unanswered=0),
    }
    assert [(w.week, w.start, w.counts) for w in result.weekly] == [
        ("2026-W47", D(2026, 11, 16), Counts(delivered=3, done=1, skipped=1, unanswered=1)),
        ("2026-W48", D(2026, 11, 23), Counts(delivered=3, done=2, skipped=0, unanswered=0)),
    ]
    # Today (1 pending of 1) does not count yet; Tue 24 and Wed 25 do; the week-end and the
    # failed/expired-only Tuesday 17 are passed over; Monday 16 (1 of 3) ends the streak.
    assert result.streak == 2


def test_adherence_is_none_when_nothing_was_delivered(session: Session) -> None:
    clinic = make_clinic(session)
    ana = make_patient(session, clinic)
    add_reminder(session, ana, due_at=local(D(2026, 11, 20), 9), status=ReminderStatus.FAILED)
    session.flush()

    [result] = only(session)

    assert result.delivered == 0
    assert result.adherence is None
    assert result.streak == 0
    assert Flag.BELOW_THRESHOLD not in result.flags
    assert [w.adherence for w in result.weekly] == [None, None]


def test_days_are_the_patients_own_local_days(session: Session) -> None:
    """09:00 and 15:00 in Auckland (UTC+13) fall on two different UTC dates: grouped by UTC
    date, Wednesday would look like a day with nothing done and end the streak."""
    auckland = ZoneInfo("Pacific/Auckland")
    clinic = make_clinic(session)
    kiri = make_patient(session, clinic, first_name="Kiri", timezone="Pacific/Auckland")
    wednesday = D(2026, 11, 25)
    add_reminder(session, kiri, due_at=local(wednesday, 9, zone=auckland), outcome=Outcome.DONE)
    add_reminder(session, kiri, due_at=local(wednesday, 15, zone=auckland))
    session.flush()
    now = local(D(2026, 11, 26), 20, zone=auckland)

    [result] = patient_adherence(session=session, since=now - dt.timedelta(days=7), now=now)

    assert result.streak == 1
    assert [(w.week, w.counts.delivered) for w in result.weekly] == [
        ("2026-W47", 0),
        ("2026-W48", 2),
    ]


def test_clinic_option_limits_the_report_to_that_clinic(session: Session) -> None:
    lakeside = make_clinic(session)
    riverside = make_clinic(session)
    ana = make_patient(session, lakeside, first_name="Ana")
    ben = make_patient(session, riverside, first_name="Ben")
    gone = make_patient(session, lakeside, first_name="Gone")
    gone.status = PatientStatus.REMOVED
    for patient in (ana, ben, gone):
        add_reminder(session, patient, due_at=local(D(2026, 11, 20), 9), outcome=Outcome.DONE)
    add_reply(session, ben, at=local(D(2026, 11, 20), 9, 30), command="warning")
    add_pain(session, ben, at=local(D(2026, 11, 20), 19), score=9)
    session.flush()

    [result] = only(session, clinic_id=lakeside.id)
    everyone = only(session)

    assert (result.first_name, result.clinic, result.delivered) == ("Ana", lakeside.slug, 1)
    assert result.flags == ()
    assert result.pain.points == ()
    assert sorted(p.first_name for p in everyone) == ["Ana", "Ben"]


def test_pain_trend_has_the_latest_score_and_its_weekly_slope(session: Session) -> None:
    clinic = make_clinic(session)
    ana = make_patient(session, clinic)
    add_pain(session, ana, at=local(D(2026, 11, 10), 19), score=9)  # before the period
    for day, score in ((16, 8), (19, 7), (22, 5)):
        add_pain(session, ana, at=local(D(2026, 11, day), 19), score=score)
    session.flush()

    [result] = only(session)

    assert [p.score for p in result.pain.points] == [8, 7, 5]
    assert result.pain.latest is not None
    assert result.pain.latest.score == 5
    assert result.pain.slope_per_week == pytest.approx(-3.5)
    assert result.pain.direction == "improving"
    assert result.to_dict()["pain"]["latest_at"] == "2026-11-23T01:00:00+00:00"


def test_pain_trend_says_the_first_score_and_the_mean(session: Session) -> None:
    ana = make_patient(session, make_clinic(session))
    for day, score in ((16, 8), (19, 7), (22, 5)):
        add_pain(session, ana, at=local(D(2026, 11, day), 19), score=score)
    session.flush()

    [result] = only(session)

    pain = result.to_dict()["pain"]
    assert (pain["first"], pain["latest"], pain["mean"]) == (8, 5, 6.67)


def test_self_reported_days_are_the_weekly_check_in_answers_of_the_period(
    session: Session,
) -> None:
    ana = make_patient(session, make_clinic(session))
    for day, days in ((15, 1), (22, 4), (25, 6)):  # the 15th is before the period
        session.add(
            CheckinAnswer(patient_id=ana.id, days=days, received_at=local(D(2026, 11, day), 18))
        )
    session.flush()

    [result] = only(session)

    assert [p.days for p in result.self_reported.points] == [4, 6]
    assert result.to_dict()["self_reported_days"] == {
        "latest": 6,
        "latest_at": "2026-11-26T00:00:00+00:00",
        "mean": 5.0,
        "count": 2,
        "points": [
            {"at": "2026-11-23T00:00:00+00:00", "days": 4},
            {"at": "2026-11-26T00:00:00+00:00", "days": 6},
        ],
    }


def test_questions_never_enter_the_done_based_figures(session: Session) -> None:
    ana = make_patient(session, make_clinic(session))
    add_reminder(session, ana, due_at=local(D(2026, 11, 22), 17, 30), kind="weekly_checkin",
                 actionable=False)  # fmt: skip
    add_reminder(session, ana, due_at=local(D(2026, 11, 24), 14, 30), kind="pain_question",
                 actionable=False)  # fmt: skip
    add_reminder(session, ana, due_at=local(D(2026, 11, 24), 9), outcome=Outcome.DONE)
    session.flush()

    [result] = only(session)

    assert (result.delivered, result.done, result.adherence) == (1, 1, 1.0)
    assert [kind.kind for kind in result.per_kind] == ["stretch"]


def test_pain_direction_needs_two_moments() -> None:
    at = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    assert pain_slope_per_week([PainPoint(at, 4)]) is None
    assert pain_slope_per_week([PainPoint(at, 4), PainPoint(at, 6)]) is None
    rising = [PainPoint(at, 4), PainPoint(at + dt.timedelta(days=14), 5)]
    assert pain_slope_per_week(rising) == pytest.approx(0.5)


def test_last_reply_is_the_latest_message_with_its_command(session: Session) -> None:
    clinic = make_clinic(session)
    ana = make_patient(session, clinic)
    add_reply(session, ana, at=local(D(2026, 11, 20), 9), command="done")
    add_reply(session, ana, at=local(D(2026, 11, 24), 8), command="other", needs_attention=True)
    add_reply(session, ana, at=local(D(2026, 11, 22), 8), command="done")
    session.flush()

    [result] = only(session)

    assert result.last_reply.at == local(D(2026, 11, 24), 8)
    assert result.last_reply.command == "other"
    assert result.flags == (Flag.WAITING,)


def test_open_replies_are_listed_oldest_first_and_a_closed_one_waits_no_more(
    session: Session,
) -> None:
    clinic = make_clinic(session)
    ana = make_patient(session, clinic, first_name="Ana")
    bo = make_patient(session, clinic, first_name="Bo")
    add_reply(session, ana, at=local(D(2026, 11, 3), 9), command="other", body="old question")
    first = add_reply(
        session,
        ana,
        at=local(D(2026, 11, 24), 8),
        command="other",
        needs_attention=True,
        body="Can I do the stretches after my walk?",
    )
    warning = add_reply(
        session,
        ana,
        at=local(D(2026, 11, 25), 7),
        command="warning",
        needs_attention=True,
        body="my legs went numb",
    )
    closed = add_reply(
        session, bo, at=local(D(2026, 11, 24), 8), command="other", needs_attention=True
    )
    closed.acknowledged_at, closed.acknowledged_by = local(D(2026, 11, 24), 9), "staff"
    session.flush()

    found = {p.first_name: p for p in only(session)}

    assert [(r.id, r.text, r.reading) for r in found["Ana"].open_replies] == [
        (first.id, "Can I do the stretches after my walk?", "other"),
        (warning.id, "my legs went numb", "warning"),
    ]
    assert Flag.WAITING in found["Ana"].flags
    assert found["Bo"].open_replies == ()
    assert Flag.WAITING not in found["Bo"].flags
    assert found["Ana"].to_dict()["open_replies"][0] == {
        "id": first.id,
        "at": "2026-11-24T14:00:00+00:00",
        "text": "Can I do the stretches after my walk?",
        "reading": "other",
    }


def test_warning_sign_replies_of_the_period_flag_the_patient(session: Session) -> None:
    clinic = make_clinic(session)
    old = make_patient(session, clinic, first_name="Old")
    new = make_patient(session, clinic, first_name="New")
    add_reply(session, old, at=local(D(2026, 11, 2), 9), command="warning")
    add_reply(session, new, at=local(D(2026, 11, 25), 9), command="warning")
    session.flush()

    flags = {p.first_name: p.flags for p in only(session)}

    assert flags == {"Old": (), "New": (Flag.WARNING_SIGN,)}


def test_low_adherence_is_flagged_below_the_threshold_only(session: Session) -> None:
    clinic = make_clinic(session)
    half = make_patient(session, clinic, first_name="Half")
    low = make_patient(session, clinic, first_name="Low")
    for patient, done in ((half, 2), (low, 1)):
        for day in range(4):
            outcome = Outcome.DONE if day < done else Outcome.SKIPPED
            due = local(D(2026, 11, 23 + day), 9)
            add_reminder(session, patient, due_at=due, outcome=outcome)
    session.flush()

    results = {p.first_name: p for p in only(session)}

    assert results["Half"].adherence == 0.5
    assert results["Half"].flags == ()
    assert results["Low"].adherence == 0.25
    assert results["Low"].flags == (Flag.BELOW_THRESHOLD,)
    assert only(session, threshold=0.6)[0].first_name == "Low"
    assert {p.first_name: p.flags for p in only(session, threshold=0.6)} == {
        "Low": (Flag.BELOW_THRESHOLD,),
        "Half": (Flag.BELOW_THRESHOLD,),
    }


def test_silent_means_nothing_heard_for_three_days_while_reminders_went_out(
    session: Session,
) -> None:
    clinic = make_clinic(session)
    quiet = make_patient(session, clinic, first_name="Quiet")  # answered last on the 22nd
    paused = make_patient(session, clinic, first_name="Paused")  # nothing sent since a reply
    never = make_patient(session, clinic, first_name="Never")  # never answered anything
    for day in range(20, 27):
        outcome = Outcome.DONE if day == 22 else None
        add_reminder(session, quiet, due_at=local(D(2026, 11, day), 9), outcome=outcome)
    add_reminder(session, paused, due_at=local(D(2026, 11, 17), 9))
    add_reply(session, paused, at=local(D(2026, 11, 17), 10), command="pause")
    add_reminder(session, never, due_at=local(D(2026, 11, 24), 9))
    session.flush()

    results = {p.first_name: p for p in only(session)}

    # DONE at 09:20 on the 22nd; now is 14:00 on the 26th: 4 whole days.
    assert (results["Quiet"].silent_days, Flag.SILENT in results["Quiet"].flags) == (4, True)
    assert (results["Paused"].silent_days, Flag.SILENT in results["Paused"].flags) == (9, False)
    assert (results["Never"].silent_days, Flag.SILENT in results["Never"].flags) == (2, False)


def test_patients_come_worst_first_and_unknown_adherence_last(session: Session) -> None:
    clinic = make_clinic(session)
    outcomes: dict[str, list[Outcome | None]] = {
        "Good": [Outcome.DONE, Outcome.DONE, Outcome.DONE],
        "Nothing": [],
        "Bad": [Outcome.SKIPPED, None, None],
        "Middling": [Outcome.DONE, Outcome.DONE, None],
    }
    for name, answers in outcomes.items():
        patient = make_patient(session, clinic, first_name=name)
        for hour, outcome in zip((9, 10, 11), answers, strict=False):
            add_reminder(session, patient, due_at=local(D(2026, 11, 25), hour), outcome=outcome)
    session.flush()

    assert [p.first_name for p in only(session)] == ["Bad", "Middling", "Good", "Nothing"]


def test_the_report_adds_clinic_wide_kinds_and_a_summary(session: Session) -> None:
    clinic = make_clinic(session)
    ana = make_patient(session, clinic, first_name="Ana")
    ben = make_patient(session, clinic, first_name="Ben")
    add_reminder(session, ana, due_at=local(D(2026, 11, 25), 9), outcome=Outcome.DONE)
    add_reminder(session, ben, due_at=local(D(2026, 11, 25), 9), outcome=Outcome.SKIPPED)
    add_reminder(session, ben, due_at=local(D(2026, 11, 25), 11), kind="leg_strength")
    session.flush()

    report = build_report(session=session, clinic=clinic, since=SINCE, now=NOW)

    assert report.title == clinic.name
    assert report.timezone == "America/Chicago"
    assert [(k.kind, k.counts) for k in report.kinds] == [
        ("leg_strength", Counts(delivered=1, done=0, skipped=0, unanswered=1)),
        ("stretch", Counts(delivered=2, done=1, skipped=1, unanswered=0)),
    ]
    assert report.summary.patients == 2
    assert report.summary.average_adherence == 0.5  # (1.0 + 0.0) / 2: each patient counts once
    assert report.summary.needing_call == 1


def test_query_count_does_not_grow_with_the_number_of_patients(session: Session) -> None:
    clinic = make_clinic(session)

    def add_patients(count: int) -> None:
        for _ in range(count):
            patient = make_patient(session, clinic)
            add_reminder(session, patient, due_at=local(D(2026, 11, 25), 9), outcome=Outcome.DONE)
            add_pain(session, patient, at=local(D(2026, 11, 25), 19), score=4)
            add_reply(session, patient, at=local(D(2026, 11, 25), 9, 20), command="done")
        session.flush()

    add_patients(2)
    with counted_statements(session) as few:
        only(session, clinic_id=clinic.id)
    add_patients(40)
    with counted_statements(session) as many:
        results = only(session, clinic_id=clinic.id)

    assert len(results) == 42
    # Patients, day counts, pain, check-ins, last replies, warnings, open replies: one each.
    assert len(many) == len(few) <= 7


@contextmanager
def counted_statements(session: Session) -> Iterator[list[str]]:
    statements: list[str] = []
    connection = session.connection()

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(connection, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", count)


def test_streak_passes_over_days_with_nothing_delivered() -> None:
    days = {
        D(2026, 11, 20): Counts(delivered=2, done=0),
        D(2026, 11, 21): Counts(delivered=2, done=1),
        D(2026, 11, 24): Counts(delivered=3, done=2),
        D(2026, 11, 26): Counts(delivered=1, done=1),
    }
    streak = current_streak(days, today=D(2026, 11, 26), first_day=D(2026, 11, 1), threshold=0.5)
    assert streak == 3


def test_naive_datetimes_are_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        patient_adherence(session=session, since=dt.datetime(2026, 11, 1), now=NOW)  # noqa: DTZ001
