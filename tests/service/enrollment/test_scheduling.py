"""The reminder scheduler: named daylight-saving cases, then properties over every zone.

The property tests check day_occurrences against an independent reading of the clock: every
UTC minute of the local day, converted to local time, and the first one whose wall clock has
reached the asked-for time. That is what "moves to the first valid minute after the gap" and
"fires once, at its first occurrence" mean, written the slow and obvious way.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import functools
import itertools
import zoneinfo
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.enrollment.scheduling import (
    DEFAULT_MIN_GAP,
    SEARCH_DAYS,
    ItemRule,
    Occurrence,
    PatientSchedule,
    WakingWindow,
    day_occurrences,
    group_close,
    may_send_at,
    next_due_by_item,
    next_occurrence,
    next_waking_minute,
    occurrences,
)

T = dt.time
D = dt.date
UTC = dt.UTC
ALL_DAY = (T(0, 0), T(23, 59))
PROPERTY = settings(max_examples=200, deadline=None)


def at(item_id: int, *times: str, days: set[int] | None = None) -> ItemRule:
    return ItemRule(
        item_id=item_id,
        kind="stretch",
        at_times=tuple(T.fromisoformat(text) for text in times),
        days=None if days is None else frozenset(days),
    )


def every(item_id: int, minutes: int, *, days: set[int] | None = None) -> ItemRule:
    return ItemRule(
        item_id=item_id,
        kind="position_change",
        every_minutes=minutes,
        days=None if days is None else frozenset(days),
    )


def plan(
    zone: str,
    *items: ItemRule,
    wake: tuple[dt.time, dt.time] = ALL_DAY,
    max_per_day: int = 100,
    not_before: dt.date | None = None,
    min_gap: dt.timedelta = DEFAULT_MIN_GAP,
) -> PatientSchedule:
    return PatientSchedule(
        timezone=zone,
        wake_start=wake[0],
        wake_end=wake[1],
        items=items,
        max_per_day=max_per_day,
        not_before=not_before,
        min_gap=min_gap,
    )


def local_midnight(zone: str, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, T(0, 0), tzinfo=zoneinfo.ZoneInfo(zone))


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def walls(found: list[Occurrence]) -> list[str]:
    return [occurrence.local.isoformat() for occurrence in found]


# --- daylight saving, by name -------------------------------------------------------------

SPRING_FORWARD = [
    # zone, date, a wall time inside the gap, where it must fire instead
    ("America/New_York", D(2026, 3, 8), "02:30", "2026-03-08T03:00:00-04:00"),
    ("America/New_York", D(2027, 3, 14), "02:30", "2027-03-14T03:00:00-04:00"),
    ("America/Chicago", D(2026, 3, 8), "02:30", "2026-03-08T03:00:00-05:00"),
    ("America/Chicago", D(2027, 3, 14), "02:30", "2027-03-14T03:00:00-05:00"),
    ("Europe/Berlin", D(2026, 3, 29), "02:30", "2026-03-29T03:00:00+02:00"),
    ("Europe/Berlin", D(2027, 3, 28), "02:30", "2027-03-28T03:00:00+02:00"),
    ("Europe/London", D(2026, 3, 29), "01:30", "2026-03-29T02:00:00+01:00"),
    ("Europe/London", D(2027, 3, 28), "01:30", "2027-03-28T02:00:00+01:00"),
    ("Australia/Adelaide", D(2026, 10, 4), "02:30", "2026-10-04T03:00:00+10:30"),
    ("Australia/Adelaide", D(2027, 10, 3), "02:30", "2027-10-03T03:00:00+10:30"),
    # Lord Howe moves its clocks by half an hour: 02:00 -> 02:30.
    ("Australia/Lord_Howe", D(2026, 10, 4), "02:15", "2026-10-04T02:30:00+11:00"),
    # Gaps at midnight: the day itself starts at 01:00.
    ("America/Santiago", D(2026, 9, 6), "00:30", "2026-09-06T01:00:00-03:00"),
    ("America/Havana", D(2026, 3, 8), "00:30", "2026-03-08T01:00:00-04:00"),
    ("Africa/Cairo", D(2026, 4, 24), "00:00", "2026-04-24T01:00:00+03:00"),
]

FALL_BACK = [
    # zone, date, a wall time that happens twice, the UTC instant of its first occurrence
    ("America/New_York", D(2026, 11, 1), "01:30", "2026-11-01T05:30"),
    ("America/New_York", D(2027, 11, 7), "01:30", "2027-11-07T05:30"),
    ("America/Chicago", D(2026, 11, 1), "01:30", "2026-11-01T06:30"),
    ("America/Chicago", D(2027, 11, 7), "01:30", "2027-11-07T06:30"),
    ("Europe/Berlin", D(2026, 10, 25), "02:30", "2026-10-25T00:30"),
    ("Europe/Berlin", D(2027, 10, 31), "02:30", "2027-10-31T00:30"),
    ("Europe/London", D(2026, 10, 25), "01:30", "2026-10-25T00:30"),
    ("Europe/London", D(2027, 10, 31), "01:30", "2027-10-31T00:30"),
    ("Australia/Adelaide", D(2026, 4, 5), "02:30", "2026-04-04T16:00"),
    ("America/Havana", D(2026, 11, 1), "00:30", "2026-11-01T04:30"),
]


@pytest.mark.parametrize(("zone", "day", "wall", "expected"), SPRING_FORWARD)
def test_time_in_spring_forward_gap_fires_at_first_minute_after_it(
    zone: str, day: dt.date, wall: str, expected: str
) -> None:
    found = day_occurrences(plan(zone, at(1, wall)), day)

    assert walls(found) == [expected]


@pytest.mark.parametrize(("zone", "day", "wall", "expected"), SPRING_FORWARD)
def test_time_in_spring_forward_gap_fires_at_its_own_time_the_day_before(
    zone: str, day: dt.date, wall: str, expected: str
) -> None:
    day_before = day - dt.timedelta(days=1)

    found = day_occurrences(plan(zone, at(1, wall)), day_before)

    assert [occurrence.local.time() for occurrence in found] == [T.fromisoformat(wall)]


@pytest.mark.parametrize(("zone", "day", "wall", "expected"), SPRING_FORWARD)
def test_hourly_nudge_is_not_doubled_where_the_gap_time_meets_the_next_hour(
    zone: str, day: dt.date, wall: str, expected: str
) -> None:
    found = day_occurrences(plan(zone, every(1, 60)), day)

    instants = [occurrence.due_at for occurrence in found]
    assert len(instants) == len(set(instants))
    assert expected in walls(found)
    # The lost hour's nudge lands on the next hour's; Lord Howe loses only half an hour.
    assert len(found) == (24 if zone == "Australia/Lord_Howe" else 23)


@pytest.mark.parametrize(("zone", "day", "wall", "first_utc"), FALL_BACK)
def test_repeated_fall_back_time_fires_once_at_first_occurrence(
    zone: str, day: dt.date, wall: str, first_utc: str
) -> None:
    found = day_occurrences(plan(zone, at(1, wall)), day)

    assert [occurrence.due_at for occurrence in found] == [utc(first_utc)]
    assert found[0].local.fold == 0


@pytest.mark.parametrize(("zone", "day", "wall", "first_utc"), FALL_BACK)
def test_half_hourly_nudge_fires_once_per_wall_time_on_fall_back_day(
    zone: str, day: dt.date, wall: str, first_utc: str
) -> None:
    found = day_occurrences(plan(zone, every(1, 30)), day)

    wall_times = [occurrence.local.time() for occurrence in found]
    assert len(found) == 48  # 00:00 .. 23:30, the repeated hour only once
    assert len(set(wall_times)) == 48
    assert utc(first_utc) in {occurrence.due_at for occurrence in found}


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        ("America/New_York", D(2027, 3, 14), "03:00"),
        ("Europe/London", D(2027, 3, 28), "02:00"),
    ],
)
def test_hourly_nudge_skips_the_lost_hour_without_a_duplicate(
    zone: str, day: dt.date, expected: str
) -> None:
    found = day_occurrences(plan(zone, every(1, 60)), day)

    wall_times = [occurrence.local.strftime("%H:%M") for occurrence in found]
    assert len(found) == 23
    assert wall_times.count(expected) == 1


def test_half_hour_zone_without_dst_fires_at_local_time() -> None:
    found = day_occurrences(plan("Asia/Kolkata", at(1, "09:00"), every(2, 45)), D(2027, 3, 14))

    assert found[0].due_at == utc("2027-03-13T18:30")  # 00:00 IST
    sessions = [occurrence for occurrence in found if occurrence.item_id == 1]
    assert [occurrence.due_at for occurrence in sessions] == [utc("2027-03-14T03:30")]
    assert len(found) == 1 + 32  # 00:00, 00:45, ... 23:15


def test_day_the_zone_skips_entirely_has_no_occurrences() -> None:
    # Samoa jumped from 2011-12-29 24:00 to 2011-12-31 00:00; nothing spills into the 31st.
    schedule = plan("Pacific/Apia", at(1, "12:00"), every(2, 60))

    assert day_occurrences(schedule, D(2011, 12, 30)) == []
    assert len(day_occurrences(schedule, D(2011, 12, 31))) == 25


# --- the product's acceptance checks -------------------------------------------------------


def test_acceptance_session_in_new_york_spring_gap_fires_once_at_three() -> None:
    schedule = plan("America/New_York", at(1, "02:30"))
    start = local_midnight("America/New_York", D(2027, 3, 13))
    end = local_midnight("America/New_York", D(2027, 3, 16))

    found = occurrences(schedule, start=start, end=end)

    on_the_14th = [o for o in found if o.local.date() == D(2027, 3, 14)]
    assert len(on_the_14th) == 1
    assert on_the_14th[0].local.time() >= T(2, 30)
    assert on_the_14th[0].local.isoformat() == "2027-03-14T03:00:00-04:00"
    assert walls(found) == [
        "2027-03-13T02:30:00-05:00",
        "2027-03-14T03:00:00-04:00",
        "2027-03-15T02:30:00-04:00",
    ]


def test_acceptance_session_in_new_york_repeated_hour_fires_exactly_once() -> None:
    schedule = plan("America/New_York", at(1, "01:30"))
    start = local_midnight("America/New_York", D(2027, 11, 7))
    end = local_midnight("America/New_York", D(2027, 11, 8))

    found = occurrences(schedule, start=start, end=end)

    assert walls(found) == ["2027-11-07T01:30:00-04:00"]


# --- the rules on ordinary days -------------------------------------------------------------


def test_hourly_nudge_runs_from_wake_start_to_wake_end_inclusive() -> None:
    schedule = plan("America/Chicago", every(1, 60), wake=(T(8), T(20)))

    found = day_occurrences(schedule, D(2026, 6, 2))

    assert [o.local.hour for o in found] == list(range(8, 21))


def test_uneven_step_stops_at_the_last_time_inside_the_window() -> None:
    schedule = plan("America/Chicago", every(1, 45), wake=(T(8), T(20)))

    found = day_occurrences(schedule, D(2026, 6, 2))

    assert found[-1].local.time() == T(20, 0)
    assert len(found) == 17
    schedule = plan("America/Chicago", every(1, 50), wake=(T(8), T(20)))
    assert day_occurrences(schedule, D(2026, 6, 2))[-1].local.time() == T(19, 40)


def test_session_on_chosen_weekdays_only() -> None:
    schedule = plan("America/Chicago", at(1, "11:00", days={0, 2, 4}))
    monday = D(2026, 6, 1)

    fired = [monday + dt.timedelta(days=n) for n in range(7)]
    fired = [day for day in fired if day_occurrences(schedule, day)]

    assert [day.weekday() for day in fired] == [0, 2, 4]


def test_session_outside_waking_window_never_fires() -> None:
    schedule = plan("America/New_York", at(1, "02:30"), wake=(T(3), T(22)))

    assert day_occurrences(schedule, D(2027, 3, 14)) == []
    after = utc("2027-01-01T00:00")
    assert next_occurrence(schedule, item_id=1, after=after) is None


def test_time_moved_out_of_a_gap_past_wake_end_is_dropped() -> None:
    schedule = plan("America/New_York", at(1, "02:30"), wake=(T(0), T(2, 45)))

    assert day_occurrences(schedule, D(2027, 3, 14)) == []
    assert len(day_occurrences(schedule, D(2027, 3, 15))) == 1


def core_program(**changes: object) -> PatientSchedule:
    """stenosis-core as written: hourly position changes, three stretches, pelvic tilts,
    leg work on Mon/Wed/Fri and a walk on Tue/Thu/Sat, at most 10 messages a day."""
    schedule = plan(
        "America/Chicago",
        every(1, 60),
        at(2, "09:00", "13:00", "18:30"),
        at(3, "10:30"),
        at(4, "11:00", days={0, 2, 4}),
        at(5, "16:00", days={1, 3, 5}),
        wake=(T(8), T(20)),
        max_per_day=10,
    )
    return dataclasses.replace(schedule, **changes)


def messages(found: list[Occurrence], gap: dt.timedelta = DEFAULT_MIN_GAP) -> list[str]:
    """Each message as its local time and the item ids it carries."""
    return [
        group[0].local.strftime("%H:%M ") + "+".join(str(o.item_id) for o in group)
        for group in group_close(found, gap=gap)
    ]


def test_daily_limit_keeps_sessions_and_spreads_nudges_over_the_whole_day() -> None:
    monday = day_occurrences(core_program(), D(2026, 6, 1))
    tuesday = day_occurrences(core_program(), D(2026, 6, 2))

    # Largest gaps first: 13:00-18:30 takes 16:00, then 14:00, 17:00, 12:00 and 15:00; the
    # position changes at 09:00, 11:00 and 13:00 travel in the sessions' messages for free.
    assert messages(monday) == [
        "09:00 1+2",
        "10:30 3",
        "11:00 1+4",
        "12:00 1",
        "13:00 1+2",
        "14:00 1",
        "15:00 1",
        "16:00 1",
        "17:00 1",
        "18:30 2",
    ]
    assert len(messages(tuesday)) == 10
    assert [o.local.hour for o in tuesday if o.item_id == 1] == [9, 10, 12, 13, 14, 15, 16, 17]


def test_position_changes_go_on_after_four_every_day_of_the_week() -> None:
    for offset in range(7):
        found = day_occurrences(core_program(), D(2026, 6, 1) + dt.timedelta(days=offset))

        assert len(messages(found)) <= 10
        assert any(o.item_id == 1 and o.local.time() > T(16) for o in found)


def test_a_day_that_fits_the_limit_keeps_every_nudge() -> None:
    found = day_occurrences(core_program(max_per_day=20), D(2026, 6, 1))

    assert [o.local.hour for o in found if o.item_id == 1] == list(range(8, 21))


def test_merged_messages_count_once_against_the_limit() -> None:
    # Two nudges at the same hours and a stretch at 09:00: thirteen occurrences, nine messages.
    schedule = plan(
        "Europe/Berlin",
        every(1, 60),
        dataclasses.replace(every(2, 60), kind="posture"),
        at(3, "09:00"),
        wake=(T(8), T(16)),
        max_per_day=9,
    )

    found = day_occurrences(schedule, D(2026, 6, 2))

    assert len(found) == 19
    assert len(messages(found)) == 9


def question(item_id: int, *times: str, kind: str = "pain_question") -> ItemRule:
    return dataclasses.replace(at(item_id, *times), kind=kind)


def test_a_question_is_a_message_of_its_own_and_carries_no_reminder() -> None:
    # A stretch and a question at 09:00, a position change at 09:05: the position change
    # travels with the stretch, never with the question.
    schedule = plan(
        "Europe/Berlin",
        at(1, "09:00"),
        question(2, "09:00"),
        dataclasses.replace(at(3, "09:05"), kind="position_change"),
        question(4, "11:00", kind="weekly_checkin"),
        dataclasses.replace(at(5, "11:05"), kind="position_change"),
        wake=(T(8), T(20)),
    )

    found = day_occurrences(schedule, D(2026, 6, 7))

    assert messages(found) == ["09:00 1+3", "09:00 2", "11:00 4", "11:05 5"]


def test_a_nudge_never_travels_free_in_a_question_under_the_limit() -> None:
    # Hourly nudges, a question on the hour: the 14:00 nudge would cost a message of its own.
    schedule = plan(
        "Europe/Berlin",
        every(1, 60),
        question(2, "14:00"),
        wake=(T(8), T(20)),
        max_per_day=5,
    )

    found = day_occurrences(schedule, D(2026, 6, 2))

    assert len(messages(found)) == 5
    assert "14:00 2" in messages(found)
    assert not any(o.item_id == 1 and o.local.hour == 14 for o in found)


def test_a_kept_nudge_is_never_within_the_minimum_gap_of_another_message() -> None:
    schedule = plan(
        "Europe/Berlin",
        every(1, 5),
        at(2, "09:00", "09:25", "12:00"),
        wake=(T(9), T(12)),
        max_per_day=5,
    )

    found = day_occurrences(schedule, D(2026, 6, 2))

    assert messages(found) == ["09:00 1+2+1", "09:25 1+2+1", "10:40 1+1", "11:20 1+1", "12:00 1+2"]
    starts = [group[0].due_at for group in group_close(found, gap=DEFAULT_MIN_GAP)]
    assert all(later - first >= DEFAULT_MIN_GAP for first, later in itertools.pairwise(starts))
    # A nudge chosen for a gap stands at least the minimum gap from both of its neighbours.
    chosen = [o for o in found if o.item_id == 1 and o.due_at in starts]
    assert chosen
    for nudge in chosen:
        others = [start for start in starts if start != nudge.due_at]
        assert min(abs(nudge.due_at - start) for start in others) >= DEFAULT_MIN_GAP


def test_exactly_the_minimum_gap_apart_leave_as_two_messages() -> None:
    first = Occurrence(1, "stretch", utc("2026-06-02T14:00"), utc("2026-06-02T14:00"))
    just_inside = Occurrence(2, "posture", utc("2026-06-02T14:09:59"), utc("2026-06-02T14:09:59"))
    exactly = Occurrence(3, "heat", utc("2026-06-02T14:10"), utc("2026-06-02T14:10"))

    groups = group_close([exactly, just_inside, first], gap=dt.timedelta(minutes=10))

    assert [[o.item_id for o in group] for group in groups] == [[1, 2], [3]]


def test_sessions_alone_over_the_limit_keep_the_earliest() -> None:
    schedule = plan("Europe/Berlin", at(2, "18:00", "09:00"), at(1, "12:00"), max_per_day=2)

    found = day_occurrences(schedule, D(2026, 6, 2))

    assert [(o.item_id, o.local.hour) for o in found] == [(2, 9), (1, 12)]


def test_nothing_before_not_before() -> None:
    schedule = plan("America/Chicago", every(1, 60), not_before=D(2026, 6, 3))
    start = local_midnight("America/Chicago", D(2026, 6, 1))

    found = occurrences(schedule, start=start, end=start + dt.timedelta(days=3))

    assert {o.local.date() for o in found} == {D(2026, 6, 3)}


def test_occurrences_are_half_open_and_sorted_by_time_then_item() -> None:
    schedule = plan("America/Chicago", every(2, 60), at(1, "09:00"), wake=(T(8), T(20)))
    start = utc("2026-06-02T14:00")  # 09:00 CDT

    found = occurrences(schedule, start=start, end=utc("2026-06-02T16:00"))

    assert [(o.item_id, o.local.hour) for o in found] == [(1, 9), (2, 9), (2, 10)]


def test_next_occurrence_skips_nudges_the_daily_limit_thins_out() -> None:
    schedule = plan(
        "America/Chicago",
        every(1, 60),
        at(2, "09:00", "13:00"),
        wake=(T(8), T(20)),
        max_per_day=3,
    )
    after = utc("2026-06-02T18:30")  # 13:30 CDT: the day's one free message goes at 16:00

    found = next_occurrence(schedule, item_id=1, after=after)

    assert found is not None
    assert found.local.isoformat() == "2026-06-02T16:00:00-05:00"


def test_next_occurrence_is_none_for_a_nudge_the_sessions_always_crowd_out() -> None:
    schedule = plan(
        "America/Chicago",
        every(1, 60),
        at(2, "09:00", "13:00"),
        max_per_day=2,
        min_gap=dt.timedelta(0),  # nothing travels together, so nothing rides for free
    )
    after = utc("2026-06-02T00:00")

    assert next_occurrence(schedule, item_id=1, after=after) is None
    assert next_due_by_item(schedule, after=after) == {1: None, 2: utc("2026-06-02T14:00")}


def test_next_occurrence_waits_for_a_pause_longer_than_the_search() -> None:
    resume = D(2026, 1, 1) + dt.timedelta(days=SEARCH_DAYS + 30)
    schedule = plan("America/Chicago", at(1, "09:00"), not_before=resume)

    found = next_occurrence(schedule, item_id=1, after=utc("2026-01-01T00:00"))

    assert found is not None
    assert found.local.date() == resume


def test_next_due_by_item_gives_every_item_its_next_time() -> None:
    schedule = plan(
        "Europe/London",
        every(1, 120),
        at(2, "09:00", days={0}),
        at(3, "23:30"),
        wake=(T(7), T(22)),
    )
    after = utc("2026-06-02T21:00")  # Tuesday 22:00 BST

    assert next_due_by_item(schedule, after=after) == {
        1: utc("2026-06-03T06:00"),
        2: utc("2026-06-08T08:00"),
        3: None,  # 23:30 is after the window closes
    }


def test_may_send_at_includes_the_whole_last_minute() -> None:
    window = WakingWindow("America/New_York", T(8), T(20))

    assert may_send_at(window, utc("2026-06-02T12:00"))  # 08:00 EDT
    assert not may_send_at(window, utc("2026-06-02T11:59:59"))
    assert may_send_at(window, utc("2026-06-03T00:00:59"))  # 20:00:59 EDT
    assert not may_send_at(window, utc("2026-06-03T00:01"))
    assert may_send_at(window, utc("2026-12-02T13:00"))  # 08:00 EST


@pytest.mark.parametrize(
    ("zone", "after", "expected"),
    [
        # 03:00 in Tokyo: the window opens at 08:00 the same morning.
        ("Asia/Tokyo", "2026-06-01T18:00", "2026-06-01T23:00"),
        # 23:30 in Chicago: tomorrow at 08:00.
        ("America/Chicago", "2026-06-02T04:30", "2026-06-02T13:00"),
        # Inside the window: at once.
        ("America/Chicago", "2026-06-02T15:17:30", "2026-06-02T15:17:30"),
        # Just after the last minute: the next morning.
        ("America/Chicago", "2026-06-03T01:01", "2026-06-03T13:00"),
    ],
)
def test_next_waking_minute_is_now_or_the_next_window_opening(
    zone: str, after: str, expected: str
) -> None:
    window = WakingWindow(zone, T(8), T(20))

    assert next_waking_minute(window, after=utc(after)) == utc(expected)


def test_next_waking_minute_opens_after_a_spring_forward_gap() -> None:
    window = WakingWindow("America/New_York", T(2, 30), T(20))

    found = next_waking_minute(window, after=utc("2027-03-14T05:00"))  # 00:00 EST

    assert found.astimezone(zoneinfo.ZoneInfo("America/New_York")).isoformat() == (
        "2027-03-14T03:00:00-04:00"
    )


def test_naive_datetimes_are_refused() -> None:
    schedule = plan("America/New_York", every(1, 60))
    naive = dt.datetime(2026, 6, 2, 12)  # noqa: DTZ001 - the point of the test
    aware = utc("2026-06-02T12:00")

    with pytest.raises(ValueError, match="timezone-aware"):
        occurrences(schedule, start=naive, end=aware)
    with pytest.raises(ValueError, match="timezone-aware"):
        occurrences(schedule, start=aware, end=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_occurrence(schedule, item_id=1, after=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_due_by_item(schedule, after=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        may_send_at(schedule.window, naive)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ItemRule(item_id=1, kind="stretch"),
        lambda: ItemRule(item_id=1, kind="stretch", every_minutes=60, at_times=(T(9),)),
        lambda: ItemRule(item_id=1, kind="stretch", every_minutes=0),
        lambda: ItemRule(item_id=1, kind="stretch", every_minutes=60, days=frozenset({7})),
        lambda: ItemRule(item_id=1, kind="stretch", every_minutes=60, days=frozenset()),
        lambda: ItemRule(item_id=1, kind="stretch", at_times=(T(9, tzinfo=UTC),)),
        lambda: plan("America/New_York", every(1, 60), wake=(T(20), T(8))),
        lambda: plan("America/New_York", every(1, 60), wake=(T(8), T(8))),
        lambda: plan("Mars/Olympus_Mons", every(1, 60)),
        lambda: plan("America", every(1, 60)),
        lambda: plan("America/New_York", every(1, 60), max_per_day=0),
        lambda: plan("America/New_York", every(1, 60), at(1, "09:00")),
    ],
)
def test_impossible_rules_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        make()


def test_day_occurrences_returns_a_list_the_caller_may_change() -> None:
    schedule = plan("America/New_York", every(1, 60))

    day_occurrences(schedule, D(2026, 6, 2)).clear()

    assert len(day_occurrences(schedule, D(2026, 6, 2))) == 24


# --- properties over every zone -------------------------------------------------------------

ZONES = sorted(zoneinfo.available_timezones())
# Zones whose clocks change in 2020-2035, with every kind of rule: US and EU, at midnight
# (Havana, Santiago, Cairo, Beirut), half-hour shifts (Lord Howe), a two-hour shift (Troll),
# negative DST (Dublin), Ramadan breaks (Casablanca), 45-minute offsets (Chatham).
CHANGING_ZONES = [
    "Africa/Cairo",
    "Africa/Casablanca",
    "America/Chicago",
    "America/Havana",
    "America/New_York",
    "America/Nuuk",
    "America/Santiago",
    "America/Scoresbysund",
    "America/St_Johns",
    "Antarctica/Troll",
    "Asia/Beirut",
    "Asia/Gaza",
    "Asia/Jerusalem",
    "Atlantic/Azores",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "Europe/Berlin",
    "Europe/Dublin",
    "Europe/London",
    "Pacific/Chatham",
]
FIRST_DAY, LAST_DAY = D(2020, 1, 1), D(2035, 12, 31)


@dataclasses.dataclass(frozen=True)
class ClockChanges:
    days: tuple[dt.date, ...]  # local dates on which the UTC offset changes
    minutes: tuple[int, ...]  # wall-clock minutes of day at which it does, old and new reading


@functools.cache
def clock_changes(zone: str) -> ClockChanges:
    """When the zone's UTC offset changes in 2020-2035, found by bisecting week by week.

    (Clocks that change and change back within one week would be missed: none do.)
    """
    tz = zoneinfo.ZoneInfo(zone)

    def offset(second: int) -> dt.timedelta | None:
        return dt.datetime.fromtimestamp(second, tz).utcoffset()

    start = int(dt.datetime.combine(FIRST_DAY, T(0), tzinfo=UTC).timestamp())
    days: set[dt.date] = set()
    wall_minutes: set[int] = set()
    week = 7 * 86400
    for monday in range(start, start + 16 * 366 * 86400, week):
        low, high = monday, monday + week
        if offset(low) == offset(high):
            continue
        while high - low > 1:  # bisect to the transition second
            middle = (low + high) // 2
            low, high = (middle, high) if offset(middle) == offset(low) else (low, middle)
        old_reading = dt.datetime.fromtimestamp(low, tz) + dt.timedelta(seconds=1)
        new_reading = dt.datetime.fromtimestamp(high, tz)
        for reading in (old_reading, new_reading):
            days.add(reading.date())
            wall_minutes.add(reading.hour * 60 + reading.minute)
    in_range = sorted(day for day in days if FIRST_DAY <= day <= LAST_DAY)
    return ClockChanges(tuple(in_range), tuple(sorted(wall_minutes)))


def minutes(since_midnight: int) -> dt.time:
    return T(since_midnight // 60, since_midnight % 60)


@st.composite
def zone_and_day(draw: st.DrawFn) -> tuple[str, dt.date]:
    zone = draw(st.sampled_from(ZONES) | st.sampled_from(CHANGING_ZONES))
    anyday = st.dates(FIRST_DAY, LAST_DAY)
    changes = clock_changes(zone).days
    if not changes or draw(st.integers(0, 3)) == 0:
        return zone, draw(anyday)
    day = draw(st.sampled_from(changes)) + dt.timedelta(days=draw(st.sampled_from([0, 0, -1, 1])))
    return zone, min(max(day, FIRST_DAY), LAST_DAY)


def wall_minutes(zone: str) -> st.SearchStrategy[int]:
    """Minutes of day, weighted to the small hours and to where this zone's clock jumps."""
    anywhere = st.integers(0, 1439) | st.integers(0, 240) | st.integers(1380, 1439)
    changes = clock_changes(zone).minutes
    if not changes:
        return anywhere
    shift = st.sampled_from([-60, -30, 0, 30, 60]) | st.integers(-90, 90)
    near = st.tuples(st.sampled_from(changes), shift)
    return anywhere | near.map(lambda pair: min(max(pair[0] + pair[1], 0), 1439))


