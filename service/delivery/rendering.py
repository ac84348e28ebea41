"""The one place message text is made: strict Jinja2 templates from ``templates/``.

Layout (``templates/``)::

    sms/<locale>/<message>.txt                      variant 0
    sms/<locale>/<message>.<n>.txt                  variants 1, 2, … (rotation)
    email/<locale>/<message>/{subject,body}.txt     and body.html (variant 0)
    email/<locale>/<message>/{subject,body}.<n>.txt and body.<n>.html (variant n)
    email/_base/                                    layouts the bodies extend

Undefined variables raise (``StrictUndefined``); only ``.html`` is autoescaped. A locale is
resolved as given ("es-MX"), then its language ("es"), then "en"; a message missing from a
locale falls back the same way. ``render_sms`` returns text already normalized for SMS.

Context each message takes (the caller may pass more; keys it leaves out raise):

=====================  ===============================================================
message                keys
=====================  ===============================================================
each REMINDER_KINDS    first_name, kind (= the message name)
combined               first_name, kinds (2-3 reminder kinds due together)
welcome                first_name, clinic_name, per_day (int: most messages a day)
help                   clinic_name, clinic_phone (formatted for people), per_day
stop_confirm           clinic_name
start_confirm          first_name, clinic_name
done_ack               first_name, kind (of the reminder marked done)
done_nothing_open      first_name
skip_ack               first_name
snooze_ack             first_name, n (minutes until the reminder comes back)
snooze_too_late        first_name (LATER came too late in the waking day for a re-send)
snooze_tomorrow        first_name, at (local datetime of the next waking morning's re-send)
pause_ack              first_name, n (days paused)
pain_ack               first_name, n (the 0-10 score recorded)
checkin_ack            first_name, n (the 0-7 days a week recorded)
out_of_range           first_name, command ("pause", "pain" or "checkin"), low, high (the
                       range it takes)
symptom_ack            first_name, clinic_name (a symptom was passed on to the care team)
quit_help              clinic_name (the patient wants to leave: how to stop, or pause)
pain_question          first_name (QUESTION_KINDS: scheduled by a program, answered with
weekly_checkin         first_name  a bare number)
keywords               (nothing)
unknown_sender         (nothing)
warning_sign           first_name, clinic_phone, emergency_number (the clinic's country's:
                       ``service.replies.emergency``)
reengage               first_name
phase_change           first_name (a progression's next phase starts today)
program_complete       first_name, done, sent (ints: reminders done of those delivered)
clinic_alert (email)   clinic_name, first_name, patient_id (whom the reply was read for),
                       patients: [{first_name, patient_id}] (the clinic's patients on the
                       number, that one first), reply_text, reply_id, received_at (aware
                       datetime, in the clinic's zone)
clinic_digest (email)  clinic_name, period_start, period_end (dates), threshold (0-1),
                       low_adherence: [{patient_id, first_name, adherence (0-1), done, sent}],
                       warning_signs and free_text: [{patient_id, first_name, received_at,
                       text}], opt_outs: [{patient_id, first_name, at, channel}],
                       silent: [{patient_id, first_name, days}] (nothing heard for days)
=====================  ===============================================================

Every patient email also takes ``clinic_name`` and ``action_links`` (``stop_url``: the
unsubscribe link in the footer; reminders and ``combined`` also ``done_url``). Derived for
you: ``exercise`` (display name of ``kind``) and ``actions`` (action phrases of ``kinds``),
plus ``locale`` and ``variant``. Only the two staff emails may carry a patient's reply text.
"""

from __future__ import annotations

import datetime as dt
import re
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import jinja2

from service.delivery.segments import fold_accents, normalize, segment_count
from templates import TEMPLATES_DIR

Channel = Literal["sms", "email"]
CHANNELS: tuple[Channel, ...] = ("sms", "email")
DEFAULT_LOCALE = "en"

