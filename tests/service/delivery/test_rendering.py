"""Rendering messages from templates/: strict, localized, rotated, one SMS segment."""

from __future__ import annotations

import datetime as dt
import string
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.delivery.rendering import (
    ACTIONABLE_MESSAGES,
    EMAIL_MESSAGES,
    REMINDER_KINDS,
    STAFF_MESSAGES,
    SYSTEM_MESSAGES,
    TemplateError,
    environment,
    message_names,
    pick_variant,
    render_email,
    render_sms,
    sms_first_name,
    variant_count,
    worst_case_context,
)
from service.delivery.segments import is_gsm7, segment_count

LINKS = {
    "done_url": "https://pt.example/e/done-token",
    "stop_url": "https://pt.example/e/stop-token",
}
CLINIC = {"clinic_name": "Lakeshore PT", "clinic_phone": "+1 312-555-0100"}


def sms(message: str, locale: str = "en", variant: int | None = None, **context: object) -> str:
    return render_sms(message=message, locale=locale, context=context, variant=variant)


def test_every_message_has_an_sms_in_english_and_spanish() -> None:
    for locale in ("en", "es"):
        assert set(message_names(channel="sms", locale=locale)) == {
            *REMINDER_KINDS,
            *SYSTEM_MESSAGES,
        }


def test_patient_emails_exist_in_both_locales_and_staff_emails_in_english() -> None:
    assert set(message_names(channel="email", locale="en")) == set(EMAIL_MESSAGES)
    assert set(message_names(channel="email", locale="es")) == set(EMAIL_MESSAGES) - set(
        STAFF_MESSAGES
    )


def test_reminder_greets_by_first_name_and_asks_for_done_in_one_segment() -> None:
    text = sms("stretch", first_name="Ana", kind="stretch")
    assert "Ana" in text
    assert "Reply DONE" in text
    assert segment_count(text) == 1


def test_spanish_reminder_asks_for_listo_and_stays_gsm7() -> None:
    text = sms("pelvic_tilt", "es", first_name="Ana", kind="pelvic_tilt")
    assert "Responde LISTO" in text
    assert is_gsm7(text)


def test_a_regional_locale_uses_its_language_and_an_unknown_one_english() -> None:
    english = sms("stretch", first_name="Ana", kind="stretch")
    assert sms("stretch", "es-MX", first_name="Ana", kind="stretch") == sms(
        "stretch", "es", first_name="Ana", kind="stretch"
    )
    assert sms("stretch", "fr", first_name="Ana", kind="stretch") == english
    assert sms("stretch", "EN_us", first_name="Ana", kind="stretch") == english


def test_staff_email_in_spanish_falls_back_to_english() -> None:
    context = worst_case_context("clinic_alert", channel="email")
    spanish = render_email(message="clinic_alert", locale="es", context=context)
    assert spanish == render_email(message="clinic_alert", locale="en", context=context)


def test_unknown_message_is_a_template_error_naming_the_expected_file() -> None:
    with pytest.raises(TemplateError, match=r"sms/en/nap_time\.txt"):
        sms("nap_time", first_name="Ana")


def test_a_message_name_cannot_reach_outside_the_templates_folder() -> None:
    with pytest.raises(TemplateError, match="unknown message"):
        sms("../../etc/passwd")


def test_a_missing_context_key_names_the_file_and_the_variable() -> None:
    with pytest.raises(TemplateError) as caught:
        sms("welcome", first_name="Ana", per_day=6)
    assert caught.value.template == "sms/en/welcome.txt"
    assert caught.value.line == 1
    assert "'clinic_name' is undefined" in str(caught.value)


def test_a_missing_footer_link_names_the_base_template() -> None:
    context = {"first_name": "Ana", "kind": "stretch", "clinic_name": "Lakeshore PT"}
    with pytest.raises(TemplateError) as caught:
        render_email(message="stretch", locale="en", context=context)
    assert caught.value.template is not None
    assert caught.value.template.startswith("email/_base/")
    assert "action_links" in caught.value.problem


