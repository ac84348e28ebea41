"""clinic alerts as rows; the opt-out ledger keyed by channel and address

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSENT = sa.text("status IN ('pending', 'sending')")


def upgrade() -> None:
    _create_clinic_alerts()
    _rekey_opt_outs(["channel", "address"])


def downgrade() -> None:
    # One address on both channels cannot survive the old key: the text entry goes (an
    # email address was never a phone number), the email opt-out stays.
    op.execute(
        "DELETE FROM opt_outs WHERE channel = 'sms' AND address IN "
        "(SELECT address FROM opt_outs WHERE channel = 'email')"
    )
    _rekey_opt_outs(["address"])
    with op.batch_alter_table("clinic_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_clinic_alerts_unsent")
    op.drop_table("clinic_alerts")


def _rekey_opt_outs(columns: list[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("opt_outs_pkey", "opt_outs", type_="primary")
        op.create_primary_key("opt_outs_pkey", "opt_outs", columns)
        return
    # SQLite cannot change a primary key in place: copy into a table with the new one.
    op.create_table(
        "_opt_outs_rekeyed",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column(
            "channel",
            sa.Enum("sms", "email", name="channel", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*columns),
    )
    op.execute(
        "INSERT INTO _opt_outs_rekeyed (address, channel, source, created_at) "
        "SELECT address, channel, source, created_at FROM opt_outs"
    )
    op.drop_table("opt_outs")
    op.rename_table("_opt_outs_rekeyed", "opt_outs")


def _create_clinic_alerts() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "clinic_alerts",
        sa.Column("id", big_id, nullable=False),
        sa.Column("inbound_id", big_id, nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sending",
                "sent",
                "failed",
                name="alert_status",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_id", sa.String(length=200), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["inbound_id"], ["inbound_messages.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("inbound_id", "patient_id", name="uq_clinic_alerts_inbound_patient"),
    )
    op.create_index(
        "ix_clinic_alerts_unsent",
        "clinic_alerts",
        ["status", "created_at"],
        unique=False,
        postgresql_where=UNSENT,
        sqlite_where=UNSENT,
    )
