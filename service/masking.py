"""Shorten phone numbers and email addresses before they reach a log line or a screen.

Logs are copied to places (aggregators, tickets, chat) that are not cleared for patient
data; the last four digits are enough to tell two patients apart while debugging.
"""

from __future__ import annotations

import logging
import re

MASK = "***"


def mask_phone(phone: str) -> str:
    """``+13125550100`` -> ``***0100``; anything with four digits or fewer is hidden whole."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) <= 4:
        return MASK
    return MASK + digits[-4:]


def mask_email(address: str) -> str:
    """``ana.lopez@example.com`` -> ``a***@example.com``: the domain helps with delivery
    problems (one provider rejecting), the person's name does not."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return MASK
    return f"{local[0]}{MASK}@{domain}"


def mask_recipient(recipient: str) -> str:
    """Mask either kind of address: email when it has an ``@``, phone otherwise."""
    return mask_email(recipient) if "@" in recipient else mask_phone(recipient)


# An unbroken run of 7-15 digits, maybe after "+" or its URL encoding "%2B": how numbers
# appear in request lines; not inside ids such as "AC0123456789abcdef".
_UNBROKEN_NUMBER = re.compile(r"(?<!\w)(?:\+|%2B)?\d{7,15}(?!\w)")


def redact_phone_numbers(text: str) -> str:
    return _UNBROKEN_NUMBER.sub(lambda match: mask_phone(match.group()), text)


class PhoneRedactingFilter(logging.Filter):
    """For third-party loggers that print request URLs (urllib3 at DEBUG logs
    ``GET /…/Messages.json?To=%2B13125550100``): rewrite the record with numbers masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_phone_numbers(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
