"""Shorten phone numbers and email addresses before they reach a log line or a screen.

Logs are copied to places (aggregators, tickets, chat) that are not cleared for patient
data; the last four digits are enough to tell two patients apart while debugging.
"""

from __future__ import annotations

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
