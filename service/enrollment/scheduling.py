"""When a patient's reminders fall due: pure functions over a plan, in the patient's local time.

The rules are the product's contract (see PRODUCT.md, "Delivery rules"):

1. Everything is computed one local calendar day at a time, in the patient's zone.
2. ``at`` items fire at each listed wall-clock time; ``every`` items at wake_start,
   wake_start + every, ... up to and including wake_end.
3. A wall time that does not exist that day (spring-forward gap) moves to the first whole
   minute after the gap; one that happens twice (fall-back) fires once, at its first
   occurrence (fold=0). Afterwards an item never fires twice at one instant.
4. Nothing is ever due outside the waking window, or outside the local day it was computed
   for (a move may not spill into the next day).
5. At most ``max_per_day`` messages a local day, where occurrences less than ``min_gap``
   after a message's first one travel in it (``group_close``) and count once. The fixed
   ``at`` sessions (the exercises) are kept first; then the ``every`` nudges are chosen to
   spread evenly over the whole waking window: each goes into the largest gap left between
   the day's messages (window edges counted), as near its middle as the nudge's times allow,
   never within ``min_gap`` of another message. Nudges that fall inside a kept message cost
   nothing and are kept too. A question (the pain question, the weekly check-in) is a
   message of its own: nothing travels in it.
6. Nothing is due on a local day before ``not_before`` (the start date, or the end of a pause).

``may_send_at`` is the one answer to "may a message go out now" (the waking window, in local
wall time), and ``next_waking_minute`` says when one that may not will be allowed to.

No database and no clock: callers pass instants in, and get aware UTC instants out.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import DAILY, rrule

from service.delivery.rendering import QUESTION_KINDS

SEARCH_DAYS = 400  # how far next_occurrence looks: more than a year, so every DST day is seen
# Occurrences less than this after a message's first one leave in that message (one SMS
# naming each exercise). PTNUDGE_MIN_GAP_MINUTES overrides it; this is its default.
DEFAULT_MIN_GAP = dt.timedelta(minutes=10)
_INSTANT = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class ItemRule:
    """One line of a patient's plan: what to send and when (in local wall-clock time)."""

    item_id: int
    kind: str
    every_minutes: int | None = None  # repeats inside the waking window
    at_times: tuple[dt.time, ...] = ()  # fixed local times
    days: frozenset[int] | None = None  # weekdays 0=Mon..6=Sun; None = every day

    def __post_init__(self) -> None:
        if (self.every_minutes is None) == (not self.at_times):
            raise ValueError(f"item {self.item_id}: set exactly one of every_minutes, at_times")
        if self.every_minutes is not None and self.every_minutes <= 0:
            raise ValueError(f"item {self.item_id}: every_minutes must be positive")
        if any(moment.tzinfo is not None for moment in self.at_times):
            raise ValueError(f"item {self.item_id}: at_times are local wall times, without tzinfo")
        # Normalised so that equal rules are equal and hashable: the day cache is keyed on them.
        object.__setattr__(self, "at_times", tuple(sorted(set(self.at_times))))
        if self.days is not None:
            days = frozenset(self.days)
            if not days or not days <= frozenset(range(7)):
                raise ValueError(f"item {self.item_id}: days must be weekdays 0..6, at least one")
            object.__setattr__(self, "days", days)


@dataclass(frozen=True)
class WakingWindow:
    """The local wall-clock hours in which a patient may get messages; ``end`` is inclusive
    to the end of its minute."""

    timezone: str  # IANA name, e.g. "America/New_York"
    start: dt.time
    end: dt.time

    def __post_init__(self) -> None:
        _zone(self.timezone)  # an unknown zone fails here, not at the first dispatch
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("the waking window is local wall time, without tzinfo")
        if not self.start < self.end:
            raise ValueError("wake_start must be before wake_end")


