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
from service.delivery.dispatch import channels_for, channels_for_kind
from service.delivery.links import UrlBuilder
from service.delivery.messages import compose
from service.enrollment.optouts import opted_out_among, opted_out_channels, patient_addresses
from service.enrollment.plans import patient_program, program_occurrences, schedule_for
from service.enrollment.programs import Program, ProgramError
from service.enrollment.scheduling import group_close
from service.models import Channel, Patient, PatientStatus


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
    urls: UrlBuilder,
    patient: Patient,
    start: dt.datetime,
    days: int,
) -> list[PreviewEntry]:
    gap = dt.timedelta(minutes=settings.min_gap_minutes)
    if schedule_for(patient, min_gap=gap) is None:
        return []
    found = program_occurrences(
        patient=patient,
        program=_program(patient, settings),
        start=start,
        end=start + dt.timedelta(days=days),
        min_gap=gap,
    )
    opted_out = opted_out_among(session=session, addresses=patient_addresses(patient))
    channels = channels_for(patient, opted_out)
    zone = ZoneInfo(patient.timezone)
    entries = []
    for group in group_close(found, gap=gap):
        kinds = tuple(dict.fromkeys(occ.kind for occ in group))
        head = group[0]
        for channel, _ in channels_for_kind(kinds[0], channels):
            composition = compose(
                settings=settings,
                patient=patient,
                clinic=patient.clinic,
                kinds=kinds,
                channel=channel,
                seed=head.item_id * 7919 + int(head.due_at.timestamp()) // 60,
                urls=urls,
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


def silence_reasons(*, session: Session, patient: Patient) -> list[str]:
    """Why some or all of the patient's reminders would not go out, in words for staff."""
    if patient.status.ended:
        return [f"the patient is {patient.status.value}: nothing goes out"]
    reasons = []
    if patient.status is PatientStatus.PAUSED and patient.paused_until is None:
        reasons.append(
            f"paused until the clinic resumes them (ptnudge patients resume {patient.id})"
        )
    for channel in opted_out_channels(session=session, patient=patient):
        reasons.append(_opted_out_reason(patient, channel))
    if patient.phone_invalid_code and Channel.SMS in patient.channel.channels():
        reasons.append(f"sms: the provider refused the number (error {patient.phone_invalid_code})")
    if not patient.plan_items:
        reasons.append("the program has no reminders to schedule")
    return reasons


def _opted_out_reason(patient: Patient, channel: Channel) -> str:
    address = patient.phone if channel is Channel.SMS else patient.email
    lift = "texts START" if channel is Channel.SMS else "asks to be emailed again"
    return (
        f"{channel.value}: {address} is on the opt-out ledger (it asked for no more messages); "
        f"nothing goes out by {channel.value} until the patient {lift}"
    )


def _program(patient: Patient, settings: Settings) -> Program | None:
    # Without the program file (deleted since), the current plan is shown to the end date.
    try:
        return patient_program(patient, settings.programs_dir)
    except ProgramError:
        return None
