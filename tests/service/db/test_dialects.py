"""What differs between the databases gives the same result on both: skipping stored rows,
local dates, claims that never take the same row, and commits that need not wait."""

from __future__ import annotations

import datetime as dt
import sqlite3

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import UTCDateTime, transaction
from service.db.dialects import (
    among,
    commit_without_waiting_for_disk,
    for_update_skip_locked,
    insert_ignoring_duplicates,
    local_date,
)
from service.models import Channel, OptOut
from tests.conftest import Database

NOW = dt.datetime(2026, 11, 25, 5, 30, tzinfo=dt.UTC)


def opt_out_row(address: str, source: str = "test") -> dict[str, object]:
    return {"address": address, "channel": Channel.SMS, "source": source, "created_at": NOW}


def test_insert_ignoring_duplicates_keeps_the_stored_row_and_returns_only_new_ones(
    session: Session,
) -> None:
    session.add(OptOut(**opt_out_row("+13125550100", source="sms_keyword")))
    session.flush()
    statement = insert_ignoring_duplicates(
        OptOut, session=session, unique=("channel", "address")
    ).returning(OptOut.address)

    inserted = session.scalars(
        statement, [opt_out_row("+13125550100"), opt_out_row("+13125550101")]
    ).all()

    assert inserted == ["+13125550101"]
    assert (
        session.scalar(select(OptOut.source).where(OptOut.address == "+13125550100"))
        == "sms_keyword"
    )


def test_among_finds_the_rows_whose_column_is_one_of_many_values(session: Session) -> None:
    addresses = [f"+1312555{n:04d}" for n in range(1200)]
    session.execute(sa.insert(OptOut), [opt_out_row(a) for a in addresses[::3]])
    # More values than one short statement holds, and some that match nothing.
    wanted = set(addresses[:900])

    found = session.scalars(
        select(OptOut.address).where(among(OptOut.address, wanted, session=session))
    )

    assert sorted(found) == addresses[:900:3]


def test_local_date_is_the_date_in_the_given_zone(session: Session) -> None:
    moment = sa.literal(NOW, UTCDateTime())
    chicago = local_date(moment, sa.literal("America/Chicago"), session=session)
    tokyo = local_date(moment, sa.literal("Asia/Tokyo"), session=session)

    found = session.execute(select(chicago, tokyo)).one()

    assert tuple(found) == (dt.date(2026, 11, 24), dt.date(2026, 11, 25))


def test_a_claim_never_takes_a_row_another_claim_holds(committed_db: Database) -> None:
    with transaction(committed_db.sessions) as session:
        session.add_all(
            [OptOut(**opt_out_row("+13125550100")), OptOut(**opt_out_row("+13125550101"))]
        )
    claim = select(OptOut.address).order_by(OptOut.address)
    with transaction(committed_db.sessions) as first:
        held = first.scalars(for_update_skip_locked(claim.limit(1), session=first)).all()
        assert held == ["+13125550100"]
        if committed_db.backend == "postgresql":
            # The second claimer passes over the held row instead of waiting for it.
            with transaction(committed_db.sessions) as second:
                # Were the held row waited for, this fails instead of hanging.
                second.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
                taken = second.scalars(for_update_skip_locked(claim, session=second)).all()
            assert taken == ["+13125550101"]
        else:
            # SQLite: the first claim's transaction holds the write lock, so a second
            # claimer cannot even begin until it commits.
            path = sa.make_url(committed_db.url).database or ""
            other = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                error = None
                try:
                    other.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    error = exc
                assert error is not None
                assert "locked" in str(error)
            finally:
                other.close()


def test_a_commit_without_waiting_for_disk_applies_to_its_own_transaction_only(
    committed_db: Database,
) -> None:
    setting = (
        "SHOW synchronous_commit" if committed_db.backend == "postgresql" else "PRAGMA synchronous"
    )
    with transaction(committed_db.sessions) as session:
        before = session.execute(sa.text(setting)).scalar()
        commit_without_waiting_for_disk(session)
        during = session.execute(sa.text(setting)).scalar()
        session.add(OptOut(**opt_out_row("+13125550100")))
    with transaction(committed_db.sessions) as session:
        after = session.execute(sa.text(setting)).scalar()
        stored = session.scalars(select(OptOut.address)).all()

    if committed_db.backend == "postgresql":
        assert (before, during, after) == ("on", "off", "on")
    else:
        assert before == during == after  # SQLite commits as it always does
    assert stored == ["+13125550100"]