REMINDER_KINDS: tuple[str, ...] = (
    "position_change",
    "break_planning",
    "stretch",
    "pelvic_tilt",
    "leg_strength",
    "walk_or_cycle",
    "aquatic",
    "posture",
    "lifting",
    "heat",
    "ice",
    "clinic_visit",
)
# Questions a program can schedule like a reminder: the answer is a number, never DONE, so
# they are not actionable (no DONE credit, outside the adherence denominators) and go out
# by SMS only (an email cannot be answered with a number).
QUESTION_KINDS: tuple[str, ...] = ("pain_question", "weekly_checkin")
SYSTEM_MESSAGES: tuple[str, ...] = (
    "welcome",
    "help",
    "stop_confirm",
    "start_confirm",
    "done_ack",
    "done_nothing_open",
    "skip_ack",
    "snooze_ack",
    "snooze_too_late",
    "snooze_tomorrow",
    "pause_ack",
    "pain_ack",
    "checkin_ack",
    "out_of_range",
    "symptom_ack",
    "quit_help",
    *QUESTION_KINDS,
    "keywords",
    "unknown_sender",
    "warning_sign",
    "reengage",
    "phase_change",
    "program_complete",
    "combined",
)
# Messages that ask for a DONE reply: every reminder, and several merged into one.
ACTIONABLE_MESSAGES: tuple[str, ...] = (*REMINDER_KINDS, "combined")
# Email to clinic staff, not patients: English only, no unsubscribe footer.
STAFF_MESSAGES: tuple[str, ...] = ("clinic_alert", "clinic_digest")
# Email has no reply keywords, so only these go out by email.
EMAIL_MESSAGES: tuple[str, ...] = (
    *ACTIONABLE_MESSAGES,
    "welcome",
    "reengage",
    "stop_confirm",
    "phase_change",
    "program_complete",
    *STAFF_MESSAGES,
)

# The words the templates tell patients to reply with, per locale: the reply parser must
# accept each of them (templates_check makes sure the templates use them).
REPLY_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "done": "DONE",
        "skip": "SKIP",
        "later": "LATER",
        "pause": "PAUSE",
        "pain": "PAIN",
        "help": "HELP",
        "stop": "STOP",
        "start": "START",
    },
    "es": {
        "done": "LISTO",
        "skip": "SALTAR",
        "later": "LUEGO",
        "pause": "PAUSA",
        "pain": "DOLOR",
        "help": "AYUDA",
        "stop": "STOP",  # carriers and Twilio act on STOP whatever the language
        "start": "START",
    },
}

# The welcome (the opt-in confirmation) and the HELP answer carry what CTIA's messaging
# principles and US carriers' 10DLC campaign review look for: the program (clinic) name, the
# message frequency, this notice, HELP and STOP. They may take two segments to say it.
CARRIER_DISCLOSURE_MESSAGES: tuple[str, ...] = ("welcome", "help")
CARRIER_DISCLOSURE_SEGMENTS = 2
RATES_NOTICE: dict[str, str] = {
    "en": "Msg & data rates may apply",
    "es": "Pueden aplicar tarifas de mensajes y datos",
}

# Display names ("Stretching recorded"). Spanish avoids á í ó ú: they are not GSM-7 and one
# of them would cut an SMS from 160 characters to 70.
EXERCISE_NAMES: dict[str, dict[str, str]] = {
    "en": {
        "position_change": "position change",
        "break_planning": "break planning",
        "stretch": "stretching",
        "pelvic_tilt": "pelvic tilts",
        "leg_strength": "leg exercises",
        "walk_or_cycle": "walk or ride",
        "aquatic": "water exercise",
        "posture": "posture check",
        "lifting": "lifting tip",
        "heat": "heat",
        "ice": "ice",
        "clinic_visit": "clinic visit",
    },
    "es": {
        "position_change": "cambio de postura",
        "break_planning": "plan de pausas",
        "stretch": "estiramientos",
        "pelvic_tilt": "inclinaciones pélvicas",
        "leg_strength": "ejercicios de piernas",
        "walk_or_cycle": "paseo o bici",
        "aquatic": "ejercicio en el agua",
        "posture": "chequeo de postura",
        "lifting": "consejo para levantar peso",
        "heat": "calor",
        "ice": "hielo",
        "clinic_visit": "cita",
    },
}

