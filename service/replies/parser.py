"""What a patient's text message means: a pure function from text to a ``Reply``.

Patients answer from phones, in a hurry, in English or Spanish: "Done!", "did it 👍",
"LISTO", "stop texting me", "pausa 3 dias", "pain 4/10", "7". Case, accents, punctuation,
spaces and emoji do not matter; the words do.

Precedence, and why:

1. **Warning signs are looked for everywhere** in the text (new numbness or weakness in the
   legs, loss of bladder or bowel control, severe or sudden pain, a fall) and set
   ``warning=True`` whatever else the message says. Missing one is the costliest mistake
   this parser can make, so matching is generous: negation is only understood in the plain
   forms ("not severe", "no numbness"); "no feeling in my legs" is a warning sign.
2. **Opting out always works.** A reply is STOP when it is a stop keyword (alone or with
   politeness around it: "Stop please", "STOP!!!", "no more"), when any sentence of it is
   ("Numbness in my legs. Stop"), or when it says so in words (FCC 2024: "stop texting me",
   "unsubscribe please", "leave me alone", "don't text me", "no me escriban"). A stop word
   that is part of a sentence about something else is not one ("I can't stop the pain",
   "the pain won't stop", "cancel my appointment").
3. A reply that is both keeps both: ``command=STOP, warning=True``; the caller opts out
   *and* alerts the clinic.
4. Otherwise a warning sign is ``WARNING``; then, on the first sentence: START, HELP,
   PAUSE n, PAIN n, a bare 0-10 number (NUMBER: only the caller knows whether a pain
   question was asked), SKIP, LATER (SNOOZE), DONE; anything else is OTHER.

``comment`` says the message holds more than its command ("Done, felt good today"): the
clinic should read it. ``exact_keyword`` is set when the whole message is exactly one of the
keywords Twilio's own opt-out handling acts on (it only acts on those), so the caller knows
whether Twilio already answered.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

MAX_CHARS = 2000  # Twilio caps a message at 1600 characters; a longer body is not real
CUT_MARK = "… [cut]"
PAUSE_DAYS = range(1, 61)
PAIN_SCALE = range(11)

# Twilio acts on a message that is exactly one of these (any case, spaces trimmed).
TWILIO_KEYWORDS = frozenset(
    {
        *("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"),
        *("START", "UNSTOP", "YES"),
        *("HELP", "INFO"),
    }
)


class Command(enum.StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"
    DONE = "done"
    SKIP = "skip"
    SNOOZE = "snooze"
    PAUSE = "pause"
    PAIN = "pain"
    NUMBER = "number"
    WARNING = "warning"
    OTHER = "other"


@dataclass(frozen=True)
class Reply:
    command: Command
    number: int | None = None  # PAUSE: days (None: missing or out of 1-60); PAIN/NUMBER: 0-10
    warning: bool = False
    comment: bool = False  # more was said than the command: the clinic should read it
    exact_keyword: str | None = None  # "STOP", "YES"…: the whole message, as Twilio sees it


# --- normalizing ---------------------------------------------------------------------------

DONE_EMOJI = frozenset("✅✔☑✓👍👌💪🆗🙌👏💯🏋🤸🧘🚶")
STOP_EMOJI = frozenset("🛑⛔🚫")
APOSTROPHES = "'’‘ʼ`´"  # noqa: RUF001 - the curly ones are exactly what phones send
CLAUSE_BREAK = re.compile(r"[.,;!?¡¿\n\r]+|\s-\s|\s+(?:but|pero)\s+")
NUMBER_WORDS = {
    **dict.fromkeys(("zero", "cero"), 0),
    **dict.fromkeys(("one", "uno", "una"), 1),
    **dict.fromkeys(("two", "dos"), 2),
    **dict.fromkeys(("three", "tres"), 3),
    **dict.fromkeys(("four", "cuatro"), 4),
    **dict.fromkeys(("five", "cinco"), 5),
    **dict.fromkeys(("six", "seis"), 6),
    **dict.fromkeys(("seven", "siete"), 7),
    **dict.fromkeys(("eight", "ocho"), 8),
    **dict.fromkeys(("nine", "nueve"), 9),
    **dict.fromkeys(("ten", "diez"), 10),
}
NUM = r"(\d{1,3}|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + ")"
# "4/10", "4 out of 10", "4 de 10": the scale says nothing the number does not.
SCALE = re.compile(r"(\d{1,2})\s*(?:/|out of|outta|of|de)\s*10\b", re.IGNORECASE)
DECIMAL = re.compile(r"\b(\d{1,2})[.,](\d)\b")
JOINED = (
    (re.compile(r"\bopt(?:ing)? ?out\b"), "optout"),
    (re.compile(r"\bstop all\b"), "stopall"),
    (re.compile(r"\bun ?subscribe\b"), "unsubscribe"),
    (re.compile(r"\bopt ?in\b"), "optin"),
)


def _fold(text: str) -> str:
    """Lower case, accents gone, emoji that mean something turned into words, apostrophes
    dropped ("don't" -> "dont"), every other symbol a space."""
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS])
    text = "".join(
        " done " if ch in DONE_EMOJI else " stop " if ch in STOP_EMOJI else ch for ch in text
    )
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.casefold()
    return "".join("" if ch in APOSTROPHES else ch for ch in text)


def _words(text: str) -> str:
    """A folded piece of text as single-spaced words (letters and digits only)."""
    spaced = "".join(ch if ch.isalnum() else " " for ch in text)
    words = " ".join(spaced.split())
    for pattern, joined in JOINED:
        words = pattern.sub(joined, words)
    return words


def _decimal(match: re.Match[str]) -> str:
    # A pain of "3.5" is recorded as 4: rounding up errs on the side of the patient.
    whole, tenth = int(match[1]), int(match[2])
    return str(whole + (1 if tenth >= 5 else 0))


def normalize(text: str) -> tuple[str, list[str]]:
    """The whole message as words, and its sentences (clauses) as words, empty ones dropped."""
    folded = SCALE.sub(r"\1", _fold(text))
    folded = DECIMAL.sub(_decimal, folded)
    clauses = [_words(part) for part in CLAUSE_BREAK.split(folded)]
    return _words(folded), [clause for clause in clauses if clause]


def _number(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return NUMBER_WORDS.get(word)


def _alternation(words: Iterable[str]) -> str:
    return "(?:" + "|".join(sorted(words, key=len, reverse=True)) + ")"


# --- warning signs -------------------------------------------------------------------------

LOWER_BODY = _alternation(
    (
        *("legs?", "thighs?", "inner thighs?", "feet", "foot", "knees?", "calf", "calves"),
        *("toes?", "groin", "buttocks?", "butt", "bottom", "crotch", "genitals?", "privates?"),
        *("private area", "private parts", "saddle", "perineum", "bum", "backside"),
        *("piernas?", "pies?", "muslos?", "rodillas?", "ingle", "entrepierna", "gluteos?"),
        *("nalgas?", "genitales?", "zona intima", "partes intimas", "pantorrillas?"),
    )
)
NUMB = _alternation(
    (
        *(r"numb\w*", "no feeling", "cant feel", "cannot feel", "can not feel", "lost feeling"),
        *("loss of feeling", "losing feeling", "lost sensation", "loss of sensation"),
        *("no sensation", r"adormec\w*", r"entumec\w*", r"entumid\w*", r"dormid[oa]s?"),
        *("sin sensibilidad", "no siento", "perdi la sensibilidad", "sin sensacion"),
    )
)
WEAK = _alternation(
    (
        *(r"weak\w*", "gave out", "gave way", "giving out", "giving way", "give out"),
        *("give way", r"buckl\w*", r"collaps\w*", "cant move", "cannot move", "can not move"),
        *("cant lift", "cannot lift", "unable to move", "wont hold me", "dont hold me"),
        *(r"debil\w*", "flojas?", "flojedad", "se me doblan", "no me responden"),
        *("no puedo mover", "no responden", "no me sostienen"),
    )
)
SEVERE = _alternation(
    (
        *("severe", "sever", "sudden", "suddenly", "unbearable", "excruciating", "extreme"),
        *("intense", "worst", "agonizing", "agonising", "intolerable", "terrible", "horrible"),
        *("horrendous", "crippling", "debilitating", "awful", "insane", "really bad", "very bad"),
        *("fuerte", "muy fuerte", "intenso", "intensa", "severo", "severa", "insoportable"),
        *("terrible", "horrible", "repentino", "repentina", "subito", "subita", "extremo"),
        *("extrema", "espantoso", "atroz", "de repente", "muy malo"),
    )
)
PAIN_WORD = r"(?:pain|pains|ache|aching|hurts?|hurting|dolor|dolores|duele)"
GAP = r"(?:\s+\w+){0,3}\s+"  # up to three words between the two halves of a phrase
NEGATED = re.compile(
    rf"\b(?:not|no|isnt|wasnt|without|nothing|none|nada|sin)\s+(?:so\s+|that\s+|too\s+|very\s+|"
    rf"as\s+|more\s+|any\s+|muy\s+|tan\s+)?(?:{SEVERE}|numb\w*|weak\w*)\b"
)
WARNING_PATTERNS = tuple(
    re.compile(pattern)
    for pattern in (
        # New numbness or weakness in the legs, or numbness where one sits ("saddle").
        rf"\b{NUMB}\b(?:\s+\w+){{0,5}}\s+{LOWER_BODY}\b",
        rf"\b{LOWER_BODY}\b(?:\s+\w+){{0,5}}\s+{NUMB}\b",
        rf"\b{WEAK}\b(?:\s+\w+){{0,5}}\s+{LOWER_BODY}\b",
        rf"\b{LOWER_BODY}\b(?:\s+\w+){{0,5}}\s+{WEAK}\b",
        r"\b(?:foot drop|drop foot|dragging my (?:foot|leg)|arrastro (?:el pie|la pierna))\b",
        # Loss of bladder or bowel control.
        r"\bincontinen\w*",
        r"\b(?:lost|losing|lose|loss|no|cant|cannot|can not)(?:\s+\w+){0,3}\s+"
        r"(?:bladder|bowels?)\b",
        r"\b(?:bladder|bowels?)(?:\s+\w+){0,2}\s+(?:control|accidents?|leak\w*|problems?|issues?)\b",
        r"\b(?:cant|cannot|can not|unable to|trouble|difficulty|hard to|struggling to|problems?)"
        r"(?:\s+\w+){0,2}\s+(?:pee|peeing|urinat\w*|pass urine|poop|pooping|hold (?:it|my pee))\b",
        r"\b(?:wet|wetting|peed|pooped|soiled|pissed|messed|shit)\s+(?:myself|my self|my pants|"
        r"the bed|my bed)\b",
        r"\bhad an accident\b",
        r"\bleak\w*\s+(?:urine|pee)\b",
        r"\bno puedo (?:orinar|hacer pipi|hacer del bano|evacuar|defecar|retener)\b",
        r"\b(?:perdi|pierdo|perdida de|perdida del)\s+(?:el\s+)?control\b",
        r"\bme (?:orine|hice pipi|hice popo|hice encima)\b",
        r"\bdificultad (?:para|al) orinar\b",
        # Severe or sudden pain.
        rf"\b{SEVERE}{GAP}{PAIN_WORD}\b",
        rf"\b{SEVERE}\s+{PAIN_WORD}\b",
        rf"\b{PAIN_WORD}{GAP}{SEVERE}\b",
        rf"\b{PAIN_WORD}\s+{SEVERE}\b",
        # Falls.
        r"\bfell\b(?!\s+(?:asleep|behind|for|apart|through|short|in love|off the wagon|out of))",
        r"\bfallen\b(?!\s+(?:asleep|behind|apart|through|off the wagon))",
        r"\b(?:had|took|have had|suffered)\s+a\s+(?:\w+\s+)?(?:fall|tumble|spill)\b",
        r"\b(?:keep|kept|been|i am|im)\s+falling\b(?!\s+(?:asleep|behind|apart))",
        r"\bfalling down\b",
        r"\bme (?:cai|he caido|caigo)\b",
        r"\b(?:una|la|tuve|sufri)\s+caida\b",
    )
)


def has_warning_sign(words: str) -> bool:
    """Whether normalized words mention a warning sign (see the module docstring)."""
    plain = NEGATED.sub(" ", words)
    return any(pattern.search(plain) for pattern in WARNING_PATTERNS)


# --- opting out ----------------------------------------------------------------------------

STOP_WORDS = _alternation(
    (
        *("s+t+o+p+", "stpo", "sotp", "stp", "stopall", "unsubscribe", "unsub", "cancel"),
        *("end", "quit", "optout", "revoke", "enough", "remove me", "leave me alone", "no more"),
        *("parar", "para", "pare", "paren", "basta", "ya basta", "cancelar", "alto", "detener"),
        *("baja", "darme de baja", "dame de baja", "denme de baja", "no mas", "ya no", "fin"),
        *("go away", "desuscribir", "desuscribirme"),
    )
)
POLITE_BEFORE = (
    r"(?:(?:please|pls|plz|plez|ok|okay|yes|no|just|now|so|hey|hi|hello|i|por favor)\s+)*"
)
ASKING = (
    r"(?:(?:can|could|would|will)\s+(?:you|u|ya)\s+(?:please\s+|pls\s+)?)?"
    r"(?:(?:i\s+)?(?:want|wanna|would like|id like|need)\s+(?:to\s+)?)?"
    r"(?:(?:quiero|me gustaria|favor de)\s+)?"
)
POLITE_AFTER = _alternation(
    (
        *("please", "pls", "plz", "now", "thanks", "thank you", "thank u", "thx", "ty", "it"),
        *("all", "right now", "right away", "immediately", "asap", "already", "this", "that"),
        *("ok", "okay", "sir", "them", "forever", "everything", "for good", "permanently"),
        *("me", "por favor", "gracias", "ya", "ahora", "todo", "ahora mismo"),
        *("texts?", "messages?", "msgs?", "sms", "texting", "messaging", "mensajes", "textos"),
    )
)
STOP_CLAUSE = re.compile(
    rf"{POLITE_BEFORE}{ASKING}{STOP_WORDS}(?:\s+{STOP_WORDS})*(?:\s+{POLITE_AFTER})*"
)
# "Please don't stop the reminders" asks for the opposite.
NOT_NEGATED = r"(?<!dont )(?<!do not )(?<!never )(?<!wont )(?<!will not )"
MESSAGES = r"(?:texts?|txts?|messages?|msgs?|sms|reminders?|nudges?|notifications?|alerts?|emails?)"
STOP_PHRASES = tuple(
    re.compile(pattern)
    for pattern in (
        r"\b(?:unsubscribe|unsub|optout|stopall)\b",
        rf"{NOT_NEGATED}\b(?:stop|quit|cease|end)\s+(?:texting|txting|messaging|sending|contacting|emailing|"
        r"bugging|bothering|spamming|reminding)\b",
        rf"{NOT_NEGATED}\b(?:stop|quit|end|cancel|cease)\s+(?:(?:all|the|these|those|your|this|my|any)\s+)*"
        rf"(?:{MESSAGES}|subscription)\b",
        r"\b(?:dont|do not|never|no longer|please dont)\s+(?:\w+\s+)?(?:text|txt|message|msg|send|"
        r"contact|email|sms|remind)\s+(?:me|us|this number|here|anymore|any more|again)\b",
        rf"\bno more\s+(?:\w+\s+)?{MESSAGES}\b",
        rf"\b(?:dont|do not|no longer)\s+want\s+(?:(?:any|anymore|more|these|the|your|this)\s+)*"
        rf"{MESSAGES}\b",
        r"\b(?:remove|delete|take)\s+(?:me|my number|this number)\s+(?:from|off)\b",
        r"\bleave me alone\b",
        r"\bwrong number\b",
        r"\bnot interested\b",
        r"\brevoke\b",
        r"\bno me (?:escriba|escribas|escriban|envie|envies|envien|mande|mandes|manden|contacte|"
        r"contactes|contacten|moleste|molestes|molesten)\b",
        r"\b(?:deja|dejen|deje|dejar)\s+de\s+(?:escribir|enviar|mandar|molestar|contactar)",
        r"\b(?:darme|dame|denme|deme)\s+de\s+baja\b",
        r"\bno mas\s+(?:mensajes|textos|recordatorios|sms)\b",
        r"\b(?:ya\s+)?no\s+quiero\s+(?:mas\s+)?(?:mensajes|textos|recordatorios)\b",
        r"\bnumero equivocado\b",
    )
)


def is_opt_out(words: str, clauses: list[str]) -> bool:
    """Whether the person asks for no more messages (see the module docstring)."""
    if any(STOP_CLAUSE.fullmatch(clause) for clause in clauses):
        return True
    return any(pattern.search(words) for pattern in STOP_PHRASES)


# --- the other commands --------------------------------------------------------------------

FILLER_WORDS = (
    *("please", "pls", "plz", "thanks", "thank you", "thank u", "thx", "ty", "ok", "okay"),
    *("now", "today", "again", "too", "also", "sorry", "gracias", "por favor", "hoy", "ya"),
    *("lol", "haha", "hi", "hey", "hello", "hola", "coach", "doc", "ahora"),
)
FILLER = _alternation(FILLER_WORDS)


def _clause(core: str) -> re.Pattern[str]:
    return re.compile(rf"(?:{FILLER}\s+)*(?:{core})(?:\s+{FILLER})*")


START_CLAUSE = _clause(
    r"start|unstop|restart|start again|subscribe|optin|comenzar|iniciar|empezar|"
    r"start (?:texting|sending|messages|texts)(?: me)?(?: again)?"
)
HELP_CLAUSE = _clause(
    r"help|help me|info|information|ayuda|ayudame|informacion|what is this|whats this|"
    r"who is this|whos this|who are you|que es esto|quien es|quien eres|quienes son"
)
PAUSE_CLAUSE = re.compile(
    rf"(?:(?:please|pls)\s+)?(?:pause|pausa|pausar|pausen|pausame|pause me|hold)"
    rf"(?:\s+(?:for|por|me|messages|mensajes|texts|reminders|recordatorios|it|them|los|"
    rf"del|de))*(?:\s+{NUM})?(?:\s+(?P<unit>days?|d|dias?|weeks?|wks?|w|semanas?))?"
    rf"(?:\s+{FILLER})*"
)
PAIN_FIRST = re.compile(
    rf"(?:my\s+|mi\s+)?(?:pain|dolor)(?:\s+(?:is|level|score|now|today|at|es|de|hoy|nivel|a|"
    rf"about|around|like|its|esta|en|rating|of))*\s+{NUM}(?:\s+\w+){{0,6}}"
)
PAIN_LAST = re.compile(rf"{NUM}\s+(?:pain|dolor)(?:\s+\w+){{0,4}}")
BARE_NUMBER = re.compile(
    rf"(?:(?:its|it is|i am|im|about|around|maybe|like|a|es|como|un|una|pain|is|score)\s+)*"
    rf"{NUM}(?:\s+{FILLER})*"
)
SKIP_CLAUSE = _clause(
    r"skip|skipped|skipping|skp|skip (?:it|this|this one|that|that one|this time|it today)|"
    r"saltar|salto|salte|saltare|pass|paso|no|nope|nah|not today|no time|hoy no|no hoy|"
    r"no puedo|no puedo hoy|no pude|no lo hice|no lo hare|not this time|no gracias|"
    r"(?:i )?(?:cant|cannot|couldnt|didnt|did not|wont|will not)(?: do it| make it)?(?: today)?|"
    r"(?:i )?(?:didnt|did not|havent|have not|not) (?:done|do|did)(?: it| them| that| any)?"
)
SNOOZE_CLAUSE = _clause(
    r"(?:remind me |recuerdame )?(?:later|l8r|ltr|snooze|in a bit|in a while|in a few|"
    r"in a minute|in a min|in 30|in 30 min|in 30 minutes|in half an hour|after|afterwards|"
    r"not now|not right now|busy|im busy|later today|mas tarde|despues|luego|en un rato|"
    r"ahorita no|ahora no|al rato|ahorita|give me 30|give me a bit|one sec|un momento|"
    r"not yet|not done yet|todavia no|aun no|no todavia)"
)
DONE_WORDS = (
    *("done", "did", "finished", "finish", "completed", "complete", "dun", "doen", "dne"),
    *("donee", "d0ne", "donr", "donw", "dobe", "dome", "finito", "listo", "lista"),
    *("listos", "listas", "hecho", "hecha", "hechos", "terminado", "terminada", "termine"),
    *("terminamos", "completado", "completada", "hice", "acabe"),
)
AFFIRMATIVES = ("yes", "yep", "yup", "yeah", "ya", "y", "si", "ok", "okay", "k", "kk", "sure")
# Words that may stand around a DONE without changing it ("yes I did my stretches today").
DONE_COMPANIONS = (
    *("i", "it", "them", "that", "this", "those", "these", "my", "the", "all", "just"),
    *("already", "with", "for", "of", "and", "a", "one", "tonight", "morning", "afternoon"),
    *("evening", r"exercises?", r"stretch\w*", "walk", "walking", r"tilts?", "routine"),
    *(r"sets?", "reps", "workout", "program", "session", "position", "posture", "heat", "ice"),
    *("break", "lo", "la", "los", "las", "mis", "el", "todo", "todos", r"ejercicios?"),
    *(r"estiramientos?", "con", "good", "great", "perfect", "well", "woo", "yay", "de"),
)
DONE_WORD = _alternation(DONE_WORDS)
# One alternation over distinct words: two alternatives matching the same word inside a
# repetition would make a failing match backtrack exponentially ("ok ok ok … x").
DONE_OTHER = _alternation(set(DONE_COMPANIONS) | set(AFFIRMATIVES) | set(FILLER_WORDS))
DONE_CLAUSE = re.compile(rf"(?:{DONE_OTHER}\s+)*{DONE_WORD}(?:\s+(?:{DONE_OTHER}|{DONE_WORD}))*")
AFFIRMATIVE = _alternation(AFFIRMATIVES)
YES_CLAUSE = _clause(rf"{AFFIRMATIVE}(?:\s+{AFFIRMATIVE})*")
ONLY_FILLER = re.compile(rf"{FILLER}(?:\s+{FILLER})*")


def _in_range(value: int | None, allowed: range) -> int | None:
    return value if value is not None and value in allowed else None


def _pause_days(match: re.Match[str]) -> int | None:
    amount = _number(match[1]) if match[1] else None
    if amount is None:
        return None
    unit = match["unit"] or "d"
    days = amount * 7 if unit[0] in "ws" else amount
    return _in_range(days, PAUSE_DAYS)


def _classify(clause: str) -> Reply | None:
    """The command one clause gives, or None when it is not one."""
    if START_CLAUSE.fullmatch(clause):
        return Reply(Command.START)
    if HELP_CLAUSE.fullmatch(clause):
        return Reply(Command.HELP)
    if match := PAUSE_CLAUSE.fullmatch(clause):
        return Reply(Command.PAUSE, number=_pause_days(match))
    if (match := PAIN_FIRST.fullmatch(clause)) or (match := PAIN_LAST.fullmatch(clause)):
        score = _in_range(_number(match[1]), PAIN_SCALE)
        return Reply(Command.PAIN, number=score) if score is not None else None
    if match := BARE_NUMBER.fullmatch(clause):
        score = _in_range(_number(match[1]), PAIN_SCALE)
        return Reply(Command.NUMBER, number=score) if score is not None else None
    return _classify_answer(clause)


def _classify_answer(clause: str) -> Reply | None:
    # SKIP before DONE: "didnt do it" holds "do" and "it" but is no DONE.
    if SKIP_CLAUSE.fullmatch(clause):
        return Reply(Command.SKIP)
    if SNOOZE_CLAUSE.fullmatch(clause):
        return Reply(Command.SNOOZE)
    if DONE_CLAUSE.fullmatch(clause) or YES_CLAUSE.fullmatch(clause):
        return Reply(Command.DONE)
    return None


def _has_comment(first: Reply, rest: list[str]) -> bool:
    """Whether clauses after the first say something beyond repeating its command."""
    for clause in rest:
        if ONLY_FILLER.fullmatch(clause):
            continue
        again = _classify(clause)
        if again is None or again.command is not first.command:
            return True
    return False


def _exact_keyword(text: str) -> str | None:
    word = text.strip().upper()
    return word if word in TWILIO_KEYWORDS else None


def clip(text: str) -> str:
    """The text as stored for the clinic: at most MAX_CHARS characters, the end marked when
    something was cut (a webhook can carry megabytes; no phone sends them)."""
    if len(text) <= MAX_CHARS:
        return text
    return text[: MAX_CHARS - len(CUT_MARK)] + CUT_MARK


def parse_reply(text: str) -> Reply:
    """What the message asks for. Never raises, whatever the text."""
    words, clauses = normalize(text)
    warning = has_warning_sign(words)
    keyword = _exact_keyword(text)
    if is_opt_out(words, clauses):
        return Reply(Command.STOP, warning=warning, exact_keyword=keyword)
    if warning:
        return Reply(Command.WARNING, warning=True, comment=True, exact_keyword=keyword)
    if not clauses:
        # "?" alone asks what this is; an empty message (a picture) says nothing.
        return Reply(Command.HELP if "?" in text else Command.OTHER, exact_keyword=keyword)
    first = _classify(clauses[0])
    if first is None:
        # The whole message may be a command its punctuation split ("pain: 5, maybe 6").
        whole = _classify(words)
        if whole is None:
            return Reply(Command.OTHER, comment=True, exact_keyword=keyword)
        return Reply(whole.command, number=whole.number, exact_keyword=keyword)
    return Reply(
        first.command,
        number=first.number,
        comment=_has_comment(first, clauses[1:]),
        exact_keyword=keyword,
    )
