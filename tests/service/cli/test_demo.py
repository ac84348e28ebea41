"""``ptnudge demo`` as a newcomer runs it: a played day, then commands to try next on its
data that work when pasted."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from service.cli.demo import ZONE, next_steps

SCRIPT = Path(sys.executable).with_name("ptnudge")
LEG_STRENGTH_WEEKDAYS = (0, 2, 4)  # stenosis-core's leg strength: mon, wed, fri


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTNUDGE_")}
    return subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=cwd,
        env=env | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_demo_ends_with_commands_that_work_when_pasted(tmp_path: Path) -> None:
    demo = shell(f"{SCRIPT} demo", tmp_path)
    assert demo.returncode == 0, demo.stderr
    lines = demo.stdout.splitlines()
    where = next(i for i, line in enumerate(lines) if line.startswith("The demo's database"))
    assert ".ptnudge/demo/demo.db" in lines[where]
    report, replies, preview = (line.strip() for line in lines[where + 1 : where + 4])
    yesterday = dt.datetime.now(ZoneInfo(ZONE)).date() - dt.timedelta(days=1)

    assert f"--since {yesterday}" in report
    made = shell(report, tmp_path)
    assert made.returncode == 0, made.stderr
    page = (tmp_path / ".ptnudge" / "demo" / "report.html").read_text(encoding="utf-8")
    assert "Ana" in page
    # The same period as data: the played day's deliveries are counted, not "0 delivered".
    (ana,) = json.loads(shell(report.split(" --format")[0] + " --format json", tmp_path).stdout)
    assert (ana["first_name"], ana["done"] > 0, ana["delivered"] > 0) == ("Ana", True, True)

    inbox = shell(replies, tmp_path)
    assert inbox.returncode == 0, inbox.stderr
    assert "after lunch" in inbox.stdout  # the demo patient's question waits for the clinic

    upcoming = shell(preview, tmp_path)
    assert upcoming.returncode == 0, upcoming.stderr
    assert "Ana" in upcoming.stdout


def test_a_day_still_to_come_leaves_the_report_out_and_says_why(tmp_path: Path) -> None:
    later = dt.datetime.now(ZoneInfo(ZONE)).date() + dt.timedelta(days=3)

    lines = next_steps(workdir=tmp_path / "demo", day=later, patient_id=1)

    assert not any("report adherence" in line for line in lines)
    assert any("covers days up to now" in line for line in lines)
    assert any(f"replies list --since {later}" in line for line in lines)


def test_the_demo_day_counts_every_kind_a_combined_message_carried(tmp_path: Path) -> None:
    # A past day with leg strength on it (stenosis-core: Monday, Wednesday and Friday).
    day = dt.datetime.now(ZoneInfo(ZONE)).date() - dt.timedelta(days=1)
    while day.weekday() not in LEG_STRENGTH_WEEKDAYS:
        day -= dt.timedelta(days=1)
    assert shell(f"{SCRIPT} demo --day {day}", tmp_path).returncode == 0
    database = f"sqlite:///{tmp_path / '.ptnudge' / 'demo' / 'demo.db'}"
    report = shell(
        f"PTNUDGE_DATABASE_URL={database} {SCRIPT} report adherence --since {day} --format json",
        tmp_path,
    )
    (ana,) = json.loads(report.stdout)
    engine = sa.create_engine(database)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT r.kind, r.status, r.outcome, h.status FROM reminders AS r "
                "LEFT JOIN reminders AS h ON h.id = r.merged_into_id WHERE r.actionable"
            )
        ).all()
    engine.dispose()
    went_out = Counter(
        kind
        for kind, status, _, head in rows
        if status in {"sent", "delivered"} or (status == "merged" and head in {"sent", "delivered"})
    )
    merged_done = [kind for kind, status, outcome, _ in rows if status == "merged" and outcome]

    assert {kind: doc["delivered"] for kind, doc in ana["per_kind"].items()} == dict(went_out)
    assert ana["delivered"] == sum(went_out.values())
    assert "leg_strength" in ana["per_kind"]  # only ever sent inside a combined message
    # The 09:00 "change position and do your stretches" was answered DONE: both kinds count.
    assert "stretch" in merged_done
    assert ana["per_kind"]["stretch"]["done"] == ana["per_kind"]["stretch"]["delivered"]
