"""Phone numbers and addresses are shortened before they reach a log or a screen."""

from __future__ import annotations

import logging

import pytest

from service.masking import (
    PhoneRedactingFilter,
    mask_email,
    mask_phone,
    mask_recipient,
    redact_phone_numbers,
)


@pytest.mark.parametrize(
    ("phone", "masked"),
    [("+13125550100", "***0100"), ("(312) 555-0100", "***0100"), ("5550", "***"), ("", "***")],
)
def test_mask_phone_keeps_only_the_last_four_digits(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


@pytest.mark.parametrize(
    ("address", "masked"),
    [("ana.lopez@example.com", "a***@example.com"), ("not-an-address", "***"), ("@x.org", "***")],
)
def test_mask_email_keeps_the_first_letter_and_the_domain(address: str, masked: str) -> None:
    assert mask_email(address) == masked


def test_mask_recipient_tells_addresses_from_numbers() -> None:
    assert mask_recipient("ana@example.com") == "a***@example.com"
    assert mask_recipient("+13125550100") == "***0100"


def test_redaction_masks_numbers_in_urls_but_not_ids() -> None:
    line = "GET /Accounts/AC0123456789abcdef/Messages.json?To=%2B13125550100&PageSize=100"

    assert redact_phone_numbers(line) == (
        "GET /Accounts/AC0123456789abcdef/Messages.json?To=***0100&PageSize=100"
    )


def test_redacting_filter_rewrites_the_record_it_passes() -> None:
    record = logging.LogRecord("x", logging.DEBUG, "f.py", 1, "sent to %s", ("+13125550100",), None)

    assert PhoneRedactingFilter().filter(record)
    assert record.getMessage() == "sent to ***0100"
