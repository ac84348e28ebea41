"""The opt-out ledger, keyed by channel and address, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.enrollment import optouts
from service.models import Channel, ChannelChoice, OptOut
from tests.factories import make_clinic, make_patient


def test_a_text_opt_out_of_an_address_that_reads_like_an_email_leaves_the_email_alone(
    session: Session,
) -> None:
    make_patient(session, make_clinic(session), email="ana@example.com", channel=ChannelChoice.BOTH)

    optouts.opt_out(
        session=session,
        address="Ana@Example.com",
        channel=Channel.SMS,
        source="sms_keyword",
        actor="patient_sms",
    )

    assert optouts.is_opted_out(session=session, address="ana@example.com", channel=Channel.SMS)
    assert not optouts.is_opted_out(
        session=session, address="ana@example.com", channel=Channel.EMAIL
    )


def test_one_address_can_be_on_the_ledger_for_both_channels(session: Session) -> None:
    for channel in Channel:
        optouts.opt_out(
            session=session, address="ana@example.com", channel=channel, source="x", actor="t"
        )
    session.flush()

    rows = session.execute(select(OptOut.channel, OptOut.address)).tuples().all()
    assert sorted(rows) == [(Channel.EMAIL, "ana@example.com"), (Channel.SMS, "ana@example.com")]


def test_opted_out_among_matches_channel_and_address_together(session: Session) -> None:
    optouts.opt_out(
        session=session, address="+13125550100", channel=Channel.SMS, source="x", actor="t"
    )
    session.flush()

    found = optouts.opted_out_among(
        session=session,
        addresses=[
            (Channel.SMS, "+13125550100"),
            (Channel.EMAIL, "+13125550100"),
            (Channel.SMS, None),
        ],
    )

    assert found == {(Channel.SMS, "+13125550100")}