def test_an_unknown_kind_is_a_template_error_only_where_the_template_needs_it() -> None:
    with pytest.raises(TemplateError, match="unknown reminder kind in 'nap'"):
        sms("done_ack", first_name="Ana", kind="nap")
    with pytest.raises(TemplateError, match=r"unknown reminder kind in \['stretch', 'nap'\]"):
        sms("combined", first_name="Ana", kinds=["stretch", "nap"])
    # A caller may build one context for every message: a system message ignores the kind.
    assert "Ana" in sms("skip_ack", first_name="Ana", kind="skip_ack", kinds=["skip_ack"])


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "sms" / "en").mkdir(parents=True)
    (tmp_path / "sms" / "en" / "stretch.txt").write_text("Hi {{ first_name }}\n{% if %}\n")
    with pytest.raises(TemplateError) as caught:
        render_sms(
            message="stretch", locale="en", context={"first_name": "A"}, templates_dir=tmp_path
        )
    assert (caught.value.template, caught.value.line) == ("sms/en/stretch.txt", 2)
    assert "syntax error" in caught.value.problem


def test_every_reminder_kind_has_several_wordings_that_differ() -> None:
    for kind in REMINDER_KINDS:
        count = variant_count(channel="sms", message=kind, locale="en")
        assert count >= 2, kind
        texts = {sms(kind, variant=v, first_name="Ana", kind=kind) for v in range(count)}
        assert len(texts) == count, kind


def test_variants_wrap_around_and_none_means_the_first() -> None:
    count = variant_count(channel="sms", message="stretch", locale="en")
    first = sms("stretch", variant=0, first_name="Ana", kind="stretch")
    assert sms("stretch", first_name="Ana", kind="stretch") == first
    assert sms("stretch", variant=count, first_name="Ana", kind="stretch") == first


