"""The emergency number a warning-sign answer tells the patient to call: the one of the
clinic's country (``Clinic.region``, the ISO 3166 region of the clinic's phone number).

A patient is enrolled with the clinic's country as their phone's default region, so the
clinic's country is the best guess of where the patient is. Where we hold no entry, 112:
GSM mobile networks route it to the local emergency service in most of the world.
"""

from __future__ import annotations

DEFAULT_NUMBER = "112"
# The North American Numbering Plan countries and territories that answer 911, and Mexico
# (911 since 2017).
_NINE_ONE_ONE = ("US", "CA", "PR", "VI", "GU", "AS", "MP", "MX")
# The EU and the rest of the EEA, and Switzerland: 112 everywhere (999 also works in Ireland).
_ONE_ONE_TWO = (
    *("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE"),
    *("IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"),
    *("IS", "LI", "NO", "CH"),
)
EMERGENCY_NUMBERS: dict[str, str] = {
    **dict.fromkeys(_NINE_ONE_ONE, "911"),
    **dict.fromkeys(_ONE_ONE_TWO, "112"),
    "GB": "999",
    "AU": "000",
    "NZ": "111",
    "JP": "119",
}


def emergency_number(*, region: str) -> str:
    """The emergency number of a region ("US" -> "911", "GB" -> "999", "FR" -> "112")."""
    return EMERGENCY_NUMBERS.get(region.strip().upper(), DEFAULT_NUMBER)
