"""A check on the whole test run: its logs hold no full phone number and no message body.

Every record logged in the test process (INFO and up, DEBUG where a test asks for it) is
written to a file, as are the logs of the worker and beat processes the integration tests
start. At the end of the run each file is scanned; a finding fails the run with the line.
With pytest-xdist (``make test`` runs with ``-n``) every worker writes to the same folder,
which the controller names in ``PYTEST_PTNUDGE_LOG_DIR`` before it starts them, and the
controller scans it once all of them are done.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

# A full number as we store it (+13125550100) or as a URL carries it (%2B13125550100).
FULL_NUMBER = re.compile(r"(?<![\w*])(?:\+|%2B)\d{10,15}(?!\w)")
# Every reminder body ends with its reply instruction; system messages name HELP and STOP.
BODY_MARKERS = ("Reply DONE", "Responde LISTO", "Reply HELP for help")

# One folder per test run: runs side by side never read or delete each other's logs. An
# xdist worker is given its controller's folder.
SHARED_DIR = "PYTEST_PTNUDGE_LOG_DIR"
RUN_DIR = Path(
    os.environ.get(SHARED_DIR) or Path(tempfile.gettempdir()) / f"ptnudge-test-logs-{os.getpid()}"
)
# This test process's own files (workers, beat, web app started by its tests): test processes
# side by side never write into each other's ``beat.log``.
LOG_DIR = RUN_DIR / f"process-{os.getpid()}"
_state: dict[str, Path] = {}


def findings(path: Path) -> list[str]:
    found = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if FULL_NUMBER.search(line) or any(marker in line for marker in BODY_MARKERS):
            found.append(f"{path.name}:{number}: {line[:200]}")
    return found


def pytest_configure(config: pytest.Config) -> None:
    folder = RUN_DIR
    folder.mkdir(parents=True, exist_ok=True)
    worker = getattr(config, "workerinput", {}).get("workerid")
    path = folder / (f"test-process-{worker}.log" if worker else "test-process.log")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    if worker is None:  # the controller (or a run without xdist) scans, after every worker
        os.environ[SHARED_DIR] = str(folder)
        _state["folder"] = folder


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    folder = _state.get("folder")
    if folder is None:
        return
    problems = [line for path in sorted(folder.rglob("*.log")) for line in findings(path)]
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = "logs hold phone numbers or message bodies:\n" + "\n".join(problems[:20])
        if reporter is not None:
            reporter.write_line(text, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif exitstatus == 0:
        shutil.rmtree(folder, ignore_errors=True)  # kept after a failure, for its logs
