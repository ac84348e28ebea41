"""``ptnudge templates check``: prove every template renders and every SMS fits one segment.

Each template, in every locale and every variant, is rendered against
``rendering.worst_case_context`` (the longest first name, clinic name and phrases). A
problem is reported, with the template's path under the templates folder, for:

1. a file that does not compile (syntax error, with its line) or is not a known template
   (the pages under ``reports/`` are not messages: they are only compiled here);
2. a missing message or translation, a missing part of an email, a gap between variants;
3. an undefined variable or any other rendering error (StrictUndefined makes this loud);
4. an SMS over one segment (the welcome and HELP: two), rendered as written (without the
   accent folding ``render_sms`` may fall back on at run time for a patient's name);
5. an actionable SMS without its DONE/LISTO reply instruction, a keyword list missing a
   keyword, and a welcome or HELP text without any part carriers require of it (CTIA,
   10DLC): the clinic's name, the message frequency, the locale's "Msg & data rates may
   apply" (``rendering.RATES_NOTICE``), HELP and STOP;
6. a diagnosis word in any SMS, or "pain" in a reminder (whose context has no clinic name
   either: first name and the action only);
7. an email missing its done or unsubscribe link, and wordings repeated across variants.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jinja2

from service.delivery import rendering
from service.delivery.rendering import (
    ACTIONABLE_MESSAGES,
    CARRIER_DISCLOSURE_MESSAGES,
    CARRIER_DISCLOSURE_SEGMENTS,
    DEFAULT_LOCALE,
    EMAIL_MESSAGES,
    RATES_NOTICE,
    REMINDER_KINDS,
    REPLY_WORDS,
    STAFF_MESSAGES,
    SYSTEM_MESSAGES,
    TemplateError,
    contiguous_count,
    template_index,
    template_names,
)
from service.delivery.segments import encoding, is_gsm7, segment_count
from templates import TEMPLATES_DIR

# Words that name a condition or diagnosis: never in an SMS, whose text a lock screen shows.
_DIAGNOSIS_WORDS = (
    r"stenos[ie]s|spin(e|al)|sciatica|hernia(ted)?|arthritis|diagnos\w*|disc|nerve|"
    r"estenosis|columna|ci[aá]tica|artritis|diagn[oó]stico|nervio"
)
# Page templates, not messages: the adherence report (``service.reporting.reports``).
PAGE_FOLDERS = ("reports",)
BANNED_IN_SMS = re.compile(rf"\b({_DIAGNOSIS_WORDS})\b", re.IGNORECASE)
# A reminder says what to do, not what hurts.
BANNED_IN_REMINDERS = re.compile(r"\b(pain|painful|dolor|dolores)\b", re.IGNORECASE)
# Reply words a message must mention (keys of REPLY_WORDS); consent rules for the first two.
REQUIRED_WORDS: dict[str, tuple[str, ...]] = {
    "welcome": ("help", "stop"),
    "help": ("help", "stop"),
    "quit_help": ("stop", "pause"),
    "keywords": ("done", "skip", "later", "pause", "pain", "help", "stop"),
    **dict.fromkeys(ACTIONABLE_MESSAGES, ("done",)),
}


@dataclass(frozen=True, order=True)
class Problem:
    template: str  # path under the templates folder, e.g. "sms/es/stretch.1.txt"
    message: str

    def __str__(self) -> str:
        return f"{self.template}: {self.message}"


def check_templates(*, templates_dir: Path | None = None) -> list[Problem]:
    """Every problem in a templates folder (the shipped one by default), sorted, no repeats."""
    root = (templates_dir or TEMPLATES_DIR).resolve()
    # Read the folder afresh: the checker runs after someone edited it.
    rendering.clear_caches()
    problems = {
        *_check_files(root),
        *_check_coverage(root),
        *_check_rendering(root),
    }
    return sorted(problems)


def _problem(exc: TemplateError, fallback: str) -> Problem:
    where = f"line {exc.line}: " if exc.line else ""
    return Problem(exc.template or fallback, where + exc.problem)


def _template_files(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in {".txt", ".html"}:
            yield path.relative_to(root).as_posix()


def _check_files(root: Path) -> Iterator[Problem]:
    """Every file compiles, and every file outside a "_" folder belongs to a known message."""
    env = rendering.environment(root)
    expected = {
        name
        for (channel, locale, message), variants in template_index(root).items()
        for variant in variants
        for name in template_names(channel=channel, message=message, locale=locale, variant=variant)
    }
    for name in _template_files(root):
        try:
            env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            yield Problem(name, f"line {exc.lineno}: syntax error: {exc.message}")
        if name not in expected and not _outside_messages(name):
            yield Problem(name, "not a template of any message (expected layout in STYLE.md 11)")


def _outside_messages(name: str) -> bool:
    parts = name.split("/")
    return parts[0] in PAGE_FOLDERS or any(part.startswith("_") for part in parts)


def _locales(root: Path, channel: str) -> list[str]:
    folder = root / channel
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("_"))


def _wanted(channel: str, locale: str) -> tuple[str, ...]:
    if channel == "sms":
        return (*REMINDER_KINDS, *SYSTEM_MESSAGES)
    if locale == DEFAULT_LOCALE:
        return EMAIL_MESSAGES
    return tuple(m for m in EMAIL_MESSAGES if m not in STAFF_MESSAGES)


def _check_coverage(root: Path) -> Iterator[Problem]:
    """Each locale has each message; no message has a gap in its variants or a stray name."""
    index = template_index(root)
    for channel in rendering.CHANNELS:
        for locale in _locales(root, channel):
            wanted = _wanted(channel, locale)
            for message in wanted:
                variants = index.get((channel, locale, message), frozenset())
                first = template_names(channel=channel, message=message, locale=locale)[0]
                if not variants:
                    yield Problem(first, "missing")
                elif len(variants) != contiguous_count(variants):
                    yield Problem(
                        first,
                        f"variants must be numbered 1, 2, … without gaps: found {sorted(variants)}",
                    )
    known = {"sms": {*REMINDER_KINDS, *SYSTEM_MESSAGES}, "email": set(EMAIL_MESSAGES)}
    for chan, locale, message in sorted(index):
        if message not in known[chan]:
            name = template_names(channel=chan, message=message, locale=locale)[0]
            yield Problem(name, f"{message!r} is not a {chan} message this code sends")


def _renderings(root: Path) -> Iterator[tuple[str, str, str, int]]:
    for (channel, locale, message), variants in sorted(template_index(root).items()):
        for variant in range(contiguous_count(variants)):
            yield channel, locale, message, variant


def _check_rendering(root: Path) -> Iterator[Problem]:
    seen: dict[tuple[str, str, str], set[str]] = {}
    for channel, locale, message, variant in _renderings(root):
        names = template_names(channel=channel, message=message, locale=locale, variant=variant)
        context = rendering.worst_case_context(message, locale=locale, channel=channel)
        try:
            if channel == "sms":
                text = rendering.render_sms(
                    message=message,
                    locale=locale,
                    context=context,
                    variant=variant,
                    templates_dir=root,
                    fit=False,
                )
                yield from _check_sms(names[0], message=message, locale=locale, text=text)
            else:
                email = rendering.render_email(
                    message=message,
                    locale=locale,
                    context=context,
                    variant=variant,
                    templates_dir=root,
                )
                text = email.text
                yield from _check_email(names, message=message, email=email)
        except TemplateError as exc:
            yield _problem(exc, names[0])
            continue
        wordings = seen.setdefault((channel, locale, message), set())
        if text in wordings:
            yield Problem(names[0], "same wording as an earlier variant")
        wordings.add(text)


def _check_segments(name: str, *, message: str, text: str) -> Iterator[Problem]:
    segments = segment_count(text)
    disclosure = message in CARRIER_DISCLOSURE_MESSAGES
    allowed = CARRIER_DISCLOSURE_SEGMENTS if disclosure else 1
    if segments > allowed:
        odd = sorted({char for char in text if not is_gsm7(char)})
        detail = f"; not GSM-7: {' '.join(odd)}" if odd else ""
        limit = f"the {message} may take {allowed}" if disclosure else "an SMS must fit one"
        yield Problem(
            name,
            f"{segments} segments with the worst-case context ({len(text)} characters, "
            f"{encoding(text)}{detail}); {limit}",
        )


def _check_disclosure(name: str, *, message: str, locale: str, text: str) -> Iterator[Problem]:
    """The parts carriers look for in an opt-in confirmation and a HELP answer (HELP and
    STOP are reply words, checked with the others)."""
    if message not in CARRIER_DISCLOSURE_MESSAGES:
        return
    context = rendering.worst_case_context(message, locale=locale)
    if str(context["clinic_name"]) not in text:
        yield Problem(name, "does not name the clinic (the program's sender)")
    if not re.search(rf"\b{context['per_day']}\b", text):
        yield Problem(name, "does not say how many messages a day (per_day)")
    notice = RATES_NOTICE.get(locale)
    if notice is None:
        yield Problem(name, f"no rates notice for locale {locale!r} in rendering.RATES_NOTICE")
    elif notice not in text:
        yield Problem(name, f"does not say {notice!r}")


def _check_sms(name: str, *, message: str, locale: str, text: str) -> Iterator[Problem]:
    yield from _check_segments(name, message=message, text=text)
    yield from _check_disclosure(name, message=message, locale=locale, text=text)
    words = REPLY_WORDS.get(locale)
    if words is None:
        yield Problem(name, f"no reply words for locale {locale!r} in rendering.REPLY_WORDS")
        return
    for key in REQUIRED_WORDS.get(message, ()):
        if not re.search(rf"\b{re.escape(words[key])}\b", text):
            yield Problem(name, f"does not mention the reply word {words[key]}")
    for found in BANNED_IN_SMS.finditer(text):
        yield Problem(name, f"names a condition ({found.group()!r}); say the action only")
    if message in ACTIONABLE_MESSAGES:
        yield from _check_reminder(name, text)


def _check_reminder(name: str, text: str) -> Iterator[Problem]:
    # (Naming the clinic is caught earlier: a reminder's context has no clinic_name.)
    for found in BANNED_IN_REMINDERS.finditer(text):
        yield Problem(name, f"a reminder must not mention {found.group()!r}")


def _check_email(
    names: list[str], *, message: str, email: rendering.RenderedEmail
) -> Iterator[Problem]:
    if not email.subject:
        yield Problem(names[0], "empty subject")
    if message in STAFF_MESSAGES:
        return
    wanted = {"done link": rendering.WORST_DONE_URL} if message in ACTIONABLE_MESSAGES else {}
    if message != "stop_confirm":
        wanted["unsubscribe link"] = rendering.WORST_STOP_URL
    for what, url in wanted.items():
        for name, body in ((names[1], email.text), (names[2], email.html)):
            if url not in body:
                yield Problem(name, f"no {what}")
