"""Home programs as data: one YAML file each, in ``config/programs/`` and a clinic's own folder.

A file that does not parse, names an unknown kind, or asks for the impossible is refused with
the file, the item and the reason, e.g.::

    stenosis-core.yaml, item 2 (stretch): 'at' time '25:00' is not a valid HH:MM time

A program may last a while (``duration: 6w``); a **progression** lists ``phases`` instead of
``items``, each another program file for some weeks (the gentle program, then the core one):
the patient's plan switches from one to the next at local midnight of the boundary.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from service.delivery.rendering import QUESTION_KINDS, REMINDER_KINDS
from service.enrollment.scheduling import (
    DEFAULT_MIN_GAP,
    ItemRule,
    PatientSchedule,
    day_occurrences,
    group_close,
)

BUILTIN_DIR = Path(__file__).resolve().parents[2] / "config" / "programs"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MIN_EVERY_MINUTES = 15
MAX_EVERY_MINUTES = 12 * 60
MAX_PER_DAY_CEILING = 48
# The waking window a patient gets unless the clinic sets one (``patients enroll --wake``).
DEFAULT_WAKE_WINDOW = (dt.time(8, 0), dt.time(20, 0))
# A week without clock changes, Monday first, to read a program's days off the scheduler.
_SAMPLE_MONDAY = dt.date(2026, 6, 1)
MAX_WEEKS = 104  # two years: longer is a typo, not a home program
PROGRAM_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_EVERY = re.compile(r"^\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m(?:in)?)?\s*$")
_DURATION = re.compile(r"^\s*(?P<n>\d+)\s*(?P<unit>[wd])\s*$")


class ProgramError(ValueError):
    """A program file, or a tuning of one, that cannot be used. The message says where and why."""


@dataclass(frozen=True)
class ProgramItem:
    kind: str
    every_minutes: int | None = None
    at_times: tuple[dt.time, ...] = ()
    days: tuple[str, ...] | None = None  # None: every day

    def describe(self) -> str:
        when = (
            f"every {format_every(self.every_minutes)}"
            if self.every_minutes
            else "at " + ", ".join(t.strftime("%H:%M") for t in self.at_times)
        )
        return when + (" on " + ", ".join(self.days) if self.days else " daily")


@dataclass(frozen=True)
class Program:
    """A home program, or a progression of programs. A progression's ``items`` and
    ``max_per_day`` are those of its first phase: what a patient starts with."""

    id: str
    name: str
    items: tuple[ProgramItem, ...]
    max_per_day: int
    source: Path
    description: str = ""
    duration_days: int | None = None  # None: until staff end it
    phases: tuple[Phase, ...] = field(default=())

    def item(self, kind: str) -> ProgramItem:
        for item in self.items:
            if item.kind == kind:
                return item
        raise ProgramError(f"program {self.id!r} has no {kind!r} item")

    def phase_starts(self, start: dt.date) -> list[dt.date]:
        """The local date each phase begins on, for a patient starting on ``start``."""
        starts, day = [], start
        for phase in self.phases:
            starts.append(day)
            day += dt.timedelta(weeks=phase.weeks)
        return starts

    def phase_at(self, *, start: dt.date, day: dt.date) -> int:
        """The phase (0-based) a local day falls in; the last one goes on if the patient's
        program was made longer than the progression."""
        index = 0
        for number, begins in enumerate(self.phase_starts(start)):
            if begins <= day:
                index = number
        return index

    def phase_program(self, index: int) -> Program:
        return self.phases[index].program if self.phases else self


@dataclass(frozen=True)
class Phase:
    """Some weeks of a progression, on one (item) program."""

    program: Program
    weeks: int


def known_kinds() -> frozenset[str]:
    """What a program can schedule: the reminder messages and the questions in templates/."""
    return frozenset((*REMINDER_KINDS, *QUESTION_KINDS))


def parse_every(value: object) -> int:
    """``"60m"``, ``"1h"``, ``"1h30m"`` or a bare number of minutes, as minutes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _EVERY.match(str(value))
    if not match or not (match["h"] or match["m"]):
        raise ValueError(f"'every' must look like 45m, 2h or 1h30m, not {value!r}")
    return int(match["h"] or 0) * 60 + int(match["m"] or 0)


