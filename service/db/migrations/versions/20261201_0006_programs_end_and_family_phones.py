"""programs that end and progress; family members share a phone

Patients get an end date, a phase (in a progression), the instant their plan next changes
by itself, and the tuning they were enrolled with. The unique key on clinic + phone becomes
clinic + phone + first name (any case), so two family members may share one phone.

Downgrading fails while two patients of one clinic share a phone: the old key cannot hold
them; remove one of them first.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FAMILY_KEY = "uq_patients_clinic_phone_name"
_CHANGES = "ix_patients_plan_changes"


def upgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("end_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("phase", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("plan_changes_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("tunings", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("tuned_max_per_day", sa.Integer(), nullable=True))
        batch_op.drop_constraint("uq_patients_clinic_phone", type_="unique")
    # Outside the batch: SQLite's table copy would not carry an expression index over.
    op.create_index(
        _FAMILY_KEY,
        "patients",
        ["clinic_id", "phone", sa.text("lower(first_name)")],
        unique=True,
    )
    op.create_index(
        _CHANGES,
        "patients",
        ["plan_changes_at"],
        postgresql_where=sa.text("plan_changes_at IS NOT NULL"),
        sqlite_where=sa.text("plan_changes_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(_CHANGES, table_name="patients")
    op.drop_index(_FAMILY_KEY, table_name="patients")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_patients_clinic_phone", ["clinic_id", "phone"])
        batch_op.drop_column("tuned_max_per_day")
        batch_op.drop_column("tunings")
        batch_op.drop_column("plan_changes_at")
        batch_op.drop_column("phase")
        batch_op.drop_column("end_date")
