"""Settings refuse what production must not run with, in one line that names the variable,
through every entry point: the ``ptnudge`` command, the web app and the worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import SettingsError, load_settings, secret_bits, secret_problem

BIN = Path(sys.executable).parent
# A deployment that production accepts; each test below spoils one variable of it. The
# database is a closed port: a command that gets past the settings fails there instead.
PRODUCTION = {
    "PTNUDGE_ENV": "production",
    "PTNUDGE_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/ptnudge",
    "PTNUDGE_BROKER_URL": "redis://127.0.0.1:1/0",
    "PTNUDGE_PUBLIC_URL": "https://reminders.example.org",
    "PTNUDGE_SECRET_KEY": "k3GvR9wXb2LmQ8tYz5NcH7pJd4SfA6eU",
    "TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
    "TWILIO_AUTH_TOKEN": "fedcba9876543210" * 2,
    "TWILIO_FROM_NUMBER": "+13125550100",
    "PTNUDGE_SMTP_URL": "smtp://mail.example.org:587?starttls=1",
    "PTNUDGE_EMAIL_FROM": "reminders@example.org",
}


def run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A process with exactly these settings (none inherited, no .env in its folder)."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PTNUDGE_", "TWILIO_", "PROMETHEUS_"))
    }
    return subprocess.run(
        command,
        env=inherited | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], variable: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert variable in lines[0]
    assert lines[0].startswith("error: settings: ")
    assert "settings: settings:" not in lines[0]
    return lines[0]


def test_the_complete_production_environment_gets_past_the_settings(tmp_path: Path) -> None:
    result = run([str(BIN / "ptnudge"), "status"], tmp_path, **PRODUCTION)

    # The settings are accepted; what stops it is the (deliberately closed) database.
    assert result.returncode == 1, result.stderr
    assert "database is unreachable" in result.stderr
    assert "settings" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PTNUDGE_SECRET_KEY", " " * 16),
        ("PTNUDGE_SECRET_KEY", "a" * 16),
        ("PTNUDGE_SECRET_KEY", "changemechangeme"),
        ("PTNUDGE_SECRET_KEY", "a" * 40),
        ("PTNUDGE_SECRET_KEY", "changemechangemechangemechangeme"),
        ("PTNUDGE_PUBLIC_URL", "http://reminders.example.org"),
        ("PTNUDGE_SMS_BACKEND", "console"),
        ("PTNUDGE_TICK_SECONDS", "abc"),
    ],
)
def test_ptnudge_refuses_a_bad_production_setting_in_one_line(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = run([str(BIN / "ptnudge"), "status"], tmp_path, **(PRODUCTION | {variable: value}))

    assert_one_line_error(result, variable)


def test_production_without_twilio_credentials_is_refused_as_console_sms(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in PRODUCTION.items() if not k.startswith("TWILIO_")}

    result = run([str(BIN / "ptnudge"), "status"], tmp_path, **env)

    assert_one_line_error(result, "PTNUDGE_SMS_BACKEND")


def test_production_without_an_smtp_server_is_refused_as_console_email(tmp_path: Path) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "PTNUDGE_SMTP_URL"}

    result = run([str(BIN / "ptnudge"), "status"], tmp_path, **env)

    assert_one_line_error(result, "PTNUDGE_SMTP_URL")


@pytest.mark.parametrize(
    "command",
    [
        ["uvicorn", "service.web:app", "--port", "0"],
        ["celery", "-A", "tasks.app", "worker", "--pool", "solo"],
        ["celery", "-A", "tasks.app", "beat"],
    ],
    ids=["web", "worker", "beat"],
)
def test_processes_refuse_a_bad_setting_in_one_line(tmp_path: Path, command: list[str]) -> None:
    result = run([str(BIN / command[0]), *command[1:]], tmp_path, PTNUDGE_TICK_SECONDS="abc")

    line = assert_one_line_error(result, "PTNUDGE_TICK_SECONDS")
    assert "valid number" in line


def test_a_secret_needs_length_and_variety() -> None:
    assert secret_problem(" " * 16) == "a placeholder"
    assert "16 characters" in (secret_problem("0123456789abcdef") or "")
    assert "variety" in (secret_problem("ab" * 20) or "")
    assert secret_problem("k3GvR9wXb2LmQ8tYz5NcH7pJd4SfA6eU") is None
    assert secret_bits("a" * 64) == 0
    assert secret_bits("ab" * 64) == pytest.approx(128)


def test_development_and_test_keep_their_convenient_defaults() -> None:
    for env in ("development", "test"):
        settings = load_settings(env=env, _env_file=None)

        assert settings.resolved_sms_backend == "console"
        assert settings.public_url == "http://localhost:8000"


def test_a_cross_field_refusal_reads_as_one_sentence_naming_its_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env="production", secret_key="changeme", _env_file=None)

    assert str(caught.value).startswith("PTNUDGE_SECRET_KEY is too weak for production")
