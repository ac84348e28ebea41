"""``ptnudge programs list|show|validate``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

import service.cli  # noqa: F401 - registers every command group on the root app
from service.cli.app import app


def run(*args: str, programs_dir: Path | None = None) -> Result:
    env = {"PTNUDGE_ENV": "test", "COLUMNS": "200"}
    if programs_dir is not None:
        env["PTNUDGE_PROGRAMS_DIR"] = str(programs_dir)
    return CliRunner().invoke(app, ["programs", *args], env=env)


BAD_PROGRAM = """\
name: Too much
items:
  - kind: stretch
    at: ["09:00"]
  - kind: heat
    at: ["25:00"]
"""


def test_list_json_has_every_built_in_program() -> None:
    result = run("list", "--json")

    assert result.exit_code == 0, result.output
    programs = {p["id"]: p for p in json.loads(result.stdout)}
    assert {"stenosis-core", "stenosis-gentle", "stenosis-active"} <= set(programs)
    core = programs["stenosis-core"]
    assert set(core) == {"id", "name", "description", "items", "limits", "source"}
    assert core["limits"] == {"max_per_day": 10}
    assert core["items"][0] == {"kind": "position_change", "every": "1h"}


def test_show_prints_the_items_and_json_the_document() -> None:
    table = run("show", "stenosis-gentle")
    document = json.loads(run("show", "stenosis-gentle", "--json").stdout)

    assert table.exit_code == 0, table.output
    assert "every 1h30m daily" in table.stdout
    assert "at most 8 messages a day" in table.stdout
    assert document["items"][0] == {"kind": "position_change", "every": "1h30m"}


def test_show_an_unknown_program_lists_the_known_ones() -> None:
    result = run("show", "stenosis-extreme")

    assert result.exit_code == 1
    assert "unknown program 'stenosis-extreme'; available: stenosis-12-weeks" in result.stderr


def test_show_a_progression_lists_each_phase_with_its_weeks_and_items() -> None:
    table = run("show", "stenosis-6-weeks")
    document = json.loads(run("show", "stenosis-6-weeks", "--json").stdout)

    assert table.exit_code == 0, table.output
    assert "phase 1: stenosis-gentle, 2 week(s)" in table.stdout
    assert "phase 2: stenosis-core, 4 week(s)" in table.stdout
    assert document["phases"] == [
        {"program": "stenosis-gentle", "weeks": 2},
        {"program": "stenosis-core", "weeks": 4},
    ]


def test_validate_names_the_file_the_item_and_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "too-much.yaml"
    bad.write_text(BAD_PROGRAM, encoding="utf-8")
    good = Path("config/programs/stenosis-core.yaml")

    result = run("validate", str(good), str(bad))

    assert result.exit_code == 1
    assert "ok  stenosis-core.yaml (7 items)" in result.stdout
    assert result.stderr.splitlines()[-1] == (
        "error: too-much.yaml, item 2 (heat): time '25:00' is not a valid HH:MM time"
    )


def test_validate_without_files_checks_every_known_program(tmp_path: Path) -> None:
    (tmp_path / "clinic-own.yaml").write_text(BAD_PROGRAM, encoding="utf-8")

    everything = run("validate", programs_dir=tmp_path)
    listed = run("list", "--json", programs_dir=tmp_path)

    assert everything.exit_code == 1
    assert "ok  stenosis-core.yaml" in everything.stdout
    assert "clinic-own.yaml, item 2 (heat)" in everything.stderr
    # One bad file does not hide the good ones, but it is reported.
    assert listed.exit_code == 1
    assert "stenosis-core" in {p["id"] for p in json.loads(listed.stdout)}


def test_validate_a_missing_file() -> None:
    result = run("validate", "nowhere.yaml")

    assert result.exit_code == 1
    assert "nowhere.yaml: no such file" in result.stderr


FITS = """\
name: Fits
items:
  - kind: position_change
    every: 3h
  - kind: stretch
    at: ["09:00"]
limits:
  max_per_day: 10
"""


def test_validate_warns_when_a_program_cannot_fit_its_cap_and_says_what_a_day_keeps() -> None:
    result = run("validate", "config/programs/stenosis-core.yaml")

    assert result.exit_code == 0, result.output
    assert "ok  stenosis-core.yaml (7 items)" in result.stdout
    assert result.stderr.strip() == (
        "warning: stenosis-core.yaml asks for up to 16 messages a day in the default waking "
        "window 08:00-20:00, but max_per_day is 10; a typical day keeps position_change 7-8 "
        "of 13, stretch 3 of 3, pelvic_tilt 1 of 1, leg_strength 1 of 1 (mon, wed, fri), "
        "walk_or_cycle 1 of 1 (tue, thu, sat), pain_question 1 of 1 (tue, fri), "
        "weekly_checkin 1 of 1 (sun)"
    )


def test_validate_says_nothing_more_for_a_program_that_fits(tmp_path: Path) -> None:
    fits = tmp_path / "fits.yaml"
    fits.write_text(FITS, encoding="utf-8")

    result = run("validate", str(fits))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ok  fits.yaml (2 items)"
    assert result.stderr == ""
