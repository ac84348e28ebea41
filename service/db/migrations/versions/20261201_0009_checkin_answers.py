"""weekly check-in answers: the days a week a patient says they did their exercises

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 23:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "checkin_answers",
        sa.Column("id", big_id, nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("reminder_id", big_id, nullable=True),
        sa.Column("inbound_id", big_id, nullable=True),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["reminder_id"], ["reminders.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["inbound_id"], ["inbound_messages.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reminder_id"),
    )
    op.create_index(
        "ix_checkin_patient", "checkin_answers", ["patient_id", "received_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_checkin_patient", table_name="checkin_answers")
    op.drop_table("checkin_answers")