# Short action phrases for ``combined`` ("time to {a}, {b} and {c}"; es: "es hora de …"),
# joined in the template with the ``join_list`` filter: ``actions | join_list("and")``.
ACTION_PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "position_change": "change position",
        "break_planning": "plan your breaks",
        "stretch": "do your stretches",
        "pelvic_tilt": "do your pelvic tilts",
        "leg_strength": "do your leg exercises",
        "walk_or_cycle": "take a short walk or ride",
        "aquatic": "do your water exercise",
        "posture": "check your posture",
        "lifting": "lift with care",
        "heat": "use a warm pack",
        "ice": "use an ice pack",
        "clinic_visit": "get ready for your visit",
    },
    "es": {
        "position_change": "cambiar de postura",
        "break_planning": "planear tus pausas",
        "stretch": "hacer tus estiramientos",
        "pelvic_tilt": "hacer inclinaciones pélvicas",
        "leg_strength": "ejercitar las piernas",
        "walk_or_cycle": "pasear o pedalear un rato",
        "aquatic": "ejercitarte en el agua",
        "posture": "revisar tu postura",
        "lifting": "levantar peso con cuidado",
        "heat": "aplicar calor",
        "ice": "aplicar hielo",
        "clinic_visit": "preparar tu cita",
    },
}

_MESSAGE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_SMS_FILE = re.compile(r"(?P<message>[a-z][a-z0-9_]*)(?:\.(?P<variant>[1-9][0-9]*))?\.txt")
_EMAIL_SUBJECT = re.compile(r"subject(?:\.(?P<variant>[1-9][0-9]*))?\.txt")


class TemplateError(Exception):
    """A template could not be rendered. ``template`` is its name under the templates folder
    (e.g. ``sms/en/stretch.txt``), ``line`` the line in it when known."""

    def __init__(self, problem: str, *, template: str | None = None, line: int | None = None):
        self.problem = problem
        self.template = template
        self.line = line
        where = f"{template}:{line}" if template and line else template
        super().__init__(f"{where}: {problem}" if where else problem)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def _join_list(items: Sequence[str], conjunction: str) -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    items = [str(item) for item in items]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def _when(moment: dt.datetime) -> str:
    """A timestamp for staff email, in the zone it was given in: "2026-11-29 23:59 CST"."""
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


def _percent(fraction: float) -> str:
    return f"{fraction:.0%}"


def _root(templates_dir: Path | None) -> Path:
    return _resolved(templates_dir or TEMPLATES_DIR)


@lru_cache(maxsize=8)
def _resolved(folder: Path) -> Path:
    """A templates folder's real path, looked up once rather than for every message (each
    lookup is a system call per path component)."""
    return folder.resolve()


def environment(templates_dir: Path | None = None) -> jinja2.Environment:
    """The Jinja environment for a templates folder (the shipped one by default), built once
    per folder."""
    return _environment(_root(templates_dir))


@lru_cache(maxsize=8)
def _environment(templates_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html",), default_for_string=False, default=False
        ),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(join_list=_join_list, when=_when, percent=_percent)
    return env


TemplateKey = tuple[str, str, str]  # (channel, locale, message)


@lru_cache(maxsize=8)
def template_index(templates_dir: Path) -> dict[TemplateKey, frozenset[int]]:
    """Which variants exist of each (channel, locale, message), read from file names once.
    Folders and locales starting with "_" hold shared layouts, not messages."""
    found: dict[TemplateKey, set[int]] = {}
    for path in (templates_dir / "sms").glob("*/*.txt"):
        match = _SMS_FILE.fullmatch(path.name)
        if match and not path.parent.name.startswith("_"):
            key = ("sms", path.parent.name, match["message"])
            found.setdefault(key, set()).add(int(match["variant"] or 0))
    for path in (templates_dir / "email").glob("*/*/subject*.txt"):
        match = _EMAIL_SUBJECT.fullmatch(path.name)
        locale, message = path.parent.parent.name, path.parent.name
        if match and not locale.startswith("_") and _MESSAGE_NAME.fullmatch(message):
            found.setdefault(("email", locale, message), set()).add(int(match["variant"] or 0))
    return {key: frozenset(variants) for key, variants in found.items()}


def clear_caches() -> None:
    """Forget environments and indexes, so that edited or added template files are read."""
    _resolved.cache_clear()
    _environment.cache_clear()
    template_index.cache_clear()


def contiguous_count(variants: frozenset[int]) -> int:
    """Variants 0, 1, … up to the first gap: a gap hides the variants after it."""
    count = 0
    while count in variants:
        count += 1
    return count


def _locale_candidates(locale: str) -> list[str]:
    tag = locale.strip().lower().replace("_", "-")
    return list(dict.fromkeys([tag, tag.split("-")[0], DEFAULT_LOCALE]))


