"""``ptnudge db upgrade``, and the installed ``ptnudge`` script end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

import service.cli  # noqa: F401 - registers every command group on the root app
from service.cli.app import app


def test_upgrade_creates_the_schema_and_can_run_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = {"PTNUDGE_DATABASE_URL": url, "PTNUDGE_ENV": "test"}

    first = CliRunner().invoke(app, ["db", "upgrade"], env=env)
    again = CliRunner().invoke(app, ["db", "upgrade"], env=env)

    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    assert "is up to date" in again.stdout
    engine = sa.create_engine(url)
    assert {"clinics", "patients", "plan_items", "reminders"} <= set(
        sa.inspect(engine).get_table_names()
    )
    engine.dispose()


def test_the_installed_script_enrolls_and_imports(tmp_path: Path) -> None:
    """The console script as staff run it: a fresh SQLite database, a clinic, a CSV."""
    script = Path(sys.executable).with_name("ptnudge")
    env = {
        **os.environ,
        "PTNUDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'clinic.db'}",
        "PTNUDGE_ENV": "test",
    }
    export = tmp_path / "export.csv"
    export.write_text("first_name,phone\nAna,(312) 555-0100\nBo,(312) 555-0101\n", "utf-8")

    def ptnudge(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    steps = [
        ptnudge("db", "upgrade"),
        ptnudge(
            "clinics",
            "add",
            "--slug",
            "back-clinic",
            "--name",
            "Back",
            "--phone",
            "+13125550199",
            "--timezone",
            "America/Chicago",
            "--email",
            "frontdesk@back.example",
        ),
        ptnudge("patients", "import", str(export), "--clinic", "back-clinic", "--json"),
    ]

    for step in steps:
        assert step.returncode == 0, step.stderr
    assert json.loads(steps[-1].stdout)["added"] == 2
    listed = json.loads(ptnudge("patients", "list", "--json").stdout)
    assert [p["phone"] for p in listed] == ["+13125550100", "+13125550101"]