weekdays = st.none() | st.frozensets(st.integers(0, 6), min_size=1)


@st.composite
def windows(draw: st.DrawFn, zone: str) -> tuple[dt.time, dt.time]:
    wall = wall_minutes(zone).filter(lambda minute: minute < 1439)
    start = draw(st.just(0) | st.just(480) | wall)
    end = draw(st.just(1439) | st.integers(start + 1, 1439) | wall.map(lambda m: m + 1))
    return minutes(start), minutes(max(end, start + 1))


@st.composite
def items(draw: st.DrawFn, zone: str) -> tuple[ItemRule, ...]:
    count = draw(st.integers(1, 4))
    rules = []
    for number in range(count):
        item_id = 10 * (count - number)  # later items get smaller ids: ties sort by id
        days = draw(weekdays)
        if draw(st.booleans()):
            step = draw(st.integers(5, 240) | st.sampled_from([15, 30, 60, 120]))
            rules.append(ItemRule(item_id, "nudge", every_minutes=step, days=days))
        else:
            at_list = draw(st.lists(wall_minutes(zone), min_size=1, max_size=5))
            at_times = tuple(minutes(m) for m in at_list)
            rules.append(ItemRule(item_id, "session", at_times=at_times, days=days))
    return tuple(rules)


@st.composite
def schedules_and_day(draw: st.DrawFn) -> tuple[PatientSchedule, dt.date]:
    zone, day = draw(zone_and_day())
    wake_start, wake_end = draw(windows(zone))
    offset = draw(st.none() | st.integers(-3, 3))
    schedule = PatientSchedule(
        timezone=zone,
        wake_start=wake_start,
        wake_end=wake_end,
        items=draw(items(zone)),
        max_per_day=draw(st.integers(1, 30)),
        not_before=None if offset is None else day + dt.timedelta(days=offset),
    )
    return schedule, day