@dataclass(frozen=True)
class PatientSchedule:
    """Everything the scheduler needs to know about one patient, and nothing else."""

    timezone: str  # IANA name, e.g. "America/New_York"
    wake_start: dt.time
    wake_end: dt.time  # inclusive
    items: tuple[ItemRule, ...]
    max_per_day: int = 10
    not_before: dt.date | None = None  # local date: start date, or the day a pause ends
    min_gap: dt.timedelta = DEFAULT_MIN_GAP  # closer occurrences leave as one message

    def __post_init__(self) -> None:
        WakingWindow(self.timezone, self.wake_start, self.wake_end)  # checks zone and window
        if self.min_gap < dt.timedelta(0):
            raise ValueError("min_gap must not be negative")
        if self.max_per_day < 1:
            raise ValueError("max_per_day must be at least 1")
        items = tuple(self.items)
        if len({item.item_id for item in items}) != len(items):
            raise ValueError("item ids must be unique within a schedule")
        object.__setattr__(self, "items", items)

    @property
    def window(self) -> WakingWindow:
        return WakingWindow(self.timezone, self.wake_start, self.wake_end)


@dataclass(frozen=True)
class Occurrence:
    """One reminder of one item, due at one instant.

    Compare and store ``due_at``: an aware time in a repeated hour never equals an aware time
    in another zone (PEP 495), so ``local == due_at`` can be False for the same instant.
    """

    item_id: int
    kind: str
    due_at: dt.datetime  # aware, UTC
    local: dt.datetime  # aware, in the patient's zone (same instant)


def day_occurrences(schedule: PatientSchedule, day: dt.date) -> list[Occurrence]:
    """The occurrences of one local day, sorted by due_at then item_id."""
    # A copy: the cached tuple is shared between callers.
    return list(_day_occurrences(schedule, day))


def occurrences(
    schedule: PatientSchedule, *, start: dt.datetime, end: dt.datetime
) -> list[Occurrence]:
    """Every occurrence with start <= due_at < end, sorted by due_at then item_id."""
    _require_aware(start=start, end=end)
    if end <= start:
        return []
    zone = _zone(schedule.timezone)
    first, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    # A day's occurrences all lie in that local day, and local days follow each other in time,
    # so concatenating sorted days in order gives a sorted list.
    return [
        occurrence
        for day in _calendar(first, last)
        for occurrence in _day_occurrences(schedule, day)
        if start <= occurrence.due_at < end
    ]


def next_occurrence(
    schedule: PatientSchedule, *, item_id: int, after: dt.datetime
) -> Occurrence | None:
    """The item's first occurrence with due_at > after, or None if it never fires.

    Looks SEARCH_DAYS local days ahead from after (or from not_before, if later); the daily
    limit applies, so a nudge crowded out by the day's sessions is never "next".
    """
    _require_aware(after=after)
    item = _item(schedule, item_id)
    if _never_fires(schedule, item):
        return None
    for day in _search_days(schedule, after, item.days):
        for occurrence in _day_occurrences(schedule, day):
            if occurrence.item_id == item_id and occurrence.due_at > after:
                return occurrence
    return None


def next_due_by_item(
    schedule: PatientSchedule, *, after: dt.datetime
) -> dict[int, dt.datetime | None]:
    """Every item's next due_at after ``after`` (None: never), in one pass over the days."""
    _require_aware(after=after)
    result: dict[int, dt.datetime | None] = {item.item_id: None for item in schedule.items}
    pending = {item.item_id: item for item in schedule.items if not _never_fires(schedule, item)}
    if not pending:
        return result
    for day in _search_days(schedule, after, _any_of(item.days for item in pending.values())):
        for occurrence in _day_occurrences(schedule, day):
            if occurrence.item_id in pending and occurrence.due_at > after:
                result[occurrence.item_id] = occurrence.due_at
                del pending[occurrence.item_id]
        if not pending:
            break
    return result


def may_send_at(window: WakingWindow, moment: dt.datetime) -> bool:
    """Whether a message that is not an immediate answer to the patient may go out at this
    instant: inside the waking window, in the patient's local wall time.

    The end is inclusive to the end of its minute: a reminder due at 20:00 and sent a few
    seconds later is still inside a window that ends at 20:00.
    """
    _require_aware(moment=moment)
    return _in_hours(window.start, window.end, moment.astimezone(_zone(window.timezone)).time())