def _locate(*, channel: str, message: str, locale: str, root: Path) -> tuple[str, int]:
    """The locale to render ``message`` in, and how many variants it has there."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
    if not _MESSAGE_NAME.fullmatch(message):  # also keeps "../" out of template paths
        raise TemplateError(f"unknown message {message!r}")
    index = template_index(root)
    for candidate in _locale_candidates(locale):
        count = contiguous_count(index.get((channel, candidate, message), frozenset()))
        if count:
            return candidate, count
    raise TemplateError(
        f"unknown {channel} message {message!r} (not in locale {locale!r} nor {DEFAULT_LOCALE!r})",
        template=template_names(channel=channel, message=message, locale=DEFAULT_LOCALE)[0],
    )


def template_names(*, channel: str, message: str, locale: str, variant: int = 0) -> list[str]:
    """The files one variant of a message is made of (SMS: one; email: subject, text, HTML)."""
    suffix = f".{variant}" if variant else ""
    if channel == "sms":
        return [f"sms/{locale}/{message}{suffix}.txt"]
    folder = f"email/{locale}/{message}"
    return [
        f"{folder}/subject{suffix}.txt",
        f"{folder}/body{suffix}.txt",
        f"{folder}/body{suffix}.html",
    ]


def variant_count(
    *, channel: str, message: str, locale: str, templates_dir: Path | None = None
) -> int:
    """How many wordings a message has (after locale fallback); rotate with ``pick_variant``."""
    return _locate(channel=channel, message=message, locale=locale, root=_root(templates_dir))[1]


def pick_variant(*, seed: int, count: int) -> int:
    """The variant to use for ``seed`` (a reminder id, or better a per-patient counter, which
    cycles through every wording in turn). Deterministic, so a retry sends the same text."""
    if count < 1:
        raise ValueError("count must be at least 1")
    return seed % count


def message_names(*, channel: str, locale: str, templates_dir: Path | None = None) -> list[str]:
    """The messages a locale has its own templates for (an unknown locale: English's)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
    index = template_index(_root(templates_dir))
    for candidate in _locale_candidates(locale):
        names = sorted(
            message
            for (chan, loc, message), variants in index.items()
            if chan == channel and loc == candidate and contiguous_count(variants)
        )
        if names:
            return names
    return []


def _localized(table: dict[str, dict[str, str]], locale: str, kinds: object) -> list[str] | None:
    """The locale's words for each of ``kinds``; None unless it is a non-empty list of known
    reminder kinds."""
    words = table.get(locale, table[DEFAULT_LOCALE])
    if isinstance(kinds, str) or not isinstance(kinds, Sequence) or not kinds:
        return None
    if not all(isinstance(kind, str) and kind in words for kind in kinds):
        return None
    return [words[kind] for kind in kinds]


def _unknown(kinds: object) -> jinja2.StrictUndefined:
    # Raises only if a template uses it: system messages may be given any ``kind``.
    return jinja2.StrictUndefined(hint=f"unknown reminder kind in {kinds!r}")


def _full_context(context: Mapping[str, object], *, locale: str, variant: int) -> dict[str, object]:
    """The caller's context plus what is derived from it: ``exercise`` from ``kind``,
    ``actions`` from ``kinds``, and the ``locale``/``variant`` being rendered."""
    full = dict(context)
    full["locale"] = locale
    full["variant"] = variant
    if "kind" in full and "exercise" not in full:
        names = _localized(EXERCISE_NAMES, locale, [full["kind"]])
        full["exercise"] = names[0] if names else _unknown(full["kind"])
    if "kinds" in full and "actions" not in full:
        actions = _localized(ACTION_PHRASES, locale, full["kinds"])
        full["actions"] = actions if actions else _unknown(full["kinds"])
    return full


def _error_location(exc: BaseException, root: Path) -> tuple[str | None, int | None]:
    """The innermost template frame of a rendering error: Jinja rewrites tracebacks so that
    template code shows as frames with the template's file name and line."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename)
        if path.is_relative_to(root) and path.suffix in {".txt", ".html"}:
            return path.relative_to(root).as_posix(), frame.lineno
    return None, None


def _render_file(name: str, context: Mapping[str, object], root: Path) -> str:
    """Render one template file; every failure becomes a TemplateError naming the file."""
    try:
        return _environment(root).get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"syntax error: {exc.message}", template=exc.name or name, line=exc.lineno
        ) from exc
    except jinja2.TemplateNotFound as exc:
        where, line = _error_location(exc, root)
        raise TemplateError(
            f"template {exc.name!r} not found", template=where or name, line=line
        ) from exc
    except TemplateError:
        raise
    except Exception as exc:  # undefined variables, but also a filter or a type error
        where, line = _error_location(exc, root)
        problem = str(exc) if isinstance(exc, jinja2.UndefinedError) else repr(exc)
        raise TemplateError(problem, template=where or name, line=line) from exc


def _prepare(
    *,
    channel: Channel,
    message: str,
    locale: str,
    context: Mapping[str, object],
    variant: int | None,
    root: Path,
) -> tuple[list[str], dict[str, object]]:
    resolved, count = _locate(channel=channel, message=message, locale=locale, root=root)
    chosen = (variant or 0) % count
    names = template_names(channel=channel, message=message, locale=resolved, variant=chosen)
    return names, _full_context(context, locale=resolved, variant=chosen)


SMS_FIRST_NAME_MAX = 20  # the templates are proven to fit one segment up to this length


def sms_first_name(name: str) -> str:
    """A first name short enough for the SMS budget: as given up to 20 characters, else its
    first word ("Maria del Carmen Alejandra" -> "Maria"), else cut to 20."""
    name = " ".join(name.split())
    if len(name) <= SMS_FIRST_NAME_MAX:
        return name
    first = re.split(r"[\s-]", name, maxsplit=1)[0]
    return first if len(first) <= SMS_FIRST_NAME_MAX else first[:SMS_FIRST_NAME_MAX]


def _fit_one_segment(text: str) -> str:
    """Fold accents GSM-7 lacks ("María" -> "Maria") only when that saves a segment: one
    such letter in a name would otherwise turn a 100-character text into two UCS-2 parts."""
    if segment_count(text) <= 1:
        return text
    folded = fold_accents(text)
    return folded if segment_count(folded) < segment_count(text) else text


def render_sms(
    *,
    message: str,
    locale: str,
    context: Mapping[str, object],
    variant: int | None = None,
    templates_dir: Path | None = None,
    fit: bool = True,
) -> str:
    """The SMS text for ``message``: rendered, normalized for GSM-7 and stripped.

    ``variant`` picks a wording (None: the first; taken modulo the variant count). A first
    name over 20 characters is shortened (``sms_first_name``): the templates are checked
    with 20. With ``fit`` (the default), accents GSM-7 lacks are dropped when that keeps the
    text in fewer segments; the template checker turns it off so templates must fit on their
    own."""
    root = _root(templates_dir)
    if isinstance(context.get("first_name"), str):
        context = {**context, "first_name": sms_first_name(str(context["first_name"]))}
    names, full = _prepare(
        channel="sms", message=message, locale=locale, context=context, variant=variant, root=root
    )
    text = normalize(_render_file(names[0], full, root)).strip()
    return _fit_one_segment(text) if fit else text


def render_email(
    *,
    message: str,
    locale: str,
    context: Mapping[str, object],
    variant: int | None = None,
    templates_dir: Path | None = None,
) -> RenderedEmail:
    """Subject, plain-text and HTML body of an email. The subject is one line whatever the
    context holds (a newline there would inject headers)."""
    root = _root(templates_dir)
    names, full = _prepare(
        channel="email", message=message, locale=locale, context=context, variant=variant, root=root
    )
    subject, text, html = (_render_file(name, full, root) for name in names)
    return RenderedEmail(subject=" ".join(subject.split()), text=text.strip() + "\n", html=html)


# Worst cases the checker renders with: the longest values a real patient or clinic has.
WORST_FIRST_NAME = "Maximiliano-Alejandr"  # SMS_FIRST_NAME_MAX characters
WORST_CLINIC_NAME = "Lakeshore Orthopedic Physical Therapy PC"  # 40 characters
WORST_CLINIC_PHONE = "+1 312-555-0100"
WORST_N = {"snooze_ack": 120, "pause_ack": 30, "pain_ack": 10, "checkin_ack": 7}
WORST_EMERGENCY_NUMBER = "112"  # every number service.replies.emergency knows has 3 digits
_WORST_AT = dt.datetime(2026, 11, 29, 23, 59, tzinfo=ZoneInfo("America/Chicago"))
# As long as a real link on a long public host name (``service.web.urls``: path + token).
_WORST_LINK = "https://ptnudge.lakeshore-orthopedic-pt.example.org/" + "x" * 98
WORST_DONE_URL = _WORST_LINK + "done"
WORST_STOP_URL = _WORST_LINK + "stop"


def _longest(table: dict[str, str], count: int) -> list[str]:
    return sorted(table, key=lambda kind: (-len(table[kind]), kind))[:count]


def _patient_row(number: int) -> dict[str, object]:
    return {"patient_id": 1_000_000 + number, "first_name": WORST_FIRST_NAME}


def _digest_context() -> dict[str, object]:
    reply = {
        "received_at": _WORST_AT,
        "text": "I can't feel my left foot since this morning & <worse>",
    }
    return {
        "period_start": (_WORST_AT - dt.timedelta(days=6)).date(),
        "period_end": _WORST_AT.date(),
        "threshold": 0.6,
        "low_adherence": [
            {**_patient_row(n), "adherence": 0.125 * n, "done": n, "sent": 8} for n in (1, 3)
        ],
        "warning_signs": [{**_patient_row(n), **reply} for n in (1, 2)],
        "free_text": [{**_patient_row(n), **reply} for n in (3, 4)],
        "opt_outs": [{**_patient_row(n), "at": _WORST_AT, "channel": "sms"} for n in (5, 6)],
        "silent": [{**_patient_row(n), "days": 30} for n in (7, 8)],
    }


def _message_context(message: str, locale: str) -> dict[str, object]:
    exercises = EXERCISE_NAMES.get(locale, EXERCISE_NAMES[DEFAULT_LOCALE])
    actions = ACTION_PHRASES.get(locale, ACTION_PHRASES[DEFAULT_LOCALE])
    if message in REMINDER_KINDS:
        return {"kind": message}
    if message in WORST_N:
        return {"n": WORST_N[message]}
    specific: dict[str, dict[str, object]] = {
        "combined": {"kinds": _longest(actions, 3)},
        "done_ack": {"kind": _longest(exercises, 1)[0]},
        "clinic_alert": {
            "patient_id": 1_234_567,
            "patients": [
                {"first_name": WORST_FIRST_NAME, "patient_id": 1_234_567 + n} for n in range(4)
            ],
            "reply_id": 123_456_789_012,
            "received_at": _WORST_AT,
            "reply_text": "Since yesterday my legs feel numb & weak <b>when</b> I walk. " * 5,
        },
        "clinic_digest": _digest_context(),
        "warning_sign": {"emergency_number": WORST_EMERGENCY_NUMBER},
        "snooze_tomorrow": {"at": _WORST_AT},
        # PAUSE's answer is the longer of the two the template holds.
        "out_of_range": {"command": "pause", "low": 1, "high": 60},
        "program_complete": {"done": 999, "sent": 999},
    }
    return specific.get(message, {})


# The keys of the common ones each message takes (default: first_name only).
_BASE_KEYS: dict[str, tuple[str, ...]] = {
    "welcome": ("first_name", "clinic_name", "per_day"),
    "help": ("clinic_name", "clinic_phone", "per_day"),
    "stop_confirm": ("clinic_name",),
    "start_confirm": ("first_name", "clinic_name"),
    "symptom_ack": ("first_name", "clinic_name"),
    "quit_help": ("clinic_name",),
    "keywords": (),
    "unknown_sender": (),
    "warning_sign": ("first_name", "clinic_phone"),
    "clinic_alert": ("first_name", "clinic_name"),
    "clinic_digest": ("clinic_name",),
}


def worst_case_context(
    message: str, *, locale: str = DEFAULT_LOCALE, channel: str = "sms"
) -> dict[str, object]:
    """The longest plausible context for ``message``: a 20-character first name, a
    40-character clinic name, the longest exercise names and action phrases of the locale.
    Holds the keys the module docstring lists for the message and no others (for email,
    ``action_links`` too), so a template using an undocumented key fails the check."""
    context: dict[str, object] = {
        "first_name": WORST_FIRST_NAME,
        "clinic_name": WORST_CLINIC_NAME,
        "clinic_phone": WORST_CLINIC_PHONE,
        "per_day": 12,
    }
    context = {key: context[key] for key in _BASE_KEYS.get(message, ("first_name",))}
    if channel == "email" and message not in STAFF_MESSAGES:
        links = {"stop_url": WORST_STOP_URL}
        if message in ACTIONABLE_MESSAGES:
            links["done_url"] = WORST_DONE_URL
        context |= {"clinic_name": WORST_CLINIC_NAME, "action_links": links}
    return context | _message_context(message, locale)