def test_pick_variant_cycles_through_every_wording_deterministically() -> None:
    assert [pick_variant(seed=seed, count=3) for seed in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert pick_variant(seed=41, count=3) == pick_variant(seed=41, count=3)
    assert pick_variant(seed=5, count=1) == 0
    with pytest.raises(ValueError, match="at least 1"):
        pick_variant(seed=1, count=0)


def test_done_ack_names_the_exercise_recorded() -> None:
    assert sms("done_ack", first_name="Ana", kind="stretch") == (
        "Nice work, Ana! Stretching recorded. Keep it up."
    )
    assert "Anotamos: estiramientos" in sms("done_ack", "es", first_name="Ana", kind="stretch")


def test_combined_names_each_action_once() -> None:
    text = sms("combined", first_name="Ana", kinds=["stretch", "heat", "ice"])
    assert "do your stretches, use a warm pack and use an ice pack" in text
    assert "Reply DONE" in text
    spanish = sms("combined", "es", first_name="Ana", kinds=["stretch", "ice"])
    assert "hacer tus estiramientos y aplicar hielo" in spanish


def test_pause_ack_counts_days_in_both_languages() -> None:
    assert "paused for 1 day." in sms("pause_ack", first_name="Ana", n=1)
    assert "paused for 3 days." in sms("pause_ack", first_name="Ana", n=3)
    assert "por 30 días." in sms("pause_ack", "es", first_name="Ana", n=30)


def test_warning_sign_reply_points_to_the_clinician_and_emergency_services() -> None:
    text = sms(
        "warning_sign", first_name="Ana", clinic_phone="+1 312-555-0100", emergency_number="911"
    )
    assert "+1 312-555-0100" in text
    assert "911" in text
    assert "paused" in text


@pytest.mark.parametrize("locale", ["en", "es"])
def test_warning_sign_gives_the_emergency_number_it_is_told(locale: str) -> None:
    text = sms(
        "warning_sign",
        locale,
        first_name="Ana",
        clinic_phone="+44 20 7946 0000",
        emergency_number="999",
    )
    assert "999" in text
    assert "911" not in text


@pytest.mark.parametrize("locale", ["en", "es"])
def test_welcome_and_help_carry_what_carriers_require(locale: str) -> None:
    notice = {
        "en": "Msg & data rates may apply",
        "es": "Pueden aplicar tarifas de mensajes y datos",
    }
    for message in ("welcome", "help"):
        text = sms(message, locale, first_name="Ana", per_day=6, **CLINIC)
        for part in ("Lakeshore PT", "6", notice[locale], "STOP"):
            assert part in text, (message, part)
        assert ("HELP" if locale == "en" else "AYUDA") in text
        assert segment_count(text) <= 2


@pytest.mark.parametrize(
    ("locale", "command", "low", "high", "says"),
    [
        ("en", "pause", 1, 60, "from 1 to 60"),
        ("en", "pain", 0, 10, "from 0 (no pain) to 10"),
        ("es", "pause", 1, 60, "de 1 a 60"),
        ("es", "pain", 0, 10, "de 0 (sin dolor) a 10"),
    ],
)
def test_out_of_range_answer_states_the_range_in_one_segment(
    locale: str, command: str, low: int, high: int, says: str
) -> None:
    text = sms("out_of_range", locale, first_name="Ana", command=command, low=low, high=high)
    assert says in text
    assert "\n" not in text
    assert segment_count(text) == 1


def test_smart_punctuation_in_the_context_is_normalized_for_sms() -> None:
    text = sms("stretch", first_name="O’Brien\u00a0Jr", kind="stretch")  # noqa: RUF001
    assert "O'Brien Jr" in text
    assert is_gsm7(text)


def test_an_accented_name_is_folded_only_when_it_would_cost_a_second_segment() -> None:
    long_reminder = sms("position_change", "es", first_name="María Ángeles", kind="position_change")
    assert "Maria Angeles" in long_reminder
    assert segment_count(long_reminder) == 1
    short_reply = sms("pain_ack", "es", first_name="María", n=4)
    assert "María" in short_reply
    assert segment_count(short_reply) == 1
    as_written = render_sms(
        message="position_change",
        locale="es",
        context={"first_name": "María Ángeles", "kind": "position_change"},
        fit=False,
    )
    assert "María Ángeles" in as_written


_NAME = st.text(alphabet=string.ascii_letters + "áéíóúñüÁÉÍÓÚÑçÇ' -", min_size=1, max_size=40)


@given(name=_NAME, locale=st.sampled_from(["en", "es"]), seed=st.integers(0, 10))
def test_every_reminder_fits_one_segment_for_any_latin_name(
    name: str, locale: str, seed: int
) -> None:
    for kind in REMINDER_KINDS:
        text = sms(kind, locale, variant=seed, first_name=name, kind=kind)
        assert segment_count(text) == 1, text


def test_a_long_first_name_is_shortened_to_its_first_word_in_sms_only() -> None:
    long_name = "Maria del Carmen Alejandra"
    text = sms("stretch", first_name=long_name, kind="stretch")
    assert text.startswith("Hi Maria, ")
    assert sms_first_name("Jean-Christophe-Alexandre") == "Jean"
    assert sms_first_name("Wolfeschlegelsteinhausenberger") == "Wolfeschlegelsteinha"
    assert sms_first_name("  Ana   Sofía ") == "Ana Sofía"
    context = {"first_name": long_name, "kind": "stretch", "action_links": LINKS, **CLINIC}
    assert long_name in render_email(message="stretch", locale="en", context=context).text


def test_sms_is_never_html_escaped() -> None:
    text = sms("stretch", first_name="Ana & <Bo>", kind="stretch")
    assert "Ana & <Bo>" in text


def test_reminder_email_has_subject_text_html_done_and_unsubscribe_links() -> None:
    context = {"first_name": "Ana", "kind": "stretch", "action_links": LINKS, **CLINIC}
    email = render_email(message="stretch", locale="en", context=context)
    assert email.subject == "Ana, time for your stretches"
    for body in (email.text, email.html):
        assert LINKS["done_url"] in body
        assert LINKS["stop_url"] in body
        assert "Lakeshore PT" in body
    assert email.html.startswith("<!DOCTYPE html>")
    assert 'lang="en"' in email.html


def test_html_email_escapes_the_context_and_text_email_does_not() -> None:
    context = {"first_name": "<b>Ann</b> & Bo", "kind": "ice", "action_links": LINKS, **CLINIC}
    email = render_email(message="ice", locale="en", context=context)
    assert "&lt;b&gt;Ann&lt;/b&gt; &amp; Bo" in email.html
    assert "<b>Ann</b>" not in email.html
    assert "<b>Ann</b> & Bo" in email.text


def test_email_subject_stays_on_one_line_whatever_the_name_holds() -> None:
    context: dict[str, object] = {
        "first_name": "Ana\r\nBcc: x@example.org",
        "kind": "heat",
        "action_links": LINKS,
        **CLINIC,
    }
    email = render_email(message="heat", locale="en", context=context)
    assert "\n" not in email.subject
    assert "\r" not in email.subject


def test_spanish_email_is_in_spanish() -> None:
    context = {"first_name": "Ana", "kind": "stretch", "action_links": LINKS, **CLINIC}
    email = render_email(message="stretch", locale="es", context=context)
    assert "estiramientos" in email.subject
    assert "Ya lo hice" in email.html
    assert "Darte de baja" in email.html


def test_clinic_alert_carries_the_reply_and_who_sent_it() -> None:
    received = dt.datetime(2026, 3, 2, 9, 15, tzinfo=ZoneInfo("America/Chicago"))
    context = {
        "clinic_name": "Lakeshore PT",
        "first_name": "Ana",
        "patient_id": 42,
        "patients": [{"first_name": "Ana", "patient_id": 42}],
        "reply_text": "my leg went numb",
        "reply_id": 9001,
        "received_at": received,
    }
    email = render_email(message="clinic_alert", locale="en", context=context)
    assert "Ana" in email.subject
    assert "42" in email.subject
    assert "my leg went numb" not in email.subject
    for body in (email.text, email.html):
        assert "my leg went numb" in body
        assert "2026-03-02 09:15 CST" in body
        assert "ptnudge patients resume 42" in body
        assert "ptnudge replies ack 9001" in body


def test_clinic_digest_lists_each_section_and_says_when_one_is_empty() -> None:
    at = dt.datetime(2026, 3, 1, 18, 0, tzinfo=ZoneInfo("America/Chicago"))
    context = {
        "clinic_name": "Lakeshore PT",
        "period_start": dt.date(2026, 2, 23),
        "period_end": dt.date(2026, 3, 1),
        "threshold": 0.6,
        "low_adherence": [
            {"patient_id": 7, "first_name": "Bo", "adherence": 0.25, "done": 2, "sent": 8}
        ],
        "warning_signs": [],
        "free_text": [
            {"patient_id": 9, "first_name": "Cy", "received_at": at, "text": "can we talk?"}
        ],
        "opt_outs": [{"patient_id": 11, "first_name": "Di", "at": at, "channel": "sms"}],
        "silent": [{"patient_id": 12, "first_name": "Ed", "days": 4}],
    }
    email = render_email(message="clinic_digest", locale="en", context=context)
    assert email.subject == "Lakeshore PT: weekly summary, 2026-02-23 to 2026-03-01"
    for body in (email.text, email.html):
        assert "Below 60% adherence" in body
        assert "Bo" in body
        assert "25%" in body
        assert "can we talk?" in body
        assert "Di" in body
        assert "None this week." in body  # no warning-sign replies
        assert "nothing heard for 4 days" in body


def test_worst_case_context_is_the_longest_plausible() -> None:
    context = worst_case_context("welcome")
    assert len(str(context["first_name"])) == 20
    assert len(str(context["clinic_name"])) == 40
    assert set(context) == {"first_name", "clinic_name", "per_day"}
    email = worst_case_context("stretch", channel="email")
    assert set(email) == {"first_name", "kind", "clinic_name", "action_links"}


def test_actionable_messages_are_the_reminders_and_combined() -> None:
    assert set(ACTIONABLE_MESSAGES) == {*REMINDER_KINDS, "combined"}
    assert not set(REMINDER_KINDS) & set(SYSTEM_MESSAGES)


def test_the_environment_is_built_once_and_strict() -> None:
    env = environment()
    assert environment() is env
    assert env.undefined.__name__ == "StrictUndefined"
