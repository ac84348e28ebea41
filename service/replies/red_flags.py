"""Which symptoms in a patient's text are clinical red flags, and which are ordinary ones.

A red flag pauses the patient and alerts the clinic at once; an ordinary symptom is flagged
for the clinic to read and changes nothing else. Both work on text already normalized by
``parser.normalize`` (lower case, no accents, no apostrophes, one space between words),
clause by clause.

**Where the list comes from.** The red flags are those of lumbar spinal stenosis and cauda
equina syndrome as published for clinicians and patients:

- NICE Clinical Knowledge Summaries, "Sciatica (lumbar radiculopathy)": red-flag symptoms
  and signs (2018 revision with the Medical Protection Society): bilateral or progressive
  neurological deficit of the legs (weakness, foot drop), difficulty starting to pass urine
  or altered sensation of passing it, loss of sensation of rectal fullness, perianal,
  perineal or genital numbness (saddle anaesthesia);
- NICE CKS "Back pain - low (without radiculopathy)": pain that nothing relieves, and
  unrelenting pain at night;
- the national suspected cauda equina syndrome pathway (NHS England GIRFT, 2023), and NHS
  patient information on cauda equina syndrome: numbness "when wiping", new bladder or bowel
  trouble, new leg weakness, "go to A&E";
- NASS (North American Spine Society) and AAOS OrthoInfo patient pages on lumbar spinal
  stenosis: new or worsening weakness, legs giving way, difficulty walking, falls, loss of
  bladder or bowel control;
- for Spanish, MedlinePlus en espanol "Estenosis espinal" and "Sindrome de la cola de
  caballo", and OrthoInfo en espanol: "entumecimiento en la zona genital", "perdida del
  control de la vejiga o del intestino", "debilidad en las piernas", "caidas".

What stays out, on purpose: the stenosis patient's usual day. Tingling, numbness that comes
with walking or sitting "like usual", legs that tire after a block (neurogenic
claudication), soreness and stiffness are **symptoms**, not red flags. So are other
people's falls ("my grandson fell"), idioms ("I fell off the program", "it slipped my
mind"), negated mentions ("no numbness today", "I haven't fallen") and improvement ("the
weakness is much better"). When a text says both, the red flag wins: missing one costs far
more than a needless call from the clinic.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable


class RedFlag(enum.StrEnum):
    SADDLE_NUMBNESS = "saddle_numbness"  # groin, genitals, buttocks, "down there", wiping
    BLADDER_BOWEL = "bladder_bowel"  # new retention, incontinence, a bathroom accident
    LEG_NUMBNESS = "leg_numbness"  # new or spreading loss of feeling in the legs or feet
    LEG_WEAKNESS = "leg_weakness"  # new or worsening weakness, giving way, cannot walk
    FALL = "fall"
    SEVERE_PAIN = "severe_pain"  # severe or sudden, nothing relieves it, unrelenting at night


def _alternation(words: Iterable[str]) -> str:
    return "(?:" + "|".join(sorted(set(words), key=len, reverse=True)) + ")"


def _compiled(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(pattern) for pattern in patterns)


NUMB_WORD = r"numb(?:ness|ed|ing|s)?"  # never "number"

# --- vocabulary ----------------------------------------------------------------------------

LEGS = _alternation(
    (
        *("legs?", "thighs?", "feet", "foot", "knees?", "calf", "calves", "toes?", "ankles?"),
        *("piernas?", "pies?", "muslos?", "rodillas?", "pantorrillas?", "tobillos?", "dedos"),
    )
)
SADDLE = _alternation(
    (
        *("groin", "inner thighs?", "buttocks?", "butt", "bottom", "crotch", "genitals?"),
        *("privates?", "private area", "private parts", "saddle", "perineum", "bum"),
        *("backside", "down there", "between my legs", "when i wipe", "wiping", "rectum"),
        *("ingle", "entrepierna", "gluteos?", "nalgas?", "genitales?", "zona intima"),
        *("zona genital", "partes intimas", "ano", "al limpiarme", "entre las piernas"),
        *("parte de adentro de los muslos", "parte interna de los muslos"),
    )
)
NUMB = _alternation(
    (
        *(NUMB_WORD, "no feeling", "cant feel", "cannot feel", "can not feel", "lost feeling"),
        *("loss of feeling", "losing feeling", "lost sensation", "loss of sensation"),
        *("no sensation", r"adormec\w*", r"entumec\w*", r"entumid\w*", r"dormid[oa]s?"),
        *("sin sensibilidad", "no siento", "perdi la sensibilidad", "sin sensacion"),
        *("no lo siento", "went dead", "feel dead", r"entumi\w*", r"durmi\w*", r"duerme\w*"),
    )
)
WEAK = _alternation(
    (
        *(r"weak\w*", "gave out", "gave way", "giving out", "giving way", "give out"),
        *("give way", "gives out", "gives way", r"buckl\w*", r"collaps\w*", "cant move"),
        *("cannot move", "can not move", "cant lift", "cannot lift", "unable to move"),
        *("wont hold me", "dont hold me", "wont hold me up", "wont support me"),
        *("quit on me", "just quit", "gave up on me"),
        *(r"debil\w*", "flojas?", "flojedad", "se me doblan", "no me responden"),
        *("no puedo mover", "no responden", "no me sostienen", "fallan", "me fallan"),
    )
)
SEVERE = _alternation(
    (
        *("severe", "sever", "sudden", "suddenly", "unbearable", "excruciating", "extreme"),
        *("worst", "agonizing", "agonising", "intolerable", "crippling", "debilitating"),
        *("muy fuerte", "muy intenso", "muy intensa", "severo", "severa", "insoportable"),
        *("repentino", "repentina", "subito", "subita", "atroz", "el peor"),
    )
)
PAIN_WORD = r"(?:pain|pains|ache|aching|hurts?|hurting|dolor|dolores|duele|duelen)"
NEGATOR = _alternation(
    (
        *("not", "no", "isnt", "wasnt", "arent", "without", "nothing", "none", "never"),
        *("dont", "didnt", "doesnt", "havent", "hasnt", "hadnt", "nada", "sin", "ni"),
        *("nunca", "tampoco"),
    )
)
# What a negation may stand in front of: "no numbness", "haven't had a fall", "no bladder
# problems" (but "no bladder control" is a red flag, so "bladder" only with a problem word).
NEGATABLE = _alternation(
    (
        SEVERE,
        *(NUMB_WORD, r"weak\w*", r"tingl\w*", "fall", "falls", "fallen", "fell", "falling"),
        r"(?:bladder|bowels?)\s+(?:problems?|issues?|trouble|accidents?|changes?)",
        *(r"accidents?", r"caid[ao]s?", "me he caido", r"debilidad", r"entumec\w*"),
        *(r"adormec\w*", r"hormigueo", "pain", "dolor", "problems?", "issues?", "duelen?"),
        *("give way", "give out", "gave way", "gave out", "giving way", "giving out"),
        r"(?:trouble|problems?|difficulty)\s+(?:peeing|urinating|pooping|with (?:my )?"
        r"(?:bladder|bowels?))",
    )
)
NEGATED = re.compile(
    rf"\b{NEGATOR}(?:\s+(?:have|had|has|feel|felt|any|a|an|more|so|that|too|very|as|"
    rf"real|muy|tan|tengo|he|ha|mas|new|de|me|le))*\s+{NEGATABLE}\b"
    rf"(?:\s+(?:or|nor|and|ni|o|y)\s+(?:any\s+)?{NEGATABLE}\b)*"
)
# A red flag said of someone else: "my grandson fell", "mi esposa se cayo".
OTHER_PERSON = re.compile(
    r"\b(?:my|mi|his|her|our|their|nuestr[oa])\s+(?:\w+\s+)?"
    + _alternation(
        (
            *("grand\\w*", "sons?", "daughters?", "wife", "husband", "mom", "mother", "dad"),
            *("father", "sisters?", "brothers?", "friends?", "neighbou?rs?", "dogs?", "cats?"),
            *("kids?", "child", "children", "baby", "aunt", "uncle", "partner", "nieces?"),
            *("nephews?", "cousins?", "patients?", "nietos?", "nietas?", "hij[oa]s?", "esposo"),
            *("esposa", "marido", "mujer", "madre", "mama", "padre", "papa", "herman[oa]s?"),
            *("amig[oa]s?", "vecin[oa]s?", "perr[oa]s?", "gat[oa]s?", "abuel[oa]s?"),
        )
    )
    + r"\b|^(?:(?:and|but|so|also|btw|then)\s+)?(?:he|she|they|hes|shes|theyre)\b"
)
FIRST_PERSON = re.compile(r"\b(?:i|im|ive|me|myself|yo)\b")
# Qualifiers that make numbness or weakness the patient's usual, or mild, or going away.
USUAL = re.compile(
    r"\b(?:usual|usually|always|normal|as before|like before|same as|like every day|"
    r"every time i walk|como siempre|lo de siempre|de costumbre|normal|lo normal)\b"
)
MILD = re.compile(r"\b(?:a bit|a little|little bit|slight|slightly|some|kind of|un poco|algo)\b")
IMPROVED = re.compile(
    r"(?<!not )(?<!isnt )(?<!no )\b(?:better|improv\w*|gone|went away|less|mejor|mejorando|"
    r"se fue|se me quito)\b"
)
# A red flag told as history, resolved: "fell two years ago, all good now".
PAST = re.compile(
    r"\b(?:years? ago|months ago|back in (?:19|20)\d\d|in (?:19|20)\d\d|last year|"
    r"hace (?:\w+\s+)?(?:anos|meses)|el ano pasado)\b"
)
RESOLVED = re.compile(
    r"\b(?:all good now|fine now|ok now|okay now|im fine|i am fine|ya estoy bien|"
    r"ya estoy mejor|estoy bien)\b"
)
WORSE = re.compile(
    r"\b(?:new|worse|worsening|weaker|spreading|suddenly|sudden|both|nueva|nuevo|peor|"
    r"ambas|cada vez)\b"
)

# --- the red flags -------------------------------------------------------------------------

NEAR = r"(?:\s+\w+){0,5}\s+"  # up to five words between the two halves of a phrase
RED_FLAG_PATTERNS: tuple[tuple[RedFlag, tuple[re.Pattern[str], ...]], ...] = (
    (
        RedFlag.SADDLE_NUMBNESS,
        _compiled(
            (
                rf"\b{NUMB}\b{NEAR}{SADDLE}\b",
                rf"\b{NUMB}\s+{SADDLE}\b",
                rf"\b{SADDLE}\b{NEAR}{NUMB}\b",
            )
        ),
    ),
    (
        RedFlag.BLADDER_BOWEL,
        _compiled(
            (
                r"\bincontinen\w*",
                r"\b(?:lost|losing|lose|loss of|no)\s+(?:control\s+(?:of|over)\s+)?"
                r"(?:my\s+|the\s+)?(?:bladder|bowels?)(?!\s+(?:problems?|issues?|trouble))\b",
                r"\b(?:bladder|bowels?)(?:\s+\w+){0,2}\s+(?:control|accidents?|leak\w*)\b",
                r"\b(?:cant|cannot|can not|unable to|trouble|difficulty|hard to|struggling to|"
                r"not able to|havent been able to|hasnt been able to|couldnt)(?:\s+\w+){0,2}\s+"
                r"(?:pee|peeing|urinat\w*|pass urine|poop|pooping|empty my bladder|"
                r"hold (?:it|my pee|my urine|my bladder|my bowels?))\b",
                r"\b(?:wet|wetting|peed|pooped|soiled|pissed|messed|shit)\s+(?:myself|my self|"
                r"my pants|the bed|my bed)\b",
                r"\b(?:had|have had|having)\s+(?:an|a|another)\s+(?:bathroom\s+)?accident\b",
                r"\bbathroom accidents?\b",
                r"\baccident in (?:the bathroom|my pants|bed)\b",
                r"\bleak\w*\s+(?:urine|pee|stool)\b",
                r"\b(?:cant|cannot|dont|didnt) feel (?:when|if) i (?:need to|have to) (?:go|pee)\b",
                r"\bno puedo (?:orinar|hacer pipi|hacer del bano|evacuar|defecar|retener|"
                r"aguantar(?:me)?)\b",
                r"\b(?:perdi|pierdo|perdida de|perdida del)\s+(?:el\s+)?control\b",
                r"\bme (?:orine|hice pipi|hice popo|hice encima|hice en los pantalones)\b",
                r"\bdificultad (?:para|al) orinar\b",
                r"\b(?:cant|cannot|can not|unable to|trouble|no puedo|no logro)\s+"
                r"(?:control|controlling|controlar|hold|holding|aguantar|retener)\s+"
                r"(?:my\s+|la\s+|el\s+)?(?:bladder|bowels?|pee|urine|orina|vejiga|intestino|pipi)\b",
                r"\bse me (?:escapa|sale|salio|escapo) (?:la orina|el pipi|la caca|el popo)\b",
                r"\baccidente en el bano\b",
                r"\baccidente\s+(?:con|de)\s+(?:el\s+|la\s+)?(?:popo|caca|pipi|orina)\b",
                r"\b(?:no|without|lost|losing)\s+(?:feeling|sensation)\s+when i\s+"
                r"(?:go|pee|poop|wipe)\b",
                r"\b(?:dont|cant|didnt|do not|cannot)\s+(?:know|tell|feel)\s+when i\s+"
                r"(?:have|need) to (?:go|pee|poop)\b",
            )
        ),
    ),
    (
        RedFlag.LEG_NUMBNESS,
        _compiled((rf"\b{NUMB}\b{NEAR}{LEGS}\b", rf"\b{LEGS}\b{NEAR}{NUMB}\b")),
    ),
    (
        RedFlag.LEG_WEAKNESS,
        _compiled(
            (
                rf"\b{WEAK}\b{NEAR}{LEGS}\b",
                rf"\b{LEGS}\b{NEAR}{WEAK}\b",
                rf"\b{WEAK}\s+{LEGS}\b",
                r"\b(?:foot drop|drop foot|dragging my (?:foot|leg)|(?:foot|leg) (?:is )?dragging|"
                r"arrastro (?:el pie|la pierna))\b",
                r"\b(?:cant|cannot|can not|unable to|couldnt|could not)\s+(?:even\s+)?"
                r"(?:walk|stand up)\b(?!\s+(?:very\s+|that\s+|too\s+|as\s+)?(?:far|more|much|"
                r"long|without|a block|fast|quickly|well|straight|for long|blocks?))",
                r"\bno puedo (?:caminar|andar|ponerme de pie|pararme)\b(?!\s+(?:mucho|lejos|mas|"
                r"sin|bien|rato|tanto))",
            )
        ),
    ),
    (
        RedFlag.FALL,
        _compiled(
            (
                r"\bfell\b(?!\s+(?:asleep|behind|for|apart|through|short|in love|off the wagon|"
                r"out of|off (?:the |my )?(?:program|routine|schedule|plan|track|wagon)))",
                r"\bfallen\b(?!\s+(?:asleep|behind|apart|through|off the wagon|off the program))",
                r"\b(?:had|took|have had|suffered|taken)\s+a\s+(?:\w+\s+)?(?:fall|tumble|spill)\b",
                r"\b(?:keep|kept|been|i am|im)\s+falling\b(?!\s+(?:asleep|behind|apart))",
                r"\bfalling down\b",
                r"\b(?:slipped|slipt|tripped)\b(?!\s+(?:my mind|up|out|away))",
                r"\bme (?:cai|he caido|caigo|resbale|tropece|fui al suelo)\b",
                r"\b(?:una|la|tuve|sufri)\s+caida\b",
            )
        ),
    ),
)
SEVERE_PAIN_PATTERNS = _compiled(
    (
        rf"\b{SEVERE}(?:\s+\w+){{0,3}}\s+{PAIN_WORD}\b",
        rf"\b{PAIN_WORD}(?:\s+\w+){{0,3}}\s+{SEVERE}\b",
    )
)
# Pain that nothing relieves, or that will not let the patient sleep: with a pain word
# anywhere in the message ("the ibuprofen isn't helping" alone says nothing of pain).
RELIEF_FAILS = _compiled(
    (
        r"\bnothing\s+(?:\w+\s+){0,2}(?:helps?|helping|works?|working|relieves?|touches it|"
        r"eases it|makes it better)\b",
        r"\b(?:pills?|meds?|medicines?|medications?|painkillers?|pain killers|ibuprofen|"
        r"tylenol|advil|aleve|motrin|tramadol|gabapentin)\s+(?:\w+\s+){0,2}?(?:dont|doesnt|"
        r"isnt|arent|wont|do not|does not|is not|are not|not)\s+(?:even\s+)?(?:help\w*|work\w*|"
        r"touch\w*|do anything)\b",
        r"\b(?:no|cant get any|cant get|without any) relief\b",
        r"\bnada\s+(?:me\s+)?(?:lo\s+|la\s+)?(?:quita|alivia|ayuda|calma|sirve)\b",
        r"\bningun\w*\s+(?:medicamento|pastilla|medicina|remedio)\s+(?:me\s+)?(?:ayuda|sirve|"
        r"funciona|alivia|quita)\b",
        r"\b(?:pastillas?|medicamentos?|medicinas?)\s+(?:ya\s+)?no\s+(?:me\s+)?(?:hacen?|ayudan?|"
        r"sirven?|funcionan?)\b",
        r"\b(?:wakes?|waking|woke|keeps?)\s+me\s+up\b",
        r"\b(?:cant|cannot|couldnt|unable to|can not)\s+sleep\b",
        r"\bno me (?:deja|dejan|dejo) dormir\b",
        r"\bno (?:puedo|pude) dormir\b",
        r"\bno se (?:me\s+)?quita con nada\b",
        r"\btoda la noche despiert[oa]\b",
    )
)
PAIN_MENTION = re.compile(rf"\b{PAIN_WORD}\b")

# --- ordinary symptoms ---------------------------------------------------------------------

SYMPTOM_PATTERNS = _compiled(
    (
        rf"\b(?:tingl\w*|pins and needles|hormigueo\w*|cosquilleo|{NUMB_WORD}|entumec\w*|"
        r"adormec\w*|burning|ardor|quemazon)\b",
        r"\b(?:pain|pains|painful|hurts?|hurting|ache\w*|aching|sore\w*|stiff\w*|cramp\w*|"
        r"throbbing|spasms?|killing me|dolor\w*|duele\w*|duelen|calambres?|rigid\w*|"
        r"molestias?|adolorid[oa]s?|ties[oa]s?)\b",
        rf"\b{LEGS}\s+(?:\w+\s+){{0,2}}(?:tired|heavy|weak\w*|cansadas?|pesadas?|debiles?)\b",
        r"\b(?:cant|cannot|unable to|no puedo)\s+(?:walk|caminar|andar)\b",
    )
)


def _plain(clause: str) -> str:
    """The clause with negated mentions blanked out ("no numbness today" -> " today")."""
    return NEGATED.sub(" ", clause)


def _someone_else(clause: str, start: int) -> bool:
    """Whether the words before ``start`` make another person the subject ("my grandson
    fell") with no first person between them and the red flag ("my wife says I fell")."""
    for person in OTHER_PERSON.finditer(clause, 0, start):
        if not FIRST_PERSON.search(clause, person.end(), start):
            return True
    return False


def _discounted(flag: RedFlag, clause: str, words: str) -> bool:
    """Numbness, weakness and pain the message calls usual, mild or better are symptoms,
    unless it also calls them new or worse; any red flag told as resolved history ("years
    ago … all good now") is history."""
    if PAST.search(words) and RESOLVED.search(words) and not WORSE.search(words):
        return True
    if flag not in {RedFlag.LEG_NUMBNESS, RedFlag.LEG_WEAKNESS, RedFlag.SEVERE_PAIN}:
        return False
    if WORSE.search(words):
        return False
    mild = flag is RedFlag.LEG_NUMBNESS and MILD.search(clause) is not None
    return mild or bool(USUAL.search(words)) or bool(IMPROVED.search(words))


def _found(flag: RedFlag, patterns: Iterable[re.Pattern[str]], clause: str, words: str) -> bool:
    plain = _plain(clause)
    for pattern in patterns:
        for match in pattern.finditer(plain):
            if not _someone_else(plain, match.start()) and not _discounted(flag, plain, words):
                return True
    return False


def _severe_pain(clauses: list[str], words: str) -> bool:
    if any(_found(RedFlag.SEVERE_PAIN, SEVERE_PAIN_PATTERNS, c, words) for c in clauses):
        return True
    if not PAIN_MENTION.search(_plain(words)):
        return False
    return any(pattern.search(words) for pattern in RELIEF_FAILS)


def red_flag(words: str, clauses: list[str]) -> RedFlag | None:
    """The first red flag the message reports (in the order of ``RedFlag``), or None.
    ``words`` is the whole normalized message, ``clauses`` its sentences."""
    for flag, patterns in RED_FLAG_PATTERNS:
        if any(_found(flag, patterns, clause, words) for clause in clauses):
            return flag
    return RedFlag.SEVERE_PAIN if _severe_pain(clauses, words) else None


def has_symptom(words: str) -> bool:
    """Whether the message mentions a symptom of its own (not negated, not gone)."""
    if IMPROVED.search(words):
        return False
    plain = _plain(words)
    return any(
        not _someone_else(plain, match.start())
        for pattern in SYMPTOM_PATTERNS
        for match in pattern.finditer(plain)
    )
