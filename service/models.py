"""The tables: clinics, patients and their plans, reminders, replies, opt-outs and the audit trail.

Reminder rows are the schedule's memory: one row per occurrence that was due (or sent), unique
per plan item, due time and channel, so no re-run of the dispatcher can create a second one.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
    and_,
    exists,
    or_,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, aliased, mapped_column, relationship

from service.db import Base

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key for reminders.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored by value as plain text (no native ENUM type): adding a value is a code change,
    # not a schema migration on PostgreSQL.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=False,
        length=20,
        values_callable=lambda members: [member.value for member in members],
    )


class Channel(enum.StrEnum):
    SMS = "sms"
    EMAIL = "email"


class ChannelChoice(enum.StrEnum):
    SMS = "sms"
    EMAIL = "email"
    BOTH = "both"

    def channels(self) -> tuple[Channel, ...]:
        if self is ChannelChoice.BOTH:
            return (Channel.SMS, Channel.EMAIL)
        return (Channel(self.value),)


class PatientStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    REMOVED = "removed"
    COMPLETED = "completed"  # the program reached its end date, or the patient was discharged

    @property
    def ended(self) -> bool:
        """Nothing more is sent; enrolling the same phone and name again re-activates."""
        return self in {PatientStatus.REMOVED, PatientStatus.COMPLETED}


class ReminderStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # a one-off for later (snooze); the dispatcher queues it when due
    QUEUED = "queued"  # committed and handed to the broker
    SENDING = "sending"  # claimed by one worker; the provider may or may not have it
    SENT = "sent"  # the provider accepted it
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    EXPIRED = "expired"  # due while the system was down: never sent late
    CANCELED = "canceled"  # opted out, paused or removed before it left
    MERGED = "merged"  # folded into another message to the same patient
    UNKNOWN = "unknown"  # a worker died mid-send and the provider cannot tell us

    @property
    def rank(self) -> int:
        """Statuses only move forward; a callback that would lower the rank is ignored."""
        return _RANK[self]

    @property
    def terminal(self) -> bool:
        return self not in {
            ReminderStatus.SCHEDULED,
            ReminderStatus.QUEUED,
            ReminderStatus.SENDING,
            ReminderStatus.SENT,
        }


_RANK = {
    ReminderStatus.SCHEDULED: 0,
    ReminderStatus.QUEUED: 1,
    ReminderStatus.SENDING: 2,
    ReminderStatus.SENT: 3,
    ReminderStatus.UNKNOWN: 3,
    ReminderStatus.DELIVERED: 4,
    ReminderStatus.UNDELIVERED: 4,
    ReminderStatus.FAILED: 4,
    ReminderStatus.EXPIRED: 4,
    ReminderStatus.CANCELED: 4,
    ReminderStatus.MERGED: 4,
}

OPEN_STATUSES = (ReminderStatus.SCHEDULED, ReminderStatus.QUEUED, ReminderStatus.SENDING)
# What a pause, a removal or an opt-out cancels: messages still waiting to leave. "sending" is
# left alone: the provider may have it already, and the send task checks again after claiming.
CANCELABLE_STATUSES = (ReminderStatus.SCHEDULED, ReminderStatus.QUEUED)
DELIVERED_STATUSES = (ReminderStatus.SENT, ReminderStatus.DELIVERED)


class Outcome(enum.StrEnum):
    DONE = "done"
    SKIPPED = "skipped"


class Clinic(Base):
    __tablename__ = "clinics"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(320))
    timezone: Mapped[str] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(2))  # default region for patients' numbers
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    patients: Mapped[list[Patient]] = relationship(back_populates="clinic")


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (
        # Enrollment is idempotent on clinic + phone + first name, whatever its case: a CSV
        # imported twice adds nobody, and family members may share one phone.
        Index(
            "uq_patients_clinic_phone_name",
            "clinic_id",
            "phone",
            text("lower(first_name)"),
            unique=True,
        ),
        Index("ix_patients_phone", "phone"),
        Index("ix_patients_email", "email"),
        # The tick's "whose program changes now" probe: only patients with a phase or an end
        # ahead are in it.
        Index(
            "ix_patients_plan_changes",
            "plan_changes_at",
            postgresql_where=text("plan_changes_at IS NOT NULL"),
            sqlite_where=text("plan_changes_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id", ondelete="CASCADE"))
    first_name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(320))
    timezone: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(10), default="en")
    channel: Mapped[ChannelChoice] = mapped_column(_enum(ChannelChoice, "channel_choice"))
    wake_start: Mapped[dt.time] = mapped_column(Time())
    wake_end: Mapped[dt.time] = mapped_column(Time())
    program_id: Mapped[str] = mapped_column(String(64))
    start_date: Mapped[dt.date] = mapped_column(Date())
    end_date: Mapped[dt.date | None] = mapped_column(Date())  # last local day; None: open
    phase: Mapped[int | None] = mapped_column(Integer)  # 0-based, in a progression only
    # When the plan next changes by itself (a phase begins, the program ends): local midnight.
    plan_changes_at: Mapped[dt.datetime | None] = mapped_column()
    # The clinic's per-patient tuning, kept so that a new phase or an edit applies it again.
    tunings: Mapped[list[str] | None] = mapped_column(JSON)
    tuned_max_per_day: Mapped[int | None] = mapped_column(Integer)  # None: the program's
    max_per_day: Mapped[int] = mapped_column(Integer)
    status: Mapped[PatientStatus] = mapped_column(
        _enum(PatientStatus, "patient_status"), default=PatientStatus.ACTIVE
    )
    paused_until: Mapped[dt.date | None] = mapped_column(Date())  # None while paused: open-ended
    phone_invalid_code: Mapped[str | None] = mapped_column(String(20))
    consent_at: Mapped[dt.datetime | None] = mapped_column()
    consent_method: Mapped[str | None] = mapped_column(String(60))
    consent_recorded_by: Mapped[str | None] = mapped_column(String(100))
    last_reply_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    clinic: Mapped[Clinic] = relationship(back_populates="patients")
    plan_items: Mapped[list[PlanItem]] = relationship(
        back_populates="patient", cascade="all, delete-orphan", order_by="PlanItem.position"
    )


class PlanItem(Base):
    """One line of a patient's program, as tuned for them, and when it is next due."""

    __tablename__ = "plan_items"
    __table_args__ = (
        # The dispatcher's only query: "due now". Partial, so it stays as small as the set of
        # items with a future occurrence, and an idle tick reads one index page.
        Index(
            "ix_plan_items_next_due",
            "next_due_at",
            postgresql_where=text("next_due_at IS NOT NULL"),
            sqlite_where=text("next_due_at IS NOT NULL"),
        ),
        Index("ix_plan_items_patient", "patient_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(40))
    every_minutes: Mapped[int | None] = mapped_column(Integer)
    at_times: Mapped[list[str] | None] = mapped_column(JSON)  # ["09:00", "13:00"]
    days: Mapped[list[str] | None] = mapped_column(JSON)  # ["mon", "wed"]; None: every day
    next_due_at: Mapped[dt.datetime | None] = mapped_column()
    last_due_at: Mapped[dt.datetime | None] = mapped_column()

    patient: Mapped[Patient] = relationship(back_populates="plan_items")


class Reminder(Base):
    """One message to one patient on one channel: an occurrence of a plan item, or a system
    message (welcome, confirmations) with no plan item."""

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("plan_item_id", "due_at", "channel", name="uq_reminders_occurrence"),
        # The sweeper looks only at unfinished rows; the partial index keeps that cheap however
        # many finished reminders pile up.
        Index(
            "ix_reminders_open",
            "status",
            "queued_at",
            postgresql_where=text("status IN ('scheduled', 'queued', 'sending')"),
            sqlite_where=text("status IN ('scheduled', 'queued', 'sending')"),
        ),
        Index("ix_reminders_patient_due", "patient_id", "due_at"),
        Index("ix_reminders_provider_id", "provider_id"),
        # Deleting a reminder nulls the rows merged into it: without this index every
        # delete scans the table.
        Index("ix_reminders_merged_into", "merged_into_id"),
        # The same for the snoozed re-sends that point at a reminder.
        Index("ix_reminders_snooze_of", "snooze_of_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    plan_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("plan_items.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(40))
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    actionable: Mapped[bool] = mapped_column(Boolean, default=True)
    due_at: Mapped[dt.datetime] = mapped_column()
    status: Mapped[ReminderStatus] = mapped_column(_enum(ReminderStatus, "reminder_status"))
    status_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[dt.datetime | None] = mapped_column()
    claimed_at: Mapped[dt.datetime | None] = mapped_column()
    sent_at: Mapped[dt.datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    to_address: Mapped[str | None] = mapped_column(String(320))
    body_digest: Mapped[str | None] = mapped_column(String(64))  # matches provider records
    provider_id: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(20))
    error_detail: Mapped[str | None] = mapped_column(String(300))
    merged_into_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("reminders.id", ondelete="SET NULL")
    )
    # A snoozed re-send (LATER) points at the reminder it stands for: an answer to either
    # answers both.
    snooze_of_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("reminders.id", ondelete="SET NULL", name="fk_reminders_snooze_of")
    )
    outcome: Mapped[Outcome | None] = mapped_column(_enum(Outcome, "outcome"))
    outcome_at: Mapped[dt.datetime | None] = mapped_column()

    patient: Mapped[Patient] = relationship()
    plan_item: Mapped[PlanItem | None] = relationship()


