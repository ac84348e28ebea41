"""The template checker: the shipped templates pass, and each kind of mistake is caught."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.cli.templates_check import Problem, check_templates
from templates import TEMPLATES_DIR


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A copy of the shipped templates to break."""
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return copy


def edit(root: Path, name: str, old: str, new: str) -> None:
    path = root / name
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_the_shipped_templates_pass() -> None:
    assert check_templates() == []


def test_an_untouched_copy_passes(templates: Path) -> None:
    assert check_templates(templates_dir=templates) == []


def test_a_typo_in_a_variable_is_reported_with_the_file_and_line(templates: Path) -> None:
    edit(templates, "sms/en/stretch.1.txt", "first_name", "frist_name")
    assert check_templates(templates_dir=templates) == [
        Problem("sms/en/stretch.1.txt", "line 1: 'frist_name' is undefined")
    ]


def test_an_undefined_variable_in_a_shared_layout_is_reported_once(templates: Path) -> None:
    edit(templates, "email/_base/base.html", "{{ clinic_name }}</title>", "{{ clinic }}</title>")
    problems = check_templates(templates_dir=templates)
    assert {p.template for p in problems} == {"email/_base/base.html"}
    assert len(problems) == 1
    assert "'clinic' is undefined" in problems[0].message


def test_a_syntax_error_is_reported_with_its_line(templates: Path) -> None:
    edit(templates, "email/es/ice/body.txt", "{% block why %}", "{% block why %}{% if %}")
    problems = check_templates(templates_dir=templates)
    assert problems
    assert {p.template for p in problems} == {"email/es/ice/body.txt"}
    assert problems[0].message.startswith("line 3: syntax error")


def test_a_syntax_error_in_the_report_page_is_reported(templates: Path) -> None:
    edit(templates, "reports/adherence.html", "{% if rows %}", "{% if rows %}{% endfor %}")
    problems = check_templates(templates_dir=templates)
    assert [p.template for p in problems] == ["reports/adherence.html"]
    assert "syntax error" in problems[0].message


def test_an_sms_over_one_segment_is_reported(templates: Path) -> None:
    edit(templates, "sms/en/heat.txt", "to loosen up.", "to loosen up. " + "Really. " * 10)
    [problem] = check_templates(templates_dir=templates)
    assert problem.template == "sms/en/heat.txt"
    assert "2 segments" in problem.message
    assert "GSM-7" in problem.message


def test_a_spanish_accent_outside_gsm7_is_reported_when_it_costs_a_segment(templates: Path) -> None:
    edit(templates, "sms/es/stretch.txt", "despacio", "más despacio")
    [problem] = check_templates(templates_dir=templates)
    assert problem.template == "sms/es/stretch.txt"
    assert "UCS-2" in problem.message
    assert "á" in problem.message


def test_a_reminder_without_the_done_instruction_is_reported(templates: Path) -> None:
    edit(templates, "sms/es/ice.2.txt", "Responde LISTO al terminar.", "Gracias.")
    assert check_templates(templates_dir=templates) == [
        Problem("sms/es/ice.2.txt", "does not mention the reply word LISTO")
    ]


def test_a_welcome_without_stop_is_reported(templates: Path) -> None:
    edit(templates, "sms/en/welcome.txt", ", STOP to opt out", "")
    assert check_templates(templates_dir=templates) == [
        Problem("sms/en/welcome.txt", "does not mention the reply word STOP")
    ]


def test_a_diagnosis_word_in_an_sms_is_reported(templates: Path) -> None:
    edit(templates, "sms/en/posture.txt", "posture check:", "spine check:")
    [problem] = check_templates(templates_dir=templates)
    assert problem.template == "sms/en/posture.txt"
    assert "'spine'" in problem.message


def test_pain_in_a_reminder_is_reported(templates: Path) -> None:
    edit(templates, "sms/en/ice.txt", "after your activity", "for the pain")
    assert check_templates(templates_dir=templates) == [
        Problem("sms/en/ice.txt", "a reminder must not mention 'pain'")
    ]


def test_a_reminder_cannot_name_the_clinic(templates: Path) -> None:
    edit(templates, "sms/en/aquatic.1.txt", "{{ first_name }}, a", "{{ first_name }}, {{ kind }} a")
    assert check_templates(templates_dir=templates) == []  # kind is in the context
    edit(templates, "sms/en/aquatic.1.txt", "{{ kind }}", "{{ clinic_name }}")
    [problem] = check_templates(templates_dir=templates)
    assert problem.template == "sms/en/aquatic.1.txt"
    # A reminder's context has no clinic name at all: the template cannot use it.
    assert "'clinic_name' is undefined" in problem.message


