"""What the worker runs for replies: the clinic alert after a warning-sign reply.

The web app publishes it (``tasks.publish``) after its transaction commits; the task takes the
inbound message's id, and retries only what may succeed later (the SMTP server busy or down,
the database unreachable). A permanent refusal is logged and dropped: retrying cannot fix it,
and the reply stays flagged for the clinic in the database.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import OperationalError

from service.db import transaction
from service.replies.alerts import send_clinic_alert
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
        with transaction(runtime.sessions) as session:
            send_clinic_alert(
                session=session,
                settings=runtime.settings,
                inbound_id=inbound_id,
                transport=runtime.email,
            )
    except TransportError as exc:
        if not exc.permanent:
            raise TransientError(str(exc)) from exc
        log.error("clinic alert for inbound %s refused for good: %s", inbound_id, exc.code)
