"""What a patient's text message means: a pure function from text to a ``Reply``.

Patients answer from phones, in a hurry, in English or Spanish: "Done!", "did it 👍",
"LISTO", "stop texting me", "pausa 3 dias", "pain 4/10", "7". Case, accents, punctuation,
spaces and emoji do not matter; the words do.

Precedence, and why:

1. **Red flags are looked for everywhere** in the text (``service.replies.red_flags``, whose
   docstring names the published lists they come from: NICE CKS "Sciatica (lumbar
   radiculopathy)" and "Low back pain", the NHS England GIRFT cauda equina syndrome pathway,
   NASS and AAOS patient information on lumbar spinal stenosis, MedlinePlus en espanol):
   saddle numbness, new bladder or bowel trouble, new or worsening leg numbness or
   weakness, legs giving way, a fall, severe pain nothing relieves. They set ``red_flag``
   whatever else the message says. Other people's falls, idioms, negations and the
   patient's usual symptoms are not red flags.
2. **Opting out always works.** A reply is STOP when it is a stop keyword (alone or with
   politeness around it: "Stop please", "STOP!!!", "no more"), when any sentence of it is
   ("Numbness in my legs. Stop"), or when it says so in words (FCC 2024: "stop texting me",
   "unsubscribe please", "leave me alone", "don't text me", "no me escriban"). A stop word
   that is part of a sentence about something else is not one ("I can't stop the pain",
   "the pain won't stop", "cancel my appointment").
3. A reply that is both keeps both: ``command=STOP`` with a ``red_flag``; the caller opts
   out *and* alerts the clinic.
4. Otherwise a red flag is ``WARNING``. A wish to leave the *program* in other words ("I
   want to quit the program", "I'm done with this program") is QUIT_HELP: the answer says
   how to stop; nobody is opted out on a paraphrase that may mean the exercises.
5. Then, on the first sentence (past a greeting or an "ok" that leads into a command):
   START, HELP, PAUSE n, PAIN n, a bare number (NUMBER: only the caller knows whether a
   question was asked and what range it takes; past 0-10 it has ``error`` set), SKIP,
   LATER (SNOOZE, with a ``delay`` when the text gives one), DONE, ACK (an
   acknowledgement: "ok", "yes", "👍 thanks"; never credit for an exercise). A PAUSE or
   PAIN whose number is negative or out of range has ``error`` set (the answer states
   the range) and no ``number``.
6. A message with no command that mentions a symptom ("tingling in my feet", "hurts a lot
   today") is SYMPTOM: flagged for the clinic, nothing paused. Anything else is OTHER.

``comment`` says the message holds more than its command ("Done, felt good today"): the
clinic should read it. ``exact_keyword`` is set when the whole message is exactly one of the
keywords Twilio's own opt-out handling acts on (it only acts on those), so the caller knows
whether Twilio already answered.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from service.replies.red_flags import RedFlag, has_symptom, red_flag

MAX_CHARS = 2000  # Twilio caps a message at 1600 characters; a longer body is not real
CUT_MARK = "… [cut]"
PAUSE_DAYS = range(1, 61)
PAIN_SCALE = range(11)
LATER_MINUTES = range(1, 12 * 60 + 1)  # "in 2 hours" is a delay; "in 3 days" is a pause

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
    ACK = "ack"  # "ok", "yes", "thanks", "👍": heard, nothing done, nothing to answer
    SKIP = "skip"
    SNOOZE = "snooze"  # LATER
    PAUSE = "pause"
    PAIN = "pain"
    NUMBER = "number"
    CHECKIN = "checkin"  # recorded only: a bare number answering a weekly check-in
    WARNING = "warning"  # a red flag: pause and alert the clinic at once
    SYMPTOM = "symptom"  # an ordinary symptom: for the clinic to read, nothing paused
    QUIT_HELP = "quit_help"  # leaving the program in other words: answer how to stop
    OTHER = "other"


class LaterKind(enum.StrEnum):
    MINUTES = "minutes"  # "in an hour", "en 20 minutos"
    NEXT_MORNING = "next_morning"  # "tomorrow", "manana": the start of the next waking window


@dataclass(frozen=True)
class Later:
    """When LATER asks to be reminded; the handler resolves NEXT_MORNING with the patient's
    time zone and waking window."""

    kind: LaterKind
    minutes: int | None = None  # MINUTES only

    @property
    def label(self) -> str:
        return str(self.minutes) if self.kind is LaterKind.MINUTES else self.kind.value


@dataclass(frozen=True)
class OutOfRange:
    """A number the command cannot take ("PAUSE -1", "PAIN 11"): tell the patient the range."""

    given: int
    allowed: range

    @property
    def low(self) -> int:
        return self.allowed.start

    @property
    def high(self) -> int:
        return self.allowed.stop - 1


@dataclass(frozen=True)
class Reply:
    command: Command
    number: int | None = None  # PAUSE: days (1-60); PAIN/NUMBER: 0-10; None: missing or refused
    red_flag: RedFlag | None = None  # which red flag (WARNING, or STOP with one)
    symptom: bool = False  # an ordinary symptom is mentioned: the clinic should read it
    delay: Later | None = None  # SNOOZE with a time given; None: the usual delay
    error: OutOfRange | None = None  # PAUSE/PAIN with a number out of range
    comment: bool = False  # more was said than the command: the clinic should read it
    exact_keyword: str | None = None  # "STOP", "YES"…: the whole message, as Twilio sees it

    @property
    def warning(self) -> bool:
        """A red flag: pause the patient and alert the clinic, whatever the command."""
        return self.red_flag is not None

    @property
    def reading(self) -> str:
        """The reading in one word, with its detail: "done", "pause:7", "snooze:60",
        "pain:out_of_range", "stop+warning" (the labels of tests/data/replies_corpus.tsv)."""
        if self.command is Command.STOP and self.warning:
            return "stop+warning"
        detail = self._detail()
        return f"{self.command.value}:{detail}" if detail else self.command.value

    def _detail(self) -> str | None:
        if self.error is not None:
            return "out_of_range"
        if self.number is not None:
            return str(self.number)
        return self.delay.label if self.delay is not None else None


# --- normalizing ---------------------------------------------------------------------------

DONE_EMOJI = frozenset("✅✔☑✓💪🏋🤸🧘🚶")
ACK_EMOJI = frozenset("👍👌🆗🙏🙌👏💯🤙")
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
NUM = r"(\d{1,6}|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + ")"
# "4/10", "4 out of 10", "4 de 10": the scale says nothing the number does not.
SCALE = re.compile(r"(\d{1,2})\s*(?:/|out of|outta|of|de)\s*10\b", re.IGNORECASE)
DECIMAL = re.compile(r"\b(\d{1,2})[.,](\d)\b")
# A sign in front of a number ("PAUSE -1") is kept as a word, so that it can be refused.
MINUS = re.compile(r"(?<![\w.])[-−–](?=\d)")  # noqa: RUF001 - the dashes phones send
JOINED = (
    (re.compile(r"\bopt(?:ing)? ?out\b"), "optout"),
    (re.compile(r"\bstop all\b"), "stopall"),
    (re.compile(r"\bun ?subscribe\b"), "unsubscribe"),
    (re.compile(r"\bopt ?in\b"), "optin"),
)


def _emoji_word(ch: str) -> str:
    if ch in DONE_EMOJI:
        return " done "
    if ch in ACK_EMOJI:
        return " ok "
    return " stop " if ch in STOP_EMOJI else ch


def _fold(text: str) -> str:
    """Lower case, accents gone, emoji that mean something turned into words, apostrophes
    dropped ("don't" -> "dont"), every other symbol a space."""
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS])
    text = "".join(_emoji_word(ch) for ch in text)
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
    folded = MINUS.sub(" minus ", DECIMAL.sub(_decimal, folded))
    clauses = [_words(part) for part in CLAUSE_BREAK.split(folded)]
    return _words(folded), [clause for clause in clauses if clause]


def _number(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return NUMBER_WORDS.get(word)


def _alternation(words: Iterable[str]) -> str:
    return "(?:" + "|".join(sorted(set(words), key=len, reverse=True)) + ")"


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
        r"\b(?:remove|delete)\s+(?:my|this)\s+(?:phone\s+)?number$",
        r"\bleave me alone\b",
        r"\bwrong number\b",
        r"\bnot interested\b",
        r"\brevoke\b",
        r"\bno me (?:escriba|escribas|escriban|envie|envies|envien|mande|mandes|manden|contacte|"
        r"contactes|contacten|moleste|molestes|molesten)\b",
        r"\b(?:deja|dejen|deje|dejar)\s+de\s+(?:escribir|enviar|mandar|molestar|contactar|recibir)",
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


# --- leaving the program in other words -------------------------------------------------

PROGRAM = r"(?:program|programme|programa|therapy|terapia|pt|home program)"
QUIT_WISH = tuple(
    re.compile(pattern)
    for pattern in (
        r"\b(?:quit|quitting|leave|leaving|exit|drop out of|dropping out of|get out of|"
        r"withdraw from|unenroll from|through with)\s+(?:(?:this|the|my|these|your|whole)\s+)*"
        rf"(?:{PROGRAM}|exercises?|routine)\b",
        r"\b(?:done with|finished with|cancel|end|stop)\s+(?:(?:this|the|my|your|whole)\s+)*"
        rf"{PROGRAM}\b",
        r"\b(?:i give up|im giving up|i am giving up|i want out|i wanna quit|i want to quit)\b",
        r"\bi\s+(?:dont|do not|no longer)\s+(?:want|wanna)\s+(?:to\s+)?(?:do this|do these|do it|"
        r"continue|keep going|keep doing|be in)\b",
        r"\b(?:can|could|may|how do|how can)\s+i\s+(?:quit|leave the program|drop out|unenroll)\b",
        r"\b(?:quiero|quisiera|me quiero|voy a)\s+(?:dejar|salir\w*|abandonar|retirar\w*)\b",
        r"\b(?:ya\s+)?no\s+quiero\s+(?:hacer|seguir|continuar)\b",
        r"\b(?:me rindo|me salgo del programa)\b",
    )
)


def is_quit_wish(words: str) -> bool:
    """Whether the person says, in other words than STOP, that they want to leave."""
    return any(pattern.search(words) for pattern in QUIT_WISH)


# --- the other commands --------------------------------------------------------------------

FILLER_WORDS = (
    *("please", "pls", "plz", "thanks", "thank you", "thank u", "thx", "ty", "ok", "okay"),
    *("now", "today", "again", "too", "also", "sorry", "gracias", "por favor", "hoy", "ya"),
    *("lol", "haha", "hi", "hey", "hello", "hola", "coach", "doc", "ahora"),
)
FILLER = _alternation(FILLER_WORDS)
GREETING = re.compile(
    rf"(?:{FILLER}\s+)*(?:hi|hello|hey|hola|good morning|good afternoon|good evening|morning|"
    rf"buenos dias|buenas tardes|buenas noches|buenas|buen dia)(?:\s+{FILLER})*"
)


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
SIGNED = rf"(?:(?P<minus>minus)\s+)?{NUM}"
PAUSE_CLAUSE = re.compile(
    rf"(?:(?:please|pls)\s+)?(?:pause|pausa|pausar|pausen|pausame|pause me|hold)"
    rf"(?:\s+(?:for|por|me|messages|mensajes|texts|reminders|recordatorios|it|them|los|"
    rf"del|de))*(?:\s+(?:{SIGNED}|(?P<one>a|an|una|un)))?"
    rf"(?:\s+(?P<unit>days?|d|dias?|weeks?|wks?|wk|w|semanas?))?(?:\s+{FILLER})*"
)
PAIN_FIRST = re.compile(
    rf"(?:my\s+|mi\s+)?(?:pain|dolor)(?:\s+(?:is|level|score|now|today|at|es|de|hoy|nivel|a|"
    rf"about|around|like|its|esta|en|rating|of))*\s+{SIGNED}(?:\s+\w+){{0,6}}"
)
PAIN_LAST = re.compile(rf"{SIGNED}\s+(?:pain|dolor)(?:\s+\w+){{0,4}}")
BARE_NUMBER = re.compile(
    rf"(?:(?:its|it is|i am|im|about|around|maybe|like|a|es|como|un|una|pain|is|score)\s+)*"
    rf"{NUM}(?:\s+{FILLER})*"
)

SKIP_CORE = (
    *("skip", "skipped", "skipping", "skp", "skipd", "skiped", "skiping", "skipt"),
    *("going to skip", "gonna skip", "have to skip", "will skip", "ill skip", "need to skip"),
    *("forgot", "forget", "forgot to do it", "missed", "missed it", "miss", "olvide", "olvidé"),
    *("se me olvido", "me olvide", "lo olvide", "se me paso", "saltar", "salto", "salte"),
    *("saltare", "pass", "paso", "no", "nope", "nah", "not today", "no time", "hoy no"),
    *("no hoy", "no puedo", "no puedo hoy", "hoy no puedo", "no pude", "no lo hice"),
    *("no los hice", "no lo hare", "not this time", "no gracias", "didnt get to it"),
    *("didnt get to them", "didnt have time", "didnt have the time", "no tuve tiempo"),
    *("cant", "cannot", "couldnt", "didnt", "did not", "wont", "will not", "cant do it"),
    *("couldnt do it", "couldnt do them", "cant make it", "wont do it", "didnt do it"),
    *("didnt do them", "did not do it", "did not do them", "havent done", "have not done"),
    *("not done", "didnt do", "havent done it", "not doing it", "not doing them"),
)
SKIP_TAIL = (
    *("it", "this", "that", "one", "them", "this one", "that one", "this time", "tonight"),
    *("to do it", "to do them", "hacerlo", "hacerlos", "hacerla", "time", "any", "that"),
    *("oops", "so", "i", "im", "today", "sorry", "yesterday", "ayer", "lo siento"),
)
SKIP_WORD = _alternation((*SKIP_CORE, *SKIP_TAIL, *FILLER_WORDS))
SKIP_CLAUSE = re.compile(
    rf"(?:(?:{FILLER}|oops|i|im|so)\s+)*{_alternation(SKIP_CORE)}(?:\s+{SKIP_WORD})*"
)

LATER_LEAD = _alternation(
    (
        *("remind me", "recuerdame", "can you remind me", "could you remind me", "ill do it"),
        *("ill do them", "i will do it", "will do it", "will do", "ill", "i will", "do it"),
        *("lo hago", "lo hare", "los hago", "maybe", "probably", "text me", "ask me"),
        *("ill do it", "i can do it", "i ll do it", "im busy", "recuerdamelo"),
        *(FILLER_WORDS),
    )
)
LATER_WORDS = _alternation(
    (
        *("later", "l8r", "ltr", "latr", "snooze", "in a bit", "in a while", "in a few"),
        *("in a minute", "in a min", "after", "afterwards", "not now", "not right now"),
        *("busy", "later today", "later tonight", "tonight", "this evening", "after lunch"),
        *("after dinner", "after work", "mas tarde", "despues", "luego", "en un rato"),
        *("ahorita no", "ahora no", "al rato", "ahorita", "un momento", "one sec", "not yet"),
        *("not done yet", "todavia no", "aun no", "no todavia", "at work", "busy at work"),
        *("driving", "in a meeting", "esta noche", "en la tarde", "trabajando", "manejando"),
        *("ocupado", "ocupada", r"in \d+", "give me a bit", "give me a minute"),
        *(r"after (?:my|the) \w+", r"despues de(?:l)? \w+", r"cuando (?:vuelva|llegue|termine)"),
    )
)
HOURS = r"(?:hours?|hrs?|h|horas?)"
MINUTES = r"(?:minutes?|mins?|min|m|minutos?)"
IN_TIME = re.compile(
    rf"(?:in|en|give me|dame|wait)\s+(?:(?P<half>half an?|media)|{NUM}|(?P<one>a|an|una|un))"
    rf"\s+(?:(?P<hours>{HOURS})|{MINUTES})"
)
NEXT_MORNING = _alternation(
    (
        *("tomorrow", "tmrw", "tmr", "tomorow", "tommorow", "tommorrow", "tomorrow morning"),
        *("first thing tomorrow", "in the morning", "manana", "manana temprano"),
        *("manana por la manana", "tomorrow am", "in the am", "tmrw morning"),
    )
)
LATER_TAIL = _alternation(
    (
        *FILLER_WORDS,
        *("lo hago", "los hago", "i promise", "ok", "then", "instead", "pls", "sorry"),
    )
)
SNOOZE_CLAUSE = re.compile(
    rf"(?:{LATER_LEAD}\s+)*(?:(?P<time>{IN_TIME.pattern})|(?P<morning>{NEXT_MORNING})|"
    rf"{LATER_WORDS})(?:\s+{LATER_TAIL})*"
)

DONE_WORDS = (
    *("done", "did", "finished", "finish", "completed", "complete", "dun", "doen", "dne"),
    *("donee", "d0ne", "donr", "donw", "dobe", "dnoe", "odne", "finito", "listo", "lista"),
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
    *("em", "both", "day", "set", r"\d{1,2}", "am", "pm", "too", "done", "right", "now", "w"),
)
DONE_WORD = _alternation(DONE_WORDS)
# One alternation over distinct words: two alternatives matching the same word inside a
# repetition would make a failing match backtrack exponentially ("ok ok ok … x").
DONE_OTHER = _alternation(set(DONE_COMPANIONS) | set(AFFIRMATIVES) | set(FILLER_WORDS))
DONE_CLAUSE = re.compile(rf"(?:{DONE_OTHER}\s+)*{DONE_WORD}(?:\s+(?:{DONE_OTHER}|{DONE_WORD}))*")
# "Did my walk around the block": a DONE and what was done, in the patient's own words.
DONE_LEAD = re.compile(
    r"(?:(?:yes|yep|ok|okay|i|just|already|ya|si|and|also)\s+)*"
    r"(?:did|finished|completed|done|hice|termine|acabe|complete)\s+"
    r"(?:my|the|all|both|mis|los|las|el|la|them|todos?)\b"
)
ACK_CLAUSE = _clause(
    _alternation(
        (
            *AFFIRMATIVES,
            *("thanks", "thank you", "thank you so much", "thank u", "thx", "ty", "tysm"),
            *("got it", "will do", "sounds good", "noted", "cool", "great", "perfect", "nice"),
            *("on it", "okie dokie", "okey", "okie", "ok i will", "i will", "alright"),
            *("all right", "roger", "understood", "good", "great thanks", "vale", "claro"),
            *("de acuerdo", "entendido", "gracias", "muchas gracias", "perfecto", "bueno"),
            *("okay thank you", "ok thank you", "si gracias", "mil gracias", "ok ok", "gotcha"),
            *("thanks for the reminder", "thanks for the reminders", "yes maam", "yes sir"),
            *("de nada", "gracias por el recordatorio", "gracias por recordarme"),
        )
    )
)
ONLY_FILLER = re.compile(rf"{FILLER}(?:\s+{FILLER})*")


def _out_of_range(value: int, allowed: range) -> Reply | None:
    return None if value in allowed else Reply(Command.OTHER, error=OutOfRange(value, allowed))


def _checked(command: Command, value: int | None, allowed: range, *, minus: bool) -> Reply:
    """The command with its number, or with ``error`` when the number is signed or out of
    range (the patient is told the range; "PAUSE -1" never pauses for a day)."""
    if value is None:
        return Reply(command)
    given = -value if minus else value
    if minus or given not in allowed:
        return Reply(command, error=OutOfRange(given, allowed))
    return Reply(command, number=given)


def _pause(match: re.Match[str]) -> Reply:
    unit = match["unit"]
    amount = _number(match[2]) if match[2] else (1 if match["one"] and unit else None)
    days = amount * 7 if amount is not None and unit and unit[0] in "ws" else amount
    return _checked(Command.PAUSE, days, PAUSE_DAYS, minus=bool(match["minus"]))


def _pain(match: re.Match[str]) -> Reply:
    return _checked(Command.PAIN, _number(match[2]), PAIN_SCALE, minus=bool(match["minus"]))


def _delay(match: re.Match[str]) -> Later | None:
    if match["morning"]:
        return Later(LaterKind.NEXT_MORNING)
    time = IN_TIME.fullmatch(match["time"] or "")
    if time is None:
        return None
    amount = 0.5 if time["half"] else 1 if time["one"] else _number(time[2]) or 0
    minutes = int(amount * 60) if time["half"] or time["hours"] else int(amount)
    return Later(LaterKind.MINUTES, minutes) if minutes in LATER_MINUTES else None


def _classify(clause: str, *, question: bool = False) -> Reply | None:
    """The command one clause gives, or None when it is not one."""
    if START_CLAUSE.fullmatch(clause):
        return Reply(Command.START)
    if HELP_CLAUSE.fullmatch(clause):
        return Reply(Command.HELP)
    if match := PAUSE_CLAUSE.fullmatch(clause):
        return _pause(match)
    if (match := PAIN_FIRST.fullmatch(clause)) or (match := PAIN_LAST.fullmatch(clause)):
        return _pain(match)
    if match := BARE_NUMBER.fullmatch(clause):
        return _bare(_number(match[1]))
    return _classify_answer(clause, question=question)


def _bare(value: int | None) -> Reply | None:
    """Any bare number: the question it answers (if any) knows its range; past the pain
    scale ("11") it has ``error`` set."""
    if value is None:
        return None
    if value in PAIN_SCALE:
        return Reply(Command.NUMBER, number=value)
    return Reply(Command.NUMBER, error=OutOfRange(value, PAIN_SCALE))


def _classify_answer(clause: str, *, question: bool) -> Reply | None:
    # SKIP before DONE: "didnt do it" holds "do" and "it" but is no DONE.
    if SKIP_CLAUSE.fullmatch(clause):
        return Reply(Command.SKIP)
    if match := SNOOZE_CLAUSE.fullmatch(clause):
        return Reply(Command.SNOOZE, delay=_delay(match))
    if DONE_CLAUSE.fullmatch(clause) or clause == "ya":
        return Reply(Command.DONE)
    if not question and DONE_LEAD.match(clause):
        return Reply(Command.DONE)
    return Reply(Command.ACK) if ACK_CLAUSE.fullmatch(clause) else None


def _leads_in(clause: str, reading: Reply | None) -> bool:
    """A greeting or an acknowledgement in front of the command ("hi, done", "ok, skip")."""
    if reading is None:
        return bool(GREETING.fullmatch(clause) or ONLY_FILLER.fullmatch(clause))
    return reading.command is Command.ACK


def _first_reading(clauses: list[str], *, question: bool) -> tuple[Reply | None, int]:
    """The reading of the first clause that says something, and its index."""
    for index, clause in enumerate(clauses):
        reading = _classify(clause, question=question)
        following = clauses[index + 1] if index + 1 < len(clauses) else None
        if following is not None and _leads_in(clause, reading):
            after = _classify(following, question=question)
            if after is not None and after.command is not Command.ACK:
                continue
        return reading, index
    return None, 0


def _has_comment(first: Reply, rest: list[str]) -> bool:
    """Whether clauses after the first say something beyond repeating its command."""
    for clause in rest:
        if ONLY_FILLER.fullmatch(clause):
            continue
        again = _classify(clause)
        if again is None or again.command not in {first.command, Command.ACK}:
            return True
    return False


def _exact_keyword(text: str) -> str | None:
    word = text.strip().upper()
    return word if word in TWILIO_KEYWORDS else None


def _read(words: str, clauses: list[str], *, question: bool) -> Reply | None:
    """The command the message gives, with ``comment`` set; None when it gives none."""
    first, index = _first_reading(clauses, question=question)
    if first is None:
        # The whole message may be a command its punctuation split ("pain: 5, maybe 6").
        return _classify(words, question=question)
    return dataclasses.replace(first, comment=_has_comment(first, clauses[index + 1 :]))


def _with_symptom(reply: Reply | None, *, symptom: bool) -> Reply:
    """An acknowledgement that mentions a symptom is a symptom report ("ok, my back hurts")."""
    if reply is None or (symptom and reply.command is Command.ACK):
        command = Command.SYMPTOM if symptom else Command.OTHER
        return Reply(command, symptom=symptom, comment=True)
    # A pain score names the pain it scores; that is no further symptom.
    scored = reply.command in {Command.PAIN, Command.NUMBER}
    return dataclasses.replace(reply, symptom=symptom and not scored)


def clip(text: str) -> str:
    """The text as stored for the clinic: at most MAX_CHARS characters, the end marked when
    something was cut (a webhook can carry megabytes; no phone sends them)."""
    if len(text) <= MAX_CHARS:
        return text
    return text[: MAX_CHARS - len(CUT_MARK)] + CUT_MARK


def parse_reply(text: str) -> Reply:
    """What the message asks for. Never raises, whatever the text."""
    words, clauses = normalize(text)
    flag = red_flag(words, clauses)
    keyword = _exact_keyword(text)
    if is_opt_out(words, clauses):
        return Reply(Command.STOP, red_flag=flag, exact_keyword=keyword)
    if flag is not None:
        return Reply(Command.WARNING, red_flag=flag, comment=True, exact_keyword=keyword)
    if not clauses:
        # "?" alone asks what this is; an empty message (a picture) says nothing.
        return Reply(Command.HELP if "?" in text else Command.OTHER, exact_keyword=keyword)
    if is_quit_wish(words):
        return Reply(Command.QUIT_HELP, comment=True, exact_keyword=keyword)
    reply = _read(words, clauses, question="?" in text)
    reply = _with_symptom(reply, symptom=has_symptom(words))
    return dataclasses.replace(reply, exact_keyword=keyword)