def unlimited(schedule: PatientSchedule) -> PatientSchedule:
    return dataclasses.replace(schedule, max_per_day=10_000, not_before=None)


def clock_reading(zone: str, day: dt.date) -> tuple[list[dt.datetime], list[dt.time]]:
    """Every whole UTC minute of the local day, and the highest wall time reached by each.

    The first minute whose running-highest wall time reaches t is the first instant at which
    the clock shows t or later: t itself (the first time, if t repeats) or the end of its gap.
    """
    tz = zoneinfo.ZoneInfo(zone)
    moment = dt.datetime.combine(day, T(0), tzinfo=tz).astimezone(UTC) - dt.timedelta(hours=3)
    instants: list[dt.datetime] = []
    highest: list[dt.time] = []
    for _ in range(30 * 60):
        local = moment.astimezone(tz)
        if local.date() == day:
            instants.append(moment)
            highest.append(max(local.time(), highest[-1]) if highest else local.time())
        moment += dt.timedelta(minutes=1)
    return instants, highest


def in_window(schedule: PatientSchedule, wall: dt.time) -> bool:
    return schedule.wake_start <= wall <= schedule.wake_end


def expected_unlimited(schedule: PatientSchedule, day: dt.date) -> set[tuple[int, dt.datetime]]:
    instants, highest = clock_reading(schedule.timezone, day)
    tz = zoneinfo.ZoneInfo(schedule.timezone)
    expected: set[tuple[int, dt.datetime]] = set()
    for item in schedule.items:
        if item.days is not None and day.weekday() not in item.days:
            continue
        if item.every_minutes is None:
            asked = [wall for wall in item.at_times if in_window(schedule, wall)]
        else:
            first = schedule.wake_start.hour * 60 + schedule.wake_start.minute
            last = schedule.wake_end.hour * 60 + schedule.wake_end.minute
            asked = [minutes(m) for m in range(first, last + 1, item.every_minutes)]
        for wall in asked:
            index = bisect.bisect_left(highest, wall)
            if index < len(instants):
                moment = instants[index]
                if in_window(schedule, moment.astimezone(tz).time()):
                    expected.add((item.item_id, moment))
    return expected


