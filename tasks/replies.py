"""What the worker runs for replies: the clinic alert after a warning-sign reply.

The web app publishes it (``tasks.publish``) after its transaction commits; the task takes the
inbound message's id, and retries only what may succeed later (the SMTP server busy or down,
the database unreachable). A permanent refusal marks the alert failed: retrying cannot fix it,
and the reply stays flagged for the clinic in the database. Whatever this task never gets
to (a broker outage, a crash) the sweeper sends (``service.replies.alerts.send_unsent``).
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import OperationalError

from service.replies.alerts import send_alerts
from service.transports.base import TransportError
from tasks.app import app
from tasks.runtime import get_runtime

log = logging.getLogger(__name__)


class TransientError(Exception):
    """Sending failed in a way that may succeed on a later try."""


@app.task(
    name="ptnudge.clinic_alert",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(TransientError, OperationalError),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def send_clinic_alert_task(inbound_id: int) -> None:
    runtime = get_runtime(app)
    try:
        send_alerts(sessions=runtime.sessions, transport=runtime.email, inbound_id=inbound_id)
    except TransportError as exc:
        if not exc.permanent:
            raise TransientError(str(exc)) from exc
        log.error("clinic alert for inbound %s refused for good: %s", inbound_id, exc.code)
