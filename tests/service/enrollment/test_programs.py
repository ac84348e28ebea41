"""Program files: durations, progressions of programs, and tuning a progression."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from service.enrollment.programs import ProgramError, get_program, load_program_file, tune

START = dt.date(2026, 12, 1)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def progression(*phases: str) -> str:
    return "name: Steps\nphases:\n" + "".join(phases)


def test_the_six_week_progression_is_gentle_for_two_weeks_then_core() -> None:
    program = get_program("stenosis-6-weeks")

    assert [(phase.program.id, phase.weeks) for phase in program.phases] == [
        ("stenosis-gentle", 2),
        ("stenosis-core", 4),
    ]
    assert program.duration_days == 42
    assert program.items == get_program("stenosis-gentle").items
    assert program.phase_starts(START) == [START, dt.date(2026, 12, 15)]
    assert program.phase_at(start=START, day=dt.date(2026, 12, 14)) == 0
    assert program.phase_at(start=START, day=dt.date(2026, 12, 15)) == 1
    assert program.phase_at(start=START, day=dt.date(2027, 3, 1)) == 1  # the last phase goes on


def test_the_twelve_week_progression_ends_on_the_active_program() -> None:
    program = get_program("stenosis-12-weeks")

    assert [phase.program.id for phase in program.phases] == [
        "stenosis-gentle",
        "stenosis-core",
        "stenosis-active",
    ]
    assert program.duration_days == 84


def test_a_program_may_last_some_weeks(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "short",
        "name: Short\nduration: 3w\nitems:\n  - kind: stretch\n    at: ['09:00']\n",
    )

    assert load_program_file(path).duration_days == 21


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            progression("  - program: stenosis-nowhere\n    weeks: 2\n"),
            "steps.yaml, phase 1 (stenosis-nowhere): unknown program 'stenosis-nowhere'",
        ),
        (
            progression(
                "  - program: stenosis-gentle\n    weeks: 2\n",
                "  - program: stenosis-6-weeks\n    weeks: 2\n",
            ),
            "steps.yaml, phase 2 (stenosis-6-weeks): 'stenosis-6-weeks' is itself a "
            "progression; a phase must be a program with items",
        ),
        (
            progression("  - program: stenosis-core\n    weeks: 0\n"),
            "steps.yaml, phase 1 (stenosis-core): 'weeks' must be a whole number from 1 to 104",
        ),
        (
            progression("  - program: stenosis-core\n    weeks: -3\n"),
            "'weeks' must be a whole number from 1 to 104, not -3",
        ),
        (
            progression("  - program: steps\n    weeks: 2\n"),
            "steps.yaml, phase 1 (steps): a progression cannot include itself",
        ),
        ("name: Steps\nphases: []\n", "steps.yaml: 'phases' must be a non-empty list"),
        (
            progression("  - program: stenosis-core\n") + "duration: 6w\n",
            "steps.yaml: a progression has 'phases' instead of 'duration'",
        ),
        (
            "name: Steps\nduration: soon\nitems:\n  - kind: stretch\n    at: ['09:00']\n",
            "steps.yaml: 'duration' must look like 6w or 42d, not 'soon'",
        ),
    ],
)
def test_a_bad_progression_names_the_file_the_phase_and_the_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, "steps", text)

    with pytest.raises(ProgramError) as caught:
        load_program_file(path)

    assert message in str(caught.value)


def test_a_phase_may_be_a_clinics_own_program(tmp_path: Path) -> None:
    write(tmp_path, "easy-start", "name: Easy\nitems:\n  - kind: heat\n    at: ['08:00']\n")
    path = write(
        tmp_path,
        "steps",
        progression(
            "  - program: easy-start\n    weeks: 1\n", "  - program: stenosis-core\n    weeks: 3\n"
        ),
    )

    program = load_program_file(path, tmp_path)

    assert [phase.program.id for phase in program.phases] == ["easy-start", "stenosis-core"]
    assert program.duration_days == 28


def test_tuning_a_progression_applies_to_each_phase_with_that_kind() -> None:
    program = tune(
        get_program("stenosis-6-weeks"),
        ["stretch.at=10:00,16:00", "heat.at=07:00", "aquatic.at=12:00"],
        max_per_day=9,
    )

    gentle, core = ({item.kind: item for item in phase.program.items} for phase in program.phases)
    assert gentle["stretch"].at_times == core["stretch"].at_times == (dt.time(10), dt.time(16))
    assert gentle["heat"].at_times == (dt.time(7),)
    assert "heat" not in core  # the core program has no heat: the tuning keeps to gentle
    assert "aquatic" in gentle  # no phase had it: added to each
    assert "aquatic" in core
    assert {phase.program.max_per_day for phase in program.phases} == {9}
    assert program.items == program.phases[0].program.items


def test_a_tuning_impossible_in_any_phase_is_refused() -> None:
    with pytest.raises(ProgramError, match="fixed sessions on"):
        tune(get_program("stenosis-12-weeks"), [], max_per_day=2)