def next_waking_minute(window: WakingWindow, *, after: dt.datetime) -> dt.datetime:
    """The first instant at or after ``after`` at which ``may_send_at`` is true (aware UTC).

    The window's start is placed like a session (a start in a spring-forward gap opens at the
    gap's end; a repeated start opens at its first occurrence).
    """
    if may_send_at(window, after):
        return after.astimezone(dt.UTC)
    zone = _zone(window.timezone)
    today = after.astimezone(zone).date()
    # Today's opening if it is still ahead, else tomorrow's; a day the zone skips has none.
    for day in _calendar(today, today + dt.timedelta(days=3)):
        opening = _place(zone, day, window.start)
        if opening >= after and may_send_at(window, opening):
            return opening.astimezone(dt.UTC)
    raise ValueError(f"no waking minute within 3 days after {after.isoformat()}")


def group_close(occurrences: Sequence[Occurrence], *, gap: dt.timedelta) -> list[list[Occurrence]]:
    """Group occurrences into messages: each group starts with one occurrence and takes in
    those due less than ``gap`` after it. A group leaves as one message at its first one's
    time, so consecutive messages are never less than ``gap`` apart. A question
    (``QUESTION_KINDS``) is a message of its own: a combined message asks for DONE, a
    question for a number."""
    groups: list[list[Occurrence]] = []
    carrier: list[Occurrence] | None = None  # the group the next reminder may join
    for occurrence in sorted(occurrences, key=_order):
        if occurrence.kind in QUESTION_KINDS:
            groups.append([occurrence])
        elif carrier is not None and travels_with(carrier[0].due_at, occurrence.due_at, gap=gap):
            carrier.append(occurrence)
        else:
            carrier = [occurrence]
            groups.append(carrier)
    return groups


def travels_with(first: dt.datetime, later: dt.datetime, *, gap: dt.timedelta) -> bool:
    """Whether something due at ``later`` leaves in the message that goes at ``first``: the
    one definition of "close together" for the scheduler, the dispatcher and the preview."""
    return first <= later and later - first < gap


# --- one day ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _day_occurrences(schedule: PatientSchedule, day: dt.date) -> tuple[Occurrence, ...]:
    # Cached: the dispatcher asks about the same patient and day once per due item.
    if schedule.not_before is not None and day < schedule.not_before:
        return ()
    zone = _zone(schedule.timezone)
    sessions: list[Occurrence] = []
    nudges: list[Occurrence] = []
    for item in schedule.items:
        if item.days is None or day.weekday() in item.days:
            found = _item_day(schedule, zone, item, day)
            (sessions if item.every_minutes is None else nudges).extend(found)
    cap, gap = schedule.max_per_day, schedule.min_gap
    # Sessions beyond the limit (only a tuned plan can ask for that) keep the earliest.
    kept = [occurrence for group in group_close(sessions, gap=gap)[:cap] for occurrence in group]
    if len(group_close(kept + nudges, gap=gap)) > cap:
        edges = (_place(zone, day, schedule.wake_start), _place(zone, day, schedule.wake_end))
        kept = _DayPlan(kept, cap=cap, gap=gap, edges=edges).with_nudges(nudges)
    else:
        kept += nudges
    return tuple(sorted(kept, key=_order))


def _item_day(
    schedule: PatientSchedule, zone: ZoneInfo, item: ItemRule, day: dt.date
) -> list[Occurrence]:
    """The item's occurrences that day, in time order (placing wall times never reorders
    them: a gap only moves a time later, onto the gap's end)."""
    seen: set[dt.datetime] = set()
    found: list[Occurrence] = []
    for wall in _wall_times(schedule, item):
        local = _place(zone, day, wall)
        due_at = local.astimezone(dt.UTC)
        # A time moved out of a gap may meet one already placed (every 60m: 02:00 -> 03:00),
        # or leave the window, or even the day; each of those is dropped.
        if due_at in seen or local.date() != day or not _in_window(schedule, local.time()):
            continue
        seen.add(due_at)
        found.append(Occurrence(item.item_id, item.kind, due_at, local))
    return found


