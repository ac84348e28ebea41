"""What a patient will get: the reminders that would go out, when, and in which words.

The same rules as the dispatcher and the send task: the scheduler's occurrences, reminders
close together merged into one message, one message per channel still open to the patient;
a progression's later phases from their first day, nothing after the program's end date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from config.settings import Settings
from service.delivery.dispatch import channels_for
from service.delivery.messages import compose, group_close
from service.enrollment.optouts import opted_out_among
from service.enrollment.plans import patient_program, program_occurrences, schedule_for
from service.enrollment.programs import Program, ProgramError
from service.models import Channel, Patient


@dataclass(frozen=True)
class PreviewEntry:
    kind: str  # the reminder kind, or "combined" for merged reminders
    kinds: tuple[str, ...]
    due_at: dt.datetime  # UTC
    local_time: dt.datetime  # in the patient's zone
    channel: Channel
    text: str

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "kinds": list(self.kinds),
            "due_at": self.due_at.isoformat(),
            "local_time": self.local_time.isoformat(),
            "channel": self.channel.value,
            "text": self.text,
        }


def preview(
    *,
    session: Session,
    settings: Settings,
    patient: Patient,
    start: dt.datetime,
    days: int,
) -> list[PreviewEntry]:
    if schedule_for(patient) is None:
        return []
    found = program_occurrences(
        patient=patient,
        program=_program(patient, settings),
        start=start,
        end=start + dt.timedelta(days=days),
    )
    opted_out = opted_out_among(session=session, addresses=(patient.phone, patient.email))
    channels = [channel for channel, _ in channels_for(patient, opted_out)]
    zone = ZoneInfo(patient.timezone)
    entries = []
    for group in group_close(found, gap=dt.timedelta(minutes=settings.min_gap_minutes)):
        kinds = tuple(dict.fromkeys(occ.kind for occ in group))
        head = group[0]
        for channel in channels:
            composition = compose(
                settings=settings,
                patient=patient,
                clinic=patient.clinic,
                kinds=kinds,
                channel=channel,
                seed=head.item_id * 7919 + int(head.due_at.timestamp()) // 60,
            )
            entries.append(
                PreviewEntry(
                    kind=kinds[0] if len(kinds) == 1 else "combined",
                    kinds=kinds,
                    due_at=head.due_at,
                    local_time=head.due_at.astimezone(zone),
                    channel=channel,
                    text=composition.body,
                )
            )
    return entries


def _program(patient: Patient, settings: Settings) -> Program | None:
    # Without the program file (deleted since), the current plan is shown to the end date.
    try:
        return patient_program(patient, settings.programs_dir)
    except ProgramError:
        return None