def parse_duration(value: object) -> int:
    """``"6w"`` or ``"42d"`` as days, from one day to MAX_WEEKS weeks."""
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"'duration' must look like 6w or 42d, not {value!r}")
    days = int(match["n"]) * (7 if match["unit"] == "w" else 1)
    if not 1 <= days <= MAX_WEEKS * 7:
        raise ValueError(f"'duration' must be from 1d to {MAX_WEEKS}w, not {value!r}")
    return days


def format_duration(days: int) -> str:
    return f"{days // 7}w" if days % 7 == 0 else f"{days}d"


def format_every(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + (f"{rest}m" if rest or not hours else "")


def parse_time(value: object) -> dt.time:
    text = str(value).strip()
    if not re.fullmatch(r"\d{1,2}:\d{2}", text):
        raise ValueError(f"time {value!r} is not a valid HH:MM time")
    hours, minutes = (int(part) for part in text.split(":"))
    if hours > 23 or minutes > 59:
        raise ValueError(f"time {value!r} is not a valid HH:MM time")
    return dt.time(hours, minutes)


def parse_item(raw: object, kinds: frozenset[str]) -> ProgramItem:
    if not isinstance(raw, dict):
        raise ValueError("each item must be a mapping with 'kind' and 'every' or 'at'")
    unknown = set(raw) - {"kind", "every", "at", "days"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    kind = raw.get("kind")
    if kind not in kinds:
        raise ValueError(f"unknown kind {kind!r}; known kinds: {', '.join(sorted(kinds))}")
    if ("every" in raw) == ("at" in raw):
        raise ValueError("give exactly one of 'every' or 'at'")
    return ProgramItem(
        kind=str(kind),
        every_minutes=_checked_every(raw["every"]) if "every" in raw else None,
        at_times=_checked_at(raw["at"]) if "at" in raw else (),
        days=_checked_days(raw["days"]) if raw.get("days") is not None else None,
    )


def _checked_every(value: object) -> int:
    minutes = parse_every(value)
    if not MIN_EVERY_MINUTES <= minutes <= MAX_EVERY_MINUTES:
        raise ValueError(
            f"'every' must be between {MIN_EVERY_MINUTES}m and {MAX_EVERY_MINUTES // 60}h, "
            f"not {value!r}"
        )
    return minutes


def _checked_at(value: object) -> tuple[dt.time, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        raise ValueError("'at' must be a non-empty list of HH:MM times")
    times = [parse_time(item) for item in values]
    if len(set(times)) != len(times):
        raise ValueError("'at' lists the same time twice")
    return tuple(sorted(times))


def _checked_days(value: object) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        raise ValueError("'days' must be a non-empty list such as [mon, wed, fri]")
    days = [str(day).strip().lower()[:3] for day in values]
    wrong = [str(day) for day, short in zip(values, days, strict=True) if short not in WEEKDAYS]
    if wrong:
        raise ValueError(f"unknown day(s) {', '.join(wrong)}; use mon, tue, … sun")
    return tuple(sorted(set(days), key=WEEKDAYS.index))


Resolver = Callable[[str], Program]  # a phase's program by id (never a progression)


def parse_program(
    raw: object, *, program_id: str, source: Path, resolve: Resolver | None = None
) -> Program:
    """Validate one parsed YAML document. Errors name the file and the item (or phase).
    ``resolve`` finds the programs a progression's phases name (default: the built-in ones)."""
    where = source.name
    if not isinstance(raw, dict):
        raise ProgramError(f"{where}: expected a mapping with 'name', 'items' and 'limits'")
    unknown = set(raw) - {"name", "description", "items", "phases", "limits", "duration"}
    if unknown:
        raise ProgramError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    if not isinstance(raw.get("name"), str) or not raw["name"].strip():
        raise ProgramError(f"{where}: 'name' is required")
    if "phases" in raw:
        return _parse_progression(raw, program_id=program_id, source=source, resolve=resolve)
    program = Program(
        id=program_id,
        name=raw["name"].strip(),
        description=str(raw.get("description") or "").strip(),
        items=_parse_items(raw.get("items"), where),
        max_per_day=_max_per_day(raw.get("limits"), where),
        source=source,
        duration_days=_duration(raw.get("duration"), where),
    )
    check_feasible(program)
    return program


def _parse_items(items: object, where: str) -> tuple[ProgramItem, ...]:
    if not isinstance(items, list) or not items:
        raise ProgramError(f"{where}: 'items' must be a non-empty list")
    kinds = known_kinds()
    parsed = []
    for number, item in enumerate(items, start=1):
        label = item.get("kind", "?") if isinstance(item, dict) else "?"
        try:
            parsed.append(parse_item(item, kinds))
        except ValueError as exc:
            raise ProgramError(f"{where}, item {number} ({label}): {exc}") from None
    return tuple(parsed)


def _duration(value: object, where: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ProgramError(f"{where}: {exc}") from None


def _parse_progression(
    raw: dict[str, Any], *, program_id: str, source: Path, resolve: Resolver | None
) -> Program:
    """A progression: each phase another program for some weeks; it lasts their sum."""
    where = source.name
    for key in ("items", "limits", "duration"):
        if key in raw:
            raise ProgramError(
                f"{where}: a progression has 'phases' instead of {key!r} (each phase's program "
                "brings its items and limits; the weeks add up to its length)"
            )
    listed = raw["phases"]
    if not isinstance(listed, list) or not listed:
        raise ProgramError(f"{where}: 'phases' must be a non-empty list of 'program' and 'weeks'")
    lookup = resolve or _phase_resolver(program_files())
    phases = tuple(
        _parse_phase(phase, number=number, where=where, own_id=program_id, resolve=lookup)
        for number, phase in enumerate(listed, start=1)
    )
    first = phases[0].program
    return Program(
        id=program_id,
        name=raw["name"].strip(),
        description=str(raw.get("description") or "").strip(),
        items=first.items,
        max_per_day=first.max_per_day,
        source=source,
        duration_days=7 * sum(phase.weeks for phase in phases),
        phases=phases,
    )


def _parse_phase(raw: object, *, number: int, where: str, own_id: str, resolve: Resolver) -> Phase:
    label = raw.get("program", "?") if isinstance(raw, dict) else "?"
    try:
        if not isinstance(raw, dict) or set(raw) != {"program", "weeks"}:
            raise ValueError("each phase is a mapping of 'program' and 'weeks'")
        weeks = raw["weeks"]
        if isinstance(weeks, bool) or not isinstance(weeks, int) or not 1 <= weeks <= MAX_WEEKS:
            raise ValueError(f"'weeks' must be a whole number from 1 to {MAX_WEEKS}, not {weeks!r}")
        if raw["program"] == own_id:
            raise ValueError("a progression cannot include itself")
        return Phase(program=resolve(str(raw["program"])), weeks=weeks)
    except ValueError as exc:
        raise ProgramError(f"{where}, phase {number} ({label}): {exc}") from None


def _phase_resolver(files: dict[str, Path]) -> Resolver:
    """Phases name programs with items; a progression inside a progression is refused (it
    could name the first one again, and staff could not tell which weeks apply)."""

    def resolve(program_id: str) -> Program:
        if program_id not in files:
            raise ProgramError(f"unknown program {program_id!r}")
        raw = _read_yaml(files[program_id])
        if isinstance(raw, dict) and "phases" in raw:
            raise ProgramError(
                f"{program_id!r} is itself a progression; a phase must be a program with items"
            )
        return parse_program(raw, program_id=program_id, source=files[program_id])

    return resolve


def _max_per_day(limits: Any, where: str) -> int:
    if limits is None:
        return 10
    if not isinstance(limits, dict) or set(limits) - {"max_per_day"}:
        raise ProgramError(f"{where}: 'limits' takes only 'max_per_day'")
    value = limits.get("max_per_day", 10)
    if isinstance(value, bool) or not isinstance(value, int):
        value = 0
    if not 1 <= value <= MAX_PER_DAY_CEILING:
        raise ProgramError(
            f"{where}: limits.max_per_day must be a whole number from 1 to {MAX_PER_DAY_CEILING}"
        )
    return value


def check_feasible(program: Program) -> None:
    """Refuse what can never be delivered as written: more fixed sessions on one weekday than
    the daily limit allows, or two items of the same kind (replies could not tell them apart)."""
    where = program.source.name
    seen: set[str] = set()
    for item in program.items:
        if item.kind in seen:
            raise ProgramError(f"{where}: kind {item.kind!r} appears twice; merge the items")
        seen.add(item.kind)
    for day in WEEKDAYS:
        fixed = sum(
            len(item.at_times)
            for item in program.items
            if item.at_times and (item.days is None or day in item.days)
        )
        if fixed > program.max_per_day:
            raise ProgramError(
                f"{where}: {fixed} fixed sessions on {day} but limits.max_per_day is "
                f"{program.max_per_day}; raise the limit or remove sessions"
            )


def load_program_file(path: Path, extra_dir: Path | None = None) -> Program:
    """One program file; a progression's phases are looked up among the known programs
    (built-in, ``extra_dir``) and the file's own folder."""
    program_id = path.stem
    if not PROGRAM_ID.match(program_id):
        raise ProgramError(
            f"{path.name}: file name must be a lower-case id like stenosis-core.yaml"
        )
    raw = _read_yaml(path)
    # Known programs win over the file's neighbours: a clinic's override is the one in use.
    files = {p.stem: p for p in sorted(path.parent.glob("*.yaml"))} | program_files(extra_dir)
    return parse_program(raw, program_id=program_id, source=path, resolve=_phase_resolver(files))


def _read_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ProgramError(f"{path.name}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ProgramError(f"{path.name}:{line} YAML does not parse: {exc}") from None


def program_files(extra_dir: Path | None = None) -> dict[str, Path]:
    """Program files by id; a clinic's own folder may override a built-in program."""
    files: dict[str, Path] = {}
    for folder in (BUILTIN_DIR, extra_dir):
        if folder is not None:
            files.update({path.stem: path for path in sorted(folder.glob("*.yaml"))})
    return files


def load_programs(extra_dir: Path | None = None) -> dict[str, Program]:
    """Every program, validated; the first bad file stops the load with its error."""
    return {
        pid: load_program_file(path, extra_dir) for pid, path in program_files(extra_dir).items()
    }


def get_program(program_id: str, extra_dir: Path | None = None) -> Program:
    files = program_files(extra_dir)
    if program_id not in files:
        raise ProgramError(
            f"unknown program {program_id!r}; available: {', '.join(sorted(files)) or 'none'}"
        )
    return load_program_file(files[program_id], extra_dir)


def tune(program: Program, tunings: Iterable[str], *, max_per_day: int | None = None) -> Program:
    """Apply a clinic's per-patient tuning, each ``kind.field=value``:
    ``position_change.every=90m``, ``stretch.at=10:00,16:00``, ``leg_strength.days=mon,thu``,
    ``aquatic.off`` (drop the item) or ``heat.at=08:00`` for a kind the program lacks (added).

    A progression is tuned phase by phase: a tuning applies to each phase with its kind (a
    kind no phase has is added to every phase); ``max_per_day`` replaces each phase's limit.
    """
    if program.phases:
        return _tune_progression(program, tuple(tunings), max_per_day)
    items = {item.kind: item for item in program.items}
    for tuning in tunings:
        _apply_tuning(items, tuning.strip())
    if not items:
        raise ProgramError("tuning removed every item; a program needs at least one")
    tuned = replace(
        program,
        items=tuple(items.values()),
        max_per_day=program.max_per_day if max_per_day is None else max_per_day,
    )
    if not 1 <= tuned.max_per_day <= MAX_PER_DAY_CEILING:
        raise ProgramError(f"max per day must be from 1 to {MAX_PER_DAY_CEILING}")
    check_feasible(tuned)
    return tuned


def _tune_progression(
    program: Program, tunings: tuple[str, ...], max_per_day: int | None
) -> Program:
    everywhere = {item.kind for phase in program.phases for item in phase.program.items}
    phases = []
    for phase in program.phases:
        own = {item.kind for item in phase.program.items}
        wanted = [t for t in tunings if _tuned_kind(t) in own or _tuned_kind(t) not in everywhere]
        tuned = tune(phase.program, wanted, max_per_day=max_per_day)
        phases.append(replace(phase, program=tuned))
    first = phases[0].program
    return replace(program, phases=tuple(phases), items=first.items, max_per_day=first.max_per_day)


def _tuned_kind(tuning: str) -> str:
    return tuning.strip().partition(".")[0]


def _apply_tuning(items: dict[str, ProgramItem], tuning: str) -> None:
    kind, _, rest = tuning.partition(".")
    field, _, value = rest.partition("=")
    if kind not in known_kinds():
        raise ProgramError(f"tuning {tuning!r}: unknown kind {kind!r}")
    if field == "off" and not value:
        items.pop(kind, None)
        return
    try:
        current = items.get(kind, ProgramItem(kind=kind))
        if field == "every":
            items[kind] = replace(current, every_minutes=_checked_every(value), at_times=())
        elif field == "at":
            times = _checked_at([part for part in value.split(",") if part])
            items[kind] = replace(current, at_times=times, every_minutes=None)
        elif field == "days":
            items[kind] = replace(current, days=_checked_days(value.split(",")))
        else:
            raise ValueError("expected kind.every=…, kind.at=…, kind.days=… or kind.off")
    except ValueError as exc:
        raise ProgramError(f"tuning {tuning!r}: {exc}") from None
    if not (items[kind].every_minutes or items[kind].at_times):
        raise ProgramError(f"tuning {tuning!r}: a new item needs 'every' or 'at' first")


def to_document(program: Program) -> dict[str, Any]:
    """The program as the YAML/JSON shape clinics write (``programs show --json``)."""
    doc: dict[str, Any] = {
        "id": program.id,
        "name": program.name,
        "description": program.description,
    }
    if program.phases:
        doc["phases"] = [
            {"program": phase.program.id, "weeks": phase.weeks} for phase in program.phases
        ]
        return doc
    doc["items"] = [item_document(item) for item in program.items]
    doc["limits"] = {"max_per_day": program.max_per_day}
    if program.duration_days is not None:
        doc["duration"] = format_duration(program.duration_days)
    return doc


def item_document(item: ProgramItem) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": item.kind}
    if item.every_minutes:
        doc["every"] = format_every(item.every_minutes)
    else:
        doc["at"] = [t.strftime("%H:%M") for t in item.at_times]
    if item.days:
        doc["days"] = list(item.days)
    return doc


def weekday_numbers(days: Sequence[str] | None) -> frozenset[int] | None:
    return None if days is None else frozenset(WEEKDAYS.index(day) for day in days)


@dataclass(frozen=True)
class KindFit:
    kind: str
    asked: tuple[int, ...]  # per day the item runs, Monday first
    kept: tuple[int, ...]
    days: tuple[str, ...] | None  # None: every day

    def describe(self) -> str:
        def span(counts: tuple[int, ...]) -> str:
            low, high = min(counts), max(counts)
            return str(low) if low == high else f"{low}-{high}"

        where = f" ({', '.join(self.days)})" if self.days else ""
        return f"{self.kind} {span(self.kept)} of {span(self.asked)}{where}"


def fit_warning(
    program: Program,
    *,
    wake: tuple[dt.time, dt.time] = DEFAULT_WAKE_WINDOW,
    min_gap: dt.timedelta = DEFAULT_MIN_GAP,
) -> str | None:
    """What a clinic should know when the program asks for more messages on some day than
    its own daily limit, in a waking window: how many of each kind a day keeps. None when
    every day fits."""
    asked, kinds = _week_fit(program, wake=wake, min_gap=min_gap)
    if max(asked) <= program.max_per_day:
        return None
    window = f"{wake[0]:%H:%M}-{wake[1]:%H:%M}"
    return (
        f"{program.source.name} asks for up to {max(asked)} messages a day in the default "
        f"waking window {window}, but max_per_day is {program.max_per_day}; a typical day "
        f"keeps {', '.join(kind.describe() for kind in kinds)}"
    )


def _week_fit(
    program: Program, *, wake: tuple[dt.time, dt.time], min_gap: dt.timedelta
) -> tuple[list[int], list[KindFit]]:
    """Messages asked for on each day of a sample week, and each kind's count per day."""
    rules = tuple(
        ItemRule(
            item_id=number,
            kind=item.kind,
            every_minutes=item.every_minutes,
            at_times=item.at_times,
            days=weekday_numbers(item.days),
        )
        for number, item in enumerate(program.items)
    )
    limited = PatientSchedule(
        timezone="UTC",
        wake_start=wake[0],
        wake_end=wake[1],
        items=rules,
        max_per_day=program.max_per_day,
        min_gap=min_gap,
    )
    unlimited = replace(limited, max_per_day=10_000)
    asked_per_day: list[int] = []
    asked: dict[str, list[int]] = defaultdict(list)
    kept: dict[str, list[int]] = defaultdict(list)
    for offset, weekday in enumerate(WEEKDAYS):
        day = _SAMPLE_MONDAY + dt.timedelta(days=offset)
        everything = day_occurrences(unlimited, day)
        asked_per_day.append(len(group_close(everything, gap=min_gap)))
        wanted = Counter(o.kind for o in everything)
        found = Counter(o.kind for o in day_occurrences(limited, day))
        for item in program.items:
            if item.days is None or weekday in item.days:
                asked[item.kind].append(wanted[item.kind])
                kept[item.kind].append(found[item.kind])
    kinds = [
        KindFit(item.kind, tuple(asked[item.kind]), tuple(kept[item.kind]), item.days)
        for item in program.items
        if asked[item.kind]
    ]
    return asked_per_day, kinds