class _DayPlan:
    """A day whose nudges do not all fit the daily limit beside its sessions (rule 5)."""

    def __init__(
        self,
        sessions: list[Occurrence],
        *,
        cap: int,
        gap: dt.timedelta,
        edges: tuple[dt.datetime, dt.datetime],
    ) -> None:
        self.cap, self.gap, self.edges = cap, gap, edges
        self.kept = list(sessions)
        groups = group_close(sessions, gap=gap)
        self.heads = [group[0].due_at for group in groups]
        # The messages a nudge can travel in: a question carries nothing.
        self.carriers = [group[0].due_at for group in groups if group[0].kind not in QUESTION_KINDS]

    def with_nudges(self, nudges: list[Occurrence]) -> list[Occurrence]:
        """1. One at a time, the nudge nearest the middle of the largest gap between messages
           that can take one, until the limit is reached or no gap can.
        2. Then every other nudge that travels in a kept message (it costs nothing)."""
        pool = sorted(nudges, key=_order)
        while len(self.heads) < self.cap and (index := self._best(pool)) is not None:
            chosen = pool.pop(index)
            self.kept.append(chosen)
            bisect.insort(self.heads, chosen.due_at)
            bisect.insort(self.carriers, chosen.due_at)
        return self.kept + [nudge for nudge in pool if self._travels(nudge.due_at)]

    def _best(self, pool: list[Occurrence]) -> int | None:
        """The index in ``pool`` of the nudge for the largest gap between messages (window
        edges counted) that has one at least ``gap`` from the messages at its ends; the
        earlier gap, and the earlier nudge, on ties."""
        times = [nudge.due_at for nudge in pool]
        apart = max(self.gap, _INSTANT)  # a nudge never lands on a message's own instant
        first, last = self.edges
        # (gap start, gap end, room kept free at each end): none at the window's edges.
        bounds = [
            (first, dt.timedelta(0)),
            *((h, apart) for h in self.heads),
            (last, dt.timedelta(0)),
        ]
        gaps = sorted(itertools.pairwise(bounds), key=lambda g: (g[0][0] - g[1][0], g[0][0]))
        for (start, after_start), (end, before_end) in gaps:
            low = bisect.bisect_left(times, start + after_start)
            high = bisect.bisect_right(times, end - before_end)
            if low < high:
                return _nearest(times, low, high, start + (end - start) / 2)
        return None

    def _travels(self, moment: dt.datetime) -> bool:
        """Whether something due then leaves in a kept message without moving it."""
        index = bisect.bisect_right(self.carriers, moment) - 1
        return index >= 0 and travels_with(self.carriers[index], moment, gap=self.gap)


def _nearest(times: list[dt.datetime], low: int, high: int, middle: dt.datetime) -> int:
    """The index in sorted ``times[low:high]`` nearest ``middle``: the earlier on a tie, and
    the first of equal times (the lowest item id)."""
    after = bisect.bisect_left(times, middle, low, high)
    if after == low:
        return low
    before = bisect.bisect_left(times, times[after - 1], low, high)
    if after == high or middle - times[before] <= times[after] - middle:
        return before
    return after


def _order(occurrence: Occurrence) -> tuple[dt.datetime, int]:
    return occurrence.due_at, occurrence.item_id


def _wall_times(schedule: PatientSchedule, item: ItemRule) -> tuple[dt.time, ...]:
    """The local wall times an item asks for on a day it runs, before any DST move."""
    if item.every_minutes is None:
        return _fixed_times(schedule.wake_start, schedule.wake_end, item.at_times)
    return _repeat_times(schedule.wake_start, schedule.wake_end, item.every_minutes)


@functools.lru_cache(maxsize=1024)
def _fixed_times(
    start: dt.time, end: dt.time, at_times: tuple[dt.time, ...]
) -> tuple[dt.time, ...]:
    # A session set outside the window never fires; without this, 02:30 with a window from
    # 03:00 would fire once a year, on the day DST moves it to 03:00.
    return tuple(wall for wall in at_times if start <= wall and _minute(wall) <= end)


