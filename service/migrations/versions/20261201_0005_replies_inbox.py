"""replies inbox: who closed a reply that needed the clinic, and when

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-01 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("acknowledged_by", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("ack_note", sa.Text(), nullable=True))
        batch_op.create_index(
            "ix_inbound_attention", ["clinic_id", "needs_attention", "received_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_attention")
        batch_op.drop_column("ack_note")
        batch_op.drop_column("acknowledged_by")
        batch_op.drop_column("acknowledged_at")
