"""Twilio's status callbacks, end to end: the fake provider POSTs signed callbacks (queued,
sent, delivered or undelivered) to the StatusCallback URL of each message, the web app runs
as ``uvicorn service.web:app`` in its own process and checks each signature with Twilio's
RequestValidator, and the reminders end ``delivered`` (or ``undelivered`` with the carrier's
code) in the database."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from service.models import ReminderStatus
from tests.integration.conftest import REPO_ROOT, Pipeline, free_port, wait_until
from tests.integration.test_pipeline import enroll_due_now, tick_and_enqueue
from tests.log_audit import LOG_DIR

pytestmark = pytest.mark.integration


def start_web(pipeline: Pipeline, port: int) -> subprocess.Popen[bytes]:
    """The production entry point, configured through the environment alone."""
    command = [
        sys.executable, "-m", "uvicorn", "service.web:app", "--host", "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (LOG_DIR / "web.log").open("ab") as log:
        web = subprocess.Popen(command, cwd=REPO_ROOT, env=pipeline.env, stdout=log, stderr=log)
    wait_until(lambda: _answers(web, f"http://127.0.0.1:{port}/healthz"), timeout=60, what="web")
    return web


def _answers(web: subprocess.Popen[bytes], url: str) -> bool:
    if web.poll() is not None:
        raise AssertionError(f"the web app exited early:\n{(LOG_DIR / 'web.log').read_text()}")
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_status_callbacks_from_the_provider_move_reminders_to_delivered_or_undelivered(
    pipeline: Pipeline,
) -> None:
    port = free_port()
    # The URL Twilio is told to call, and that the web app rebuilds to check signatures.
    pipeline.overrides["PTNUDGE_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    names = enroll_due_now(pipeline, 4)
    unreachable = sorted(names)[0]
    pipeline.twilio.undeliverable(unreachable, code=30003)
    pipeline.twilio.set_callbacks(send=True)
    web = start_web(pipeline, port)
    try:
        tick_and_enqueue(pipeline)
        pipeline.start_worker(concurrency=2)
        final = {ReminderStatus.DELIVERED, ReminderStatus.UNDELIVERED}
        wait_until(
            lambda: all(r.status in final for r in pipeline.reminders()),
            timeout=60,
            what="every reminder delivered or undelivered",
        )
    finally:
        web.terminate()
        web.wait(timeout=30)

    callbacks = pipeline.twilio.callbacks
    assert len(callbacks) == 4 * 3  # queued, sent, then delivered or undelivered
    assert {callback["status"] for callback in callbacks} == {200}  # every signature held
    messages = pipeline.twilio.messages
    assert sorted(message["to"] for message in messages) == sorted(names)  # one each
    by_phone = {r.to_address: r for r in pipeline.reminders()}
    assert {r.provider_id for r in by_phone.values()} == {m["sid"] for m in messages}
    assert by_phone[unreachable].status is ReminderStatus.UNDELIVERED
    assert by_phone[unreachable].error_code == "30003"
    delivered = [r for phone, r in by_phone.items() if phone != unreachable]
    assert [r.status for r in delivered] == [ReminderStatus.DELIVERED] * 3