class OptOut(Base):
    """Addresses that asked for nothing more on one channel: checked at the moment of every
    send. Keyed by channel first: a text STOP never opts out an email address."""

    __tablename__ = "opt_outs"

    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"), primary_key=True)
    address: Mapped[str] = mapped_column(String(320), primary_key=True)  # E.164 or lower email
    source: Mapped[str] = mapped_column(String(40))  # sms_keyword, provider_21610, email_link…
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class InboundMessage(Base):
    """A reply from a patient (or anyone), kept for the clinic."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index("ix_inbound_patient", "patient_id", "received_at"),
        # The staff inbox: a clinic's replies that need a person, newest first.
        Index("ix_inbound_attention", "clinic_id", "needs_attention", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # MessageSid
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    from_address: Mapped[str] = mapped_column(String(320))
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id", ondelete="CASCADE"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    reminder_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("reminders.id", ondelete="SET NULL")
    )
    body: Mapped[str] = mapped_column(Text)
    command: Mapped[str] = mapped_column(String(30))
    needs_attention: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Staff close a reply that needed them (``ptnudge replies ack``); who and when are kept.
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    acknowledged_by: Mapped[str | None] = mapped_column(String(120), default=None)
    ack_note: Mapped[str | None] = mapped_column(Text, default=None)

    @hybrid_property
    def open(self) -> bool:
        """Waiting for a person at the clinic: it needed one and nobody has closed it (in a
        query too: ``where(InboundMessage.open)``)."""
        return self.needs_attention and self.acknowledged_at is None

    @open.inplace.expression
    @classmethod
    def _open_expression(cls) -> ColumnElement[bool]:
        return and_(cls.needs_attention.is_(True), cls.acknowledged_at.is_(None))


class AlertStatus(enum.StrEnum):
    PENDING = "pending"  # written with the warning-sign reply; nobody has taken it yet
    SENDING = "sending"  # claimed by one worker; the mail server may or may not have it
    SENT = "sent"
    FAILED = "failed"  # refused for good (a bad address): staff must look


class ClinicAlert(Base):
    """One email to a clinic about a warning-sign reply, naming every patient of that clinic
    on the number (``patient_id``: the one the reply was read for); written in the reply's
    own transaction so that no broker outage or worker crash can lose it."""

    __tablename__ = "clinic_alerts"
    __table_args__ = (
        # A phone shared across clinics alerts each clinic once, about its own patients.
        UniqueConstraint("inbound_id", "clinic_id", name="uq_clinic_alerts_inbound_clinic"),
        # The sweeper's query: what is still unsent.
        Index(
            "ix_clinic_alerts_unsent",
            "status",
            "created_at",
            postgresql_where=text("status IN ('pending', 'sending')"),
            sqlite_where=text("status IN ('pending', 'sending')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inbound_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("inbound_messages.id", ondelete="CASCADE")
    )
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id", ondelete="CASCADE"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    to_address: Mapped[str] = mapped_column(String(320))
    status: Mapped[AlertStatus] = mapped_column(
        _enum(AlertStatus, "alert_status"), default=AlertStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    provider_id: Mapped[str | None] = mapped_column(String(200), default=None)
    last_error: Mapped[str | None] = mapped_column(String(300), default=None)

    inbound: Mapped[InboundMessage] = relationship()
    patient: Mapped[Patient] = relationship()
    clinic: Mapped[Clinic] = relationship()


class PainScore(Base):
    __tablename__ = "pain_scores"
    __table_args__ = (Index("ix_pain_patient", "patient_id", "recorded_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    score: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CheckinAnswer(Base):
    """A patient's answer to a weekly check-in: on how many days of the week (0-7) they did
    their exercises, as they tell it, beside the DONE replies. One answer per question."""

    __tablename__ = "checkin_answers"
    __table_args__ = (Index("ix_checkin_patient", "patient_id", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    reminder_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("reminders.id", ondelete="SET NULL"), unique=True
    )
    inbound_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("inbound_messages.id", ondelete="SET NULL")
    )
    days: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Consent, opt-outs and every admin change: who, what, when."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_patient", "patient_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id", ondelete="CASCADE"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


def went_out() -> ColumnElement[bool]:
    """The one definition of "this reminder reached the patient", for adherence and every
    report: it was sent or delivered, or it was merged into a message that was (a combined
    SMS names every kind in it, so each kind in it went out)."""
    head = aliased(Reminder)
    carried = exists().where(
        head.id == Reminder.merged_into_id, head.status.in_(DELIVERED_STATUSES)
    )
    return or_(
        Reminder.status.in_(DELIVERED_STATUSES),
        and_(Reminder.status == ReminderStatus.MERGED, carried),
    )
