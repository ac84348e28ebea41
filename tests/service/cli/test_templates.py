"""``ptnudge templates check``: the shipped templates pass; a broken copy fails with the file."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner, Result

import service.cli  # noqa: F401 - registers every command group on the root app
from service.cli.app import app
from templates import TEMPLATES_DIR


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["templates", "check", *args], env={"PTNUDGE_ENV": "test"})


def test_the_shipped_templates_pass_the_check() -> None:
    result = run()

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "templates ok"


def test_a_broken_template_is_named_and_exits_1(tmp_path: Path) -> None:
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    stretch = copy / "sms/en/stretch.1.txt"
    stretch.write_text(stretch.read_text("utf-8").replace("first_name", "frist_name"), "utf-8")

    result = run("--dir", str(copy))

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "sms/en/stretch.1.txt: line 1: 'frist_name' is undefined",
        "error: 1 template problem(s)",
    ]


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    result = run("--dir", str(tmp_path / "nope"))

    assert result.exit_code == 1
    assert "nope: no such folder" in result.stderr
