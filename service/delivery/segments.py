"""How many SMS segments a text costs, and how to keep it in the cheap encoding.

An SMS travels as GSM-7 (160 characters in one segment, 153 per segment once split) only if
every character is in the GSM 03.38 alphabet; a single character outside it (a curly quote, a
non-breaking space, an emoji, "á") turns the whole message into UCS-2: 70 in one segment,
67 per segment once split. ``normalize`` removes the usual accidental culprits before a text
is measured or sent; ``segment_count`` is what the template checker and tests measure with.

The alphabet is a fixed table, written out here by hand from 3GPP TS 23.038 section 6.2.1
(https://www.3gpp.org/DynaReport/23038.htm): there is no well-kept Python package for it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

# GSM 03.38 default alphabet, in code order 0x00-0x7F. 0x1B (ESC) is left out: it is the
# escape to the extension table, not a character a text can contain.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00-0x0F
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"  # 0x10-0x1F (minus 0x1B)
    " !\"#¤%&'()*+,-./"  # 0x20-0x2F (0x24 is ¤, not $)
    "0123456789:;<=>?"  # 0x30-0x3F
    "¡ABCDEFGHIJKLMNO"  # 0x40-0x4F
    "PQRSTUVWXYZÄÖÑÜ§"  # 0x50-0x5F
    "¿abcdefghijklmno"  # 0x60-0x6F
    "pqrstuvwxyzäöñüà"  # 0x70-0x7F
)
# The extension table: each of these is sent as ESC + code, so it takes two septets.
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE = 160
GSM7_PART = 153  # the rest of a concatenated segment holds the 6-octet UDH
UCS2_SINGLE = 70
UCS2_PART = 67

# Characters phones and word processors put in text that have a GSM-7 look-alike. Twilio's
# "Smart Encoding" list covers the same ground, but only on Messaging Services that enable it.
_REPLACEMENTS = {
    **dict.fromkeys("‘’‚‛′´`ʹʼˈ＇", "'"),  # noqa: RUF001 - these are the look-alikes to replace
    **dict.fromkeys("“”„‟″«»ʺ＂", '"'),  # noqa: RUF001
    **dict.fromkeys("‐‑‒–—―−", "-"),  # noqa: RUF001
    "…": "...",
    **dict.fromkeys("\u200b\u2060\ufeff\u00ad", ""),  # zero-width and soft-hyphen: invisible
    **dict.fromkeys("\v\f\x85\x1c\x1d\x1e\u2028\u2029", "\n"),  # what splitlines() breaks on
}
_SPACES_RE = re.compile(r"[^\S\n]+")  # whitespace other than newline, in runs
_AROUND_NEWLINE_RE = re.compile(r" *\n *")
_BLANK_LINES_RE = re.compile(r"\n{3,}")


# Every whitespace character Python knows lies below U+3001 (the ideographic space, U+3000,
# is the last): tests/service/delivery/test_segments.py checks that against all of Unicode.
_LAST_SPACE = 0x3000
# One ``str.translate`` table: the look-alikes above, and every other whitespace character
# but the newline as a plain space.
_TRANSLATION = str.maketrans(
    {
        **{
            char: " "
            for char in map(chr, range(_LAST_SPACE + 1))
            if char.isspace() and char != "\n"
        },
        **_REPLACEMENTS,
    }
)


def normalize(text: str) -> str:
    """Replace smart quotes, odd spaces, dashes and the ellipsis with their GSM-7 look-alikes,
    compose accents (so "e" + combining acute becomes the GSM-7 "é") and collapse runs of
    whitespace. Idempotent: normalizing twice changes nothing more."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.translate(_TRANSLATION)
    # NFC after the replacements: removing an invisible character can bring a letter and a
    # combining accent together, and composing them later would break idempotence.
    text = unicodedata.normalize("NFC", text)
    text = _SPACES_RE.sub(" ", text)
    text = _AROUND_NEWLINE_RE.sub("\n", text)
    return _BLANK_LINES_RE.sub("\n\n", text)


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM 03.38 basic or extension table."""
    return all(char in _GSM7_BASIC or char in _GSM7_EXTENSION for char in text)


def encoding(text: str) -> Literal["GSM-7", "UCS-2"]:
    """The encoding a carrier will use for ``text``."""
    return "GSM-7" if is_gsm7(text) else "UCS-2"


def _units(text: str, *, gsm: bool) -> list[int]:
    """The cost of each character: septets in GSM-7, UTF-16 code units in UCS-2 (so an emoji
    outside the Basic Multilingual Plane costs two)."""
    if gsm:
        return [2 if char in _GSM7_EXTENSION else 1 for char in text]
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def segment_count(text: str) -> int:
    """Segments a carrier bills for ``text``; 0 for the empty string.

    Split segments are packed greedily: an escape pair or a surrogate pair is never cut in
    two, so it may open the next segment (as phones and Twilio's calculator do)."""
    gsm = is_gsm7(text)
    units = _units(text, gsm=gsm)
    single, part = (GSM7_SINGLE, GSM7_PART) if gsm else (UCS2_SINGLE, UCS2_PART)
    if not units:
        return 0
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for unit in units:
        if used + unit > part:
            segments, used = segments + 1, 0
        used += unit
    return segments


def _fold_char(char: str) -> str:
    if char in _GSM7_BASIC or char in _GSM7_EXTENSION:
        return char
    base = "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c))
    return base if base and is_gsm7(base) else char


def fold_accents(text: str) -> str:
    """Drop the accent from letters GSM-7 lacks when the bare letter is in it ("á" -> "a",
    "ç" -> "c"); GSM-7 letters such as "é" and "ñ" stay. Lossy: only for a text that would
    otherwise cost more segments (a name like "María" in a 100-character message)."""
    return "".join(_fold_char(char) for char in text)
