"""``make test`` on a fresh machine: ``.ci/prereqs`` installs Chromium through apt as root,
or says in one line what to install."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "prereqs"


def fake_command(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def prereqs(tmp_path: Path, *, uid: int, apt_get: str) -> subprocess.CompletedProcess[str]:
    """The script with ``id -u`` answering ``uid`` and Chromium looked for in tmp_path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake_command(bin_dir, "id", f"echo {uid}")
    env = os.environ | {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CHROMIUM": str(tmp_path / "chromium"),
        "APT_GET": apt_get,
    }
    return subprocess.run(
        [str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_nothing_happens_when_chromium_is_there(tmp_path: Path) -> None:
    fake_command(tmp_path, "chromium", "exit 0")

    result = prereqs(tmp_path, uid=1000, apt_get="/nonexistent/apt-get")

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_as_root_chromium_is_installed_through_apt_after_an_update(tmp_path: Path) -> None:
    log = tmp_path / "apt.log"
    chromium = tmp_path / "chromium"
    apt_get = fake_command(
        tmp_path,
        "apt-get",
        f'echo "$*" >> {log}\n'
        f'case "$*" in *install*) printf "#!/bin/sh\\n" > {chromium}; chmod +x {chromium};; esac',
    )

    result = prereqs(tmp_path, uid=0, apt_get=str(apt_get))

    assert result.returncode == 0, result.stderr
    assert log.read_text(encoding="utf-8").splitlines() == [
        "update -qq",
        "install -y -qq chromium",
    ]


def test_without_root_one_line_says_what_to_install(tmp_path: Path) -> None:
    apt_get = fake_command(tmp_path, "apt-get", "exit 99")

    result = prereqs(tmp_path, uid=1000, apt_get=str(apt_get))

    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "apt-get install -y chromium" in line
