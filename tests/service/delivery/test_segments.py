"""SMS segment counting and GSM-7 normalization (3GPP TS 23.038)."""

from __future__ import annotations

import math
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.delivery.segments import encoding, fold_accents, is_gsm7, normalize, segment_count

GSM_PLAIN = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCÄÖÑÜ§¿abcäöñüà"


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_plain_gsm_text_is_160_in_one_segment_then_153_per_segment(
    length: int, segments: int
) -> None:
    assert segment_count("a" * length) == segments


def test_extension_characters_count_twice() -> None:
    assert segment_count("a" * 79 + "€") == 1  # 81 septets
    assert segment_count("a" * 158 + "€") == 1  # 160 septets
    assert segment_count("a" * 159 + "€") == 2  # 161 septets
    assert segment_count("{}" * 40) == 1  # 80 characters, 160 septets
    assert segment_count("{}" * 80) == 3  # 160 characters, 320 septets: 152 + 152 + 16


def test_an_escape_pair_is_never_cut_between_two_segments() -> None:
    # 306 septets would fill two segments exactly, but the € cannot straddle the boundary.
    assert segment_count("a" * 152 + "€" + "a" * 152) == 3


@pytest.mark.parametrize(("length", "segments"), [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3)])
def test_ucs2_text_is_70_in_one_segment_then_67_per_segment(length: int, segments: int) -> None:
    assert segment_count("á" * length) == segments


def test_one_character_outside_gsm7_switches_the_whole_text_to_ucs2() -> None:
    text = "a" * 69 + "ú"
    assert encoding(text) == "UCS-2"
    assert segment_count(text) == 1
    assert segment_count("a" * 70 + "ú") == 2


def test_an_emoji_counts_as_two_utf16_code_units() -> None:
    assert segment_count("😀" * 35) == 1  # 70 code units
    assert segment_count("😀" * 36) == 2
    assert segment_count("a" * 69 + "😀") == 2
    # Neither is a surrogate pair cut in two: 66 units then an emoji needs a third segment.
    assert segment_count("a" * 66 + "😀" + "a" * 66) == 3


def test_empty_text_costs_no_segment() -> None:
    assert segment_count("") == 0
    assert encoding("") == "GSM-7"


def test_spanish_letters_in_gsm7_and_the_ones_that_are_not() -> None:
    assert is_gsm7("¿Qué tal, señor? ¡Perfecto! Pingüino, Ñu, É")
    for letter in "áíóúÁÍÓÚç":
        assert not is_gsm7(letter), letter


def test_the_whole_basic_table_is_gsm7_and_look_alikes_are_not() -> None:
    assert is_gsm7(GSM_PLAIN + "^{}\\[~]|€\f")
    for char in "`‘’“”–—…\u00a0\x1bçÂ":  # noqa: RUF001 - the look-alikes are the point
        assert not is_gsm7(char), repr(char)


def test_normalize_replaces_smart_punctuation_and_odd_spaces_with_gsm7() -> None:
    text = "“Ana’s” plan\u00a0\u2014 stretch\u202fnow…"  # noqa: RUF001
    assert normalize(text) == '"Ana\'s" plan - stretch now...'
    assert is_gsm7(normalize(text))


def test_every_whitespace_character_of_unicode_becomes_a_space_or_a_line_break() -> None:
    # normalize's table lists the whitespace below U+3001: nothing of Unicode lies above it.
    spaces = [chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()]
    assert max(spaces) == "\u3000"
    for char in spaces:
        assert normalize(f"a{char}b") in {"a b", "a\nb"}, f"U+{ord(char):04X}"


def test_normalize_composes_a_decomposed_accent_into_the_gsm7_letter() -> None:
    assert normalize("cafe\u0301") == "café"
    assert is_gsm7(normalize("cafe\u0301"))


def test_normalize_collapses_runs_of_whitespace_and_blank_lines() -> None:
    assert normalize("a \t b\u00a0\u00a0c \r\n\n\n\n d\u200b") == "a b c\n\nd"


def test_fold_accents_drops_only_the_accents_gsm7_lacks() -> None:
    assert fold_accents("María José Ñandú, Çedilla, ç") == "Maria José Ñandu, Çedilla, c"
    assert fold_accents("😀 ł") == "😀 ł"  # nothing to fold to


@given(st.text())
def test_segment_count_never_raises_and_is_at_least_one_for_any_text(text: str) -> None:
    count = segment_count(text)
    assert count >= 1 if text else count == 0


@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@given(st.text(alphabet=GSM_PLAIN.replace("\r", "") + "‘’“”–—…\u00a0\u2009"))  # noqa: RUF001
def test_normalized_text_from_gsm_and_look_alikes_is_gsm7(text: str) -> None:
    assert is_gsm7(normalize(text))


@given(st.text(alphabet=GSM_PLAIN, max_size=700))
def test_plain_gsm_text_follows_the_160_153_rule(text: str) -> None:
    expected = 0 if not text else 1 if len(text) <= 160 else math.ceil(len(text) / 153)
    assert segment_count(text) == expected


@given(st.text(max_size=400))
def test_folding_accents_never_costs_more_segments(text: str) -> None:
    assert segment_count(fold_accents(text)) <= segment_count(text)
