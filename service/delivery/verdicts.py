"""What a provider's verdict on a message means for the patient: shared by the send task and
the status callback, so an error code has one meaning wherever it arrives."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from service import audit
from service.enrollment import optouts
from service.models import Channel, Reminder, ReminderStatus

OPTED_OUT_CODE = "21610"
# The number itself is wrong for SMS: sending again cannot succeed until the clinic fixes it.
INVALID_NUMBER_CODES = frozenset({"21211", "21614", "21408", "21612", "21421"})


def apply_provider_error(
    *, session: Session, reminder: Reminder, code: str | None, now: dt.datetime
) -> None:
    """Act on a permanent error: 21610 opts the number out (Twilio will refuse it from now
    on), an invalid-number code marks the patient's phone so the clinic sees it."""
    if reminder.channel is not Channel.SMS or not reminder.to_address or code is None:
        return
    if code == OPTED_OUT_CODE:
        optouts.opt_out(
            session=session,
            address=reminder.to_address,
            channel=Channel.SMS,
            source="provider_21610",
            actor="twilio",
            now=now,
        )
    elif code in INVALID_NUMBER_CODES:
        patient = reminder.patient
        if patient.phone_invalid_code != code:
            patient.phone_invalid_code = code
            audit.record(
                session=session,
                actor="twilio",
                action="phone_invalid",
                clinic_id=patient.clinic_id,
                patient_id=patient.id,
                detail={"code": code, "reminder_id": reminder.id},
            )


def advance_status(*, reminder: Reminder, status: ReminderStatus, now: dt.datetime) -> bool:
    """Move a reminder's status forward only: callbacks arrive out of order, and a late
    "sent" must not undo "delivered". Returns whether anything changed."""
    if status.rank <= reminder.status.rank:
        return False
    reminder.status = status
    reminder.status_at = now
    return True
