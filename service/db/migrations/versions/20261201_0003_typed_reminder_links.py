"""typed reminder links: reminders.snooze_of_id instead of reminders.context

A snoozed re-send pointed at its original reminder through ``context["snooze_of"]``; it now
has a foreign key. The kinds merged into a message (``context["merged_kinds"]``) are the
kinds of the rows whose ``merged_into_id`` names it, so they need no column of their own.
Downgrading writes both back into ``context``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00
"""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_FK = "fk_reminders_snooze_of"
_SNOOZE_OF = "snooze_of"
_MERGED_KINDS = "merged_kinds"
_reminders = sa.table(
    "reminders",
    sa.column("id", _ID),
    sa.column("plan_item_id", _ID),
    sa.column("kind", sa.String),
    sa.column("due_at", sa.DateTime(timezone=True)),
    sa.column("merged_into_id", _ID),
    sa.column("snooze_of_id", _ID),
    sa.column("context", sa.JSON),
)
_plan_items = sa.table("plan_items", sa.column("id", _ID), sa.column("position", sa.Integer))


def upgrade() -> None:
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("snooze_of_id", _ID, nullable=True))
        batch_op.create_foreign_key(_FK, "reminders", ["snooze_of_id"], ["id"], ondelete="SET NULL")
        batch_op.create_index("ix_reminders_snooze_of", ["snooze_of_id"], unique=False)
    _snooze_links_to_column()
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.drop_column("context")


def downgrade() -> None:
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("context", sa.JSON(), nullable=True))
    _links_to_context()
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.drop_index("ix_reminders_snooze_of")
        batch_op.drop_constraint(_FK, type_="foreignkey")
        batch_op.drop_column("snooze_of_id")


def _snooze_links_to_column() -> None:
    """``context["snooze_of"]`` becomes ``snooze_of_id`` where that reminder still exists."""
    bind = op.get_bind()
    found = bind.execute(
        sa.select(_reminders.c.id, _reminders.c.context).where(_reminders.c.context.is_not(None))
    )
    links: dict[int, int] = {}
    for reminder_id, context in found:
        original = context.get(_SNOOZE_OF) if isinstance(context, dict) else None
        if isinstance(original, int):
            links[reminder_id] = original
    existing = set(
        bind.scalars(sa.select(_reminders.c.id).where(_reminders.c.id.in_(set(links.values()))))
    )
    rows = [{"rid": rid, "original": o} for rid, o in links.items() if o in existing]
    if rows:
        bind.execute(
            _reminders.update()
            .where(_reminders.c.id == sa.bindparam("rid"))
            .values(snooze_of_id=sa.bindparam("original")),
            rows,
        )


def _links_to_context() -> None:
    """Write ``snooze_of`` and ``merged_kinds`` back into ``context``, as the code before this
    revision wrote them (merged kinds by due time, then plan order)."""
    bind = op.get_bind()
    contexts: dict[int, dict[str, Any]] = defaultdict(dict)
    snoozes = sa.select(_reminders.c.id, _reminders.c.snooze_of_id).where(
        _reminders.c.snooze_of_id.is_not(None)
    )
    for reminder_id, original in bind.execute(snoozes):
        contexts[reminder_id][_SNOOZE_OF] = original
    merged = (
        sa.select(_reminders.c.merged_into_id, _reminders.c.kind)
        .select_from(
            _reminders.outerjoin(_plan_items, _plan_items.c.id == _reminders.c.plan_item_id)
        )
        .where(_reminders.c.merged_into_id.is_not(None))
        .order_by(
            _reminders.c.merged_into_id,
            _reminders.c.due_at,
            sa.func.coalesce(_plan_items.c.position, 0),
            _reminders.c.id,
        )
    )
    for head_id, kind in bind.execute(merged):
        contexts[head_id].setdefault(_MERGED_KINDS, []).append(kind)
    if contexts:
        bind.execute(
            _reminders.update()
            .where(_reminders.c.id == sa.bindparam("rid"))
            .values(context=sa.bindparam("extra", type_=sa.JSON)),
            [{"rid": rid, "extra": extra} for rid, extra in contexts.items()],
        )