def test_a_missing_translation_is_reported(templates: Path) -> None:
    for path in (templates / "sms" / "es").glob("lifting*.txt"):
        path.unlink()
    assert check_templates(templates_dir=templates) == [Problem("sms/es/lifting.txt", "missing")]


def test_a_gap_between_variants_is_reported(templates: Path) -> None:
    (templates / "sms/en/stretch.2.txt").rename(templates / "sms/en/stretch.3.txt")
    [problem] = check_templates(templates_dir=templates)
    assert problem.template == "sms/en/stretch.txt"
    assert "[0, 1, 3]" in problem.message


def test_repeated_wording_across_variants_is_reported(templates: Path) -> None:
    shutil.copy(templates / "sms/en/ice.txt", templates / "sms/en/ice.3.txt")
    assert check_templates(templates_dir=templates) == [
        Problem("sms/en/ice.3.txt", "same wording as an earlier variant")
    ]


def test_a_misnamed_file_is_reported(templates: Path) -> None:
    shutil.copy(templates / "sms/en/stretch.txt", templates / "sms/en/strech.txt")
    shutil.copy(templates / "sms/en/stretch.txt", templates / "sms/en/Stretch.txt")
    assert check_templates(templates_dir=templates) == [
        Problem(
            "sms/en/Stretch.txt", "not a template of any message (expected layout in STYLE.md 11)"
        ),
        Problem("sms/en/strech.txt", "'strech' is not a sms message this code sends"),
    ]


def test_an_email_part_missing_is_reported(templates: Path) -> None:
    (templates / "email/es/heat/body.html").unlink()
    problems = check_templates(templates_dir=templates)
    assert [p.template for p in problems] == ["email/es/heat/body.html"]
    assert "not found" in problems[0].message


def test_an_email_without_its_unsubscribe_link_is_reported(templates: Path) -> None:
    path = templates / "email/en/reengage/body.html"
    path.write_text(path.read_text() + "{% block footer %}Bye{% endblock %}\n")
    assert check_templates(templates_dir=templates) == [
        Problem("email/en/reengage/body.html", "no unsubscribe link")
    ]


@pytest.mark.parametrize("locale", ["en", "es"])
@pytest.mark.parametrize("message", ["welcome", "help"])
def test_a_welcome_or_help_without_the_rates_notice_is_reported(
    templates: Path, locale: str, message: str
) -> None:
    notice = {
        "en": "Msg & data rates may apply",
        "es": "Pueden aplicar tarifas de mensajes y datos",
    }
    edit(templates, f"sms/{locale}/{message}.txt", notice[locale] + ". ", "")
    assert check_templates(templates_dir=templates) == [
        Problem(f"sms/{locale}/{message}.txt", f"does not say {notice[locale]!r}")
    ]


def test_a_help_without_the_frequency_or_the_clinic_is_reported(templates: Path) -> None:
    edit(templates, "sms/es/help.txt", ", hasta {{ per_day }} mensajes al dia", "")
    edit(templates, "sms/en/help.txt", "{{ clinic_name }} home", "Home")
    assert check_templates(templates_dir=templates) == [
        Problem("sms/en/help.txt", "does not name the clinic (the program's sender)"),
        Problem("sms/es/help.txt", "does not say how many messages a day (per_day)"),
    ]


def test_a_help_without_help_is_reported(templates: Path) -> None:
    edit(templates, "sms/en/help.txt", ", HELP for help", "")
    assert check_templates(templates_dir=templates) == [
        Problem("sms/en/help.txt", "does not mention the reply word HELP")
    ]


def test_a_welcome_may_take_two_segments_but_not_three(templates: Path) -> None:
    edit(templates, "sms/en/welcome.txt", "Msg & data", "Welcome aboard. " * 10 + "Msg & data")
    [problem] = check_templates(templates_dir=templates)
    assert problem.template == "sms/en/welcome.txt"
    assert "3 segments" in problem.message
    assert "the welcome may take 2" in problem.message


def test_a_locale_without_a_rates_notice_is_reported(templates: Path) -> None:
    shutil.copytree(templates / "sms" / "en", templates / "sms" / "fr")
    problems = check_templates(templates_dir=templates)
    assert (
        Problem("sms/fr/welcome.txt", "no rates notice for locale 'fr' in rendering.RATES_NOTICE")
        in problems
    )