@PROPERTY
@given(schedules_and_day())
def test_day_occurrences_obey_the_rules_in_any_zone(case: tuple[PatientSchedule, dt.date]) -> None:
    schedule, day = case
    tz = zoneinfo.ZoneInfo(schedule.timezone)

    found = day_occurrences(schedule, day)

    if schedule.not_before is not None and day < schedule.not_before:
        assert found == []
    assert len(group_close(found, gap=schedule.min_gap)) <= schedule.max_per_day
    assert found == sorted(found, key=lambda o: (o.due_at, o.item_id))
    assert len({(o.item_id, o.due_at) for o in found}) == len(found)
    for occurrence in found:
        assert occurrence.due_at.tzinfo is UTC
        assert occurrence.local.tzinfo == tz
        # Not local == due_at: an aware time in a repeated hour never equals one in another
        # zone (PEP 495), so compare in UTC.
        assert occurrence.local.astimezone(UTC) == occurrence.due_at
        assert occurrence.local.date() == day
        assert schedule.wake_start <= occurrence.local.time() <= schedule.wake_end
        assert may_send_at(schedule.window, occurrence.due_at)


@PROPERTY
@given(schedules_and_day())
def test_day_occurrences_match_a_minute_by_minute_reading_of_the_clock(
    case: tuple[PatientSchedule, dt.date],
) -> None:
    schedule, day = case
    schedule = unlimited(schedule)

    found = day_occurrences(schedule, day)

    assert {(o.item_id, o.due_at) for o in found} == expected_unlimited(schedule, day)


