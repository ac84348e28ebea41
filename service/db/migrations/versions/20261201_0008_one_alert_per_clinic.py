"""one clinic alert per reply and clinic, however many of its patients share the phone

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:30:00
"""

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Alerts written before: one per patient. Keep the first of each reply and clinic (the
    # patient the reply was read for); the audit trail keeps what was sent.
    op.execute(
        "DELETE FROM clinic_alerts WHERE id NOT IN "
        "(SELECT MIN(id) FROM clinic_alerts GROUP BY inbound_id, clinic_id)"
    )
    with _alter_clinic_alerts() as batch_op:
        batch_op.drop_constraint("uq_clinic_alerts_inbound_patient", type_="unique")
        batch_op.create_unique_constraint(
            "uq_clinic_alerts_inbound_clinic", ["inbound_id", "clinic_id"]
        )


def downgrade() -> None:
    with _alter_clinic_alerts() as batch_op:
        batch_op.drop_constraint("uq_clinic_alerts_inbound_clinic", type_="unique")
        batch_op.create_unique_constraint(
            "uq_clinic_alerts_inbound_patient", ["inbound_id", "patient_id"]
        )


@contextmanager
def _alter_clinic_alerts() -> Iterator[BatchOperations]:
    # On SQLite the table is copied, which reflects the tables it refers to: the patients'
    # expression index (clinic, phone, lower(first_name)) cannot be reflected and is not
    # needed to copy clinic_alerts, so that one warning is expected.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "Skipped unsupported reflection of expression-based index", sa.exc.SAWarning
        )
        with op.batch_alter_table("clinic_alerts", schema=None) as batch_op:
            yield batch_op
