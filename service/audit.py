"""The audit trail: consent, opt-outs and every admin change, with who did it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.models import AuditEvent


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    clinic_id: int | None = None,
    patient_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one audit row to the caller's transaction (it commits with the change it explains)."""
    event = AuditEvent(
        actor=actor, action=action, clinic_id=clinic_id, patient_id=patient_id, detail=detail
    )
    session.add(event)
    return event