@functools.lru_cache(maxsize=1024)
def _repeat_times(start: dt.time, end: dt.time, every: int) -> tuple[dt.time, ...]:
    # Wall-clock arithmetic on a throwaway date: these are clock readings, not instants.
    first = dt.datetime.combine(dt.date.min, start)
    last = dt.datetime.combine(dt.date.min, end)
    step = dt.timedelta(minutes=every)
    count = (last - first) // step + 1
    return tuple((first + n * step).time() for n in range(count))


def _place(zone: ZoneInfo, day: dt.date, wall: dt.time) -> dt.datetime:
    """The instant a wall time names on a day, as an aware local datetime.

    fold=0 (the default) reads a repeated fall-back time as its first occurrence. A time in a
    spring-forward gap names no instant: it does not survive the round trip through UTC.
    """
    asked = dt.datetime.combine(day, wall, tzinfo=zone)
    local = asked.astimezone(dt.UTC).astimezone(zone)
    if local.replace(tzinfo=None) == asked.replace(tzinfo=None):
        return local
    return _after_gap(zone, asked)


def _after_gap(zone: ZoneInfo, asked: dt.datetime) -> dt.datetime:
    """The first whole local minute after the gap that swallowed ``asked``.

    In a gap, fold=1 reads the wall time with the offset from after the transition and fold=0
    with the offset from before it, so the transition instant lies between the two readings
    (an hour apart at most, usually): bisect on whole seconds for the first instant whose wall
    clock is past the asked-for time. Transitions fall on whole seconds in tzdata.
    """
    wall = asked.replace(tzinfo=None)
    before = math.floor(asked.replace(fold=1).timestamp())  # still before the transition
    after = math.ceil(asked.timestamp())  # at or after it
    while after - before > 1:
        middle = (before + after) // 2
        if dt.datetime.fromtimestamp(middle, zone).replace(tzinfo=None) > wall:
            after = middle
        else:
            before = middle
    # Old zones had offsets with seconds; round the wall clock up to the next whole minute.
    seconds = dt.datetime.fromtimestamp(after, zone).second
    return dt.datetime.fromtimestamp(after + (60 - seconds) % 60, zone)


def _in_window(schedule: PatientSchedule, wall: dt.time) -> bool:
    return _in_hours(schedule.wake_start, schedule.wake_end, wall)


def _in_hours(start: dt.time, end: dt.time, wall: dt.time) -> bool:
    return start <= wall and _minute(wall) <= end


def _minute(wall: dt.time) -> dt.time:
    return wall.replace(second=0, microsecond=0)


# --- many days -------------------------------------------------------------------------


def _calendar(
    first: dt.date, last: dt.date, weekdays: frozenset[int] | None = None
) -> Iterator[dt.date]:
    """Local calendar dates first..last inclusive, optionally only some weekdays."""
    # rrule on UTC midnights is a plain calendar: no DST, every date exactly once.
    rule = rrule(
        DAILY,
        dtstart=dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC),
        until=dt.datetime.combine(last, dt.time(), tzinfo=dt.UTC),
        byweekday=None if weekdays is None else sorted(weekdays),
    )
    return (midnight.date() for midnight in rule)


def _search_days(
    schedule: PatientSchedule, after: dt.datetime, weekdays: frozenset[int] | None
) -> Iterator[dt.date]:
    first = after.astimezone(_zone(schedule.timezone)).date()
    if schedule.not_before is not None:
        first = max(first, schedule.not_before)  # a long pause does not eat the search horizon
    return _calendar(first, first + dt.timedelta(days=SEARCH_DAYS), weekdays)


def _any_of(day_sets: Iterable[frozenset[int] | None]) -> frozenset[int] | None:
    union: set[int] = set()
    for days in day_sets:
        if days is None:
            return None
        union |= days
    return frozenset(union)


def _never_fires(schedule: PatientSchedule, item: ItemRule) -> bool:
    # Saves a SEARCH_DAYS-long scan for a session set outside the waking window.
    return not _wall_times(schedule, item)


def _item(schedule: PatientSchedule, item_id: int) -> ItemRule:
    for item in schedule.items:
        if item.item_id == item_id:
            return item
    raise ValueError(f"no item {item_id} in this schedule")


@functools.cache
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _require_aware(**moments: dt.datetime) -> None:
    for name, moment in moments.items():
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{name} must be a timezone-aware datetime")