@PROPERTY
@given(
    st.sampled_from(CHANGING_ZONES).flatmap(
        lambda zone: st.tuples(
            st.just(zone),
            st.sampled_from(clock_changes(zone).days),
            st.sampled_from([5, 10, 15, 20, 30, 45, 60, 90, 120]),
            st.lists(wall_minutes(zone), min_size=1, max_size=5),
        )
    )
)
def test_clock_change_days_never_fire_an_item_twice_at_one_instant(
    case: tuple[str, dt.date, int, list[int]],
) -> None:
    zone, day, step, session_minutes = case
    sessions = ItemRule(1, "session", at_times=tuple(minutes(m) for m in session_minutes))
    schedule = plan(zone, sessions, every(2, step), max_per_day=10_000)

    found = day_occurrences(schedule, day)

    assert len({(o.item_id, o.due_at) for o in found}) == len(found)
    assert {(o.item_id, o.due_at) for o in found} == expected_unlimited(schedule, day)


def runs_on(item: ItemRule, day: dt.date) -> bool:
    return item.days is None or day.weekday() in item.days


def window_span(schedule: PatientSchedule, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The first and last whole minutes of the day inside the waking window, read off the
    clock minute by minute."""
    instants, _ = clock_reading(schedule.timezone, day)
    tz = zoneinfo.ZoneInfo(schedule.timezone)
    inside = [m for m in instants if in_window(schedule, m.astimezone(tz).time())]
    return inside[0], inside[-1]


def clock_shift(zone: str, day: dt.date) -> dt.timedelta:
    """How far the zone's clock moves that day (a repeated hour leaves an hour without
    nudges in real time)."""
    tz = zoneinfo.ZoneInfo(zone)
    offsets = [
        dt.datetime.combine(day + dt.timedelta(days=n), T(0), tzinfo=tz).utcoffset() for n in (0, 1)
    ]
    assert offsets[0] is not None
    assert offsets[1] is not None
    return abs(offsets[1] - offsets[0])


gaps = st.sampled_from([0, 1, 5, 10, 15, 30]).map(lambda m: dt.timedelta(minutes=m))


@PROPERTY
@given(schedules_and_day(), gaps)
def test_daily_limit_keeps_the_sessions_and_never_more_messages_than_the_cap(
    case: tuple[PatientSchedule, dt.date], gap: dt.timedelta
) -> None:
    schedule, day = case
    schedule = dataclasses.replace(schedule, not_before=None, min_gap=gap)
    everything = day_occurrences(unlimited(schedule), day)
    session_ids = {item.item_id for item in schedule.items if item.every_minutes is None}
    sessions = [o for o in everything if o.item_id in session_ids]

    found = day_occurrences(schedule, day)

    cap = schedule.max_per_day
    assert len(group_close(found, gap=gap)) <= cap
    assert set(found) <= set(everything)
    if len(group_close(sessions, gap=gap)) <= cap:
        assert set(sessions) <= set(found)
    if len(group_close(everything, gap=gap)) <= cap:
        assert found == everything


@PROPERTY
@given(schedules_and_day(), gaps)
def test_daily_limit_spreads_the_kept_messages_over_the_whole_window(
    case: tuple[PatientSchedule, dt.date], gap: dt.timedelta
) -> None:
    """The largest gap between consecutive messages, window edges counted, is at most about
    twice the even spacing the limit leaves for nudges: W / (cap - session messages + 1) for
    a window of W. "About": plus one step of the most frequent nudge (a nudge can only go
    where its times fall), plus the hour a repeated fall-back hour leaves without nudges; and
    a gap too short to hold a nudge with the minimum gap at both ends is never split."""
    schedule, day = case
    schedule = dataclasses.replace(schedule, not_before=None, min_gap=gap)
    steps = [
        dt.timedelta(minutes=item.every_minutes)
        for item in schedule.items
        if item.every_minutes is not None and runs_on(item, day)
    ]
    session_ids = {item.item_id for item in schedule.items if item.every_minutes is None}
    sessions = [o for o in day_occurrences(unlimited(schedule), day) if o.item_id in session_ids]
    budget = schedule.max_per_day - len(group_close(sessions, gap=gap))

    found = day_occurrences(schedule, day)

    if not steps or budget < 0 or not found:
        return  # nothing to spread, or sessions alone fill the day
    first, last = window_span(schedule, day)
    starts = [group[0].due_at for group in group_close(found, gap=gap)]
    points = [first, *starts, last]
    largest = max(later - earlier for earlier, later in itertools.pairwise(points))
    step = min(steps) + clock_shift(schedule.timezone, day) + dt.timedelta(minutes=1)
    even = (last - first) / (budget + 1)
    assert largest <= max(2 * even + step, 2 * gap + step), (largest, even, step)


@PROPERTY
@given(zone_and_day())
def test_every_45_minutes_from_8_to_20_stays_inside_8_to_20(case: tuple[str, dt.date]) -> None:
    zone, day = case
    schedule = plan(zone, every(1, 45), wake=(T(8), T(20)))

    found = day_occurrences(schedule, day)

    assert found
    for occurrence in found:
        assert T(8) <= occurrence.local.time() <= T(20)
        assert occurrence.local.date() == day


@PROPERTY
@given(schedules_and_day(), st.integers(0, 86399), st.integers(1, 4 * 86400))
def test_occurrences_over_a_range_are_sorted_bounded_and_day_by_day(
    case: tuple[PatientSchedule, dt.date], start_second: int, length: int
) -> None:
    schedule, day = case
    start = local_midnight(schedule.timezone, day).astimezone(UTC)
    start += dt.timedelta(seconds=start_second)
    end = start + dt.timedelta(seconds=length)

    found = occurrences(schedule, start=start, end=end)

    assert found == sorted(found, key=lambda o: (o.due_at, o.item_id))
    assert all(start <= o.due_at < end and o.due_at.tzinfo is UTC for o in found)
    assert len({(o.item_id, o.due_at) for o in found}) == len(found)
    tz = zoneinfo.ZoneInfo(schedule.timezone)
    days = {start.astimezone(tz).date(), end.astimezone(tz).date()}
    every_day = range((max(days) - min(days)).days + 1)
    by_day = [o for n in every_day for o in day_occurrences(schedule, min(days) + dt.timedelta(n))]
    assert found == [o for o in by_day if start <= o.due_at < end]


@PROPERTY
@given(schedules_and_day(), st.integers(-86400, 2 * 86400), st.data())
def test_next_occurrence_is_the_first_later_one_in_occurrences(
    case: tuple[PatientSchedule, dt.date], offset: int, data: st.DataObject
) -> None:
    schedule, day = case
    after = local_midnight(schedule.timezone, day).astimezone(UTC)
    after += dt.timedelta(seconds=offset)
    item = data.draw(st.sampled_from(schedule.items))
    horizon = after + dt.timedelta(days=8)
    later = occurrences(schedule, start=after + dt.timedelta(microseconds=1), end=horizon)
    first = next((o for o in later if o.item_id == item.item_id), None)

    found = next_occurrence(schedule, item_id=item.item_id, after=after)

    if first is not None:
        assert found == first
    else:
        assert found is None or found.due_at >= horizon
    assert next_due_by_item(schedule, after=after)[item.item_id] == (found and found.due_at)
