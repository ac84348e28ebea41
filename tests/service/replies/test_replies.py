"""The reply parser against what patients really type."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.replies.parser import (
    PAIN_SCALE,
    PAUSE_DAYS,
    Command,
    Later,
    LaterKind,
    Reply,
    parse_reply,
)
from service.replies.red_flags import RedFlag

STOP, START, HELP, DONE = Command.STOP, Command.START, Command.HELP, Command.DONE
SKIP, SNOOZE, PAUSE, PAIN = Command.SKIP, Command.SNOOZE, Command.PAUSE, Command.PAIN
NUMBER, WARNING, OTHER = Command.NUMBER, Command.WARNING, Command.OTHER
ACK, SYMPTOM = Command.ACK, Command.SYMPTOM

# (text, command, number)
REAL_REPLIES: list[tuple[str, Command, int | None]] = [
    # The keywords Twilio acts on, and their everyday variants.
    ("STOP", STOP, None),
    ("stop", STOP, None),
    (" Stop ", STOP, None),
    ("Stop.", STOP, None),
    ("STOP!!!", STOP, None),
    ("Stop please", STOP, None),
    ("please stop", STOP, None),
    ("STOP STOP STOP", STOP, None),
    ("stopp", STOP, None),
    ("Stop 🛑", STOP, None),
    ("🛑", STOP, None),
    ("STOPALL", STOP, None),
    ("stop all", STOP, None),
    ("UNSUBSCRIBE", STOP, None),
    ("unsubscribe please", STOP, None),
    ("Un-subscribe", STOP, None),
    ("CANCEL", STOP, None),
    ("cancel.", STOP, None),
    ("END", STOP, None),
    ("QUIT", STOP, None),
    ("I quit", STOP, None),
    ("OPTOUT", STOP, None),
    ("opt out", STOP, None),
    ("Opt-out please", STOP, None),
    ("REVOKE", STOP, None),
    # FCC 2024: any reasonable way of saying it.
    ("stop texting me", STOP, None),
    ("Stop sending me these messages", STOP, None),
    ("please stop the reminders", STOP, None),
    ("no more", STOP, None),
    ("No more texts please", STOP, None),
    ("leave me alone", STOP, None),
    ("Don't text me", STOP, None),
    ("do not text me again", STOP, None),
    ("don\u2019t message me anymore", STOP, None),  # a phone's curly apostrophe
    ("Remove me from this list", STOP, None),
    ("take me off your list", STOP, None),
    ("wrong number", STOP, None),
    ("Not interested", STOP, None),
    ("can you stop", STOP, None),
    ("I want to stop", STOP, None),
    ("I don't want these texts", STOP, None),
    ("enough!", STOP, None),
    ("PARAR", STOP, None),
    ("Basta", STOP, None),
    ("basta ya", STOP, None),
    ("CANCELAR", STOP, None),
    ("no me escriban mas", STOP, None),
    ("No me manden más mensajes", STOP, None),
    ("ya no quiero mensajes", STOP, None),
    ("dejen de escribirme", STOP, None),
    ("darme de baja", STOP, None),
    # ... but a stop word about something else is not an opt-out.
    # (pain that goes on is a symptom for the clinic to read, not a red flag)
    ("I can't stop the pain", SYMPTOM, None),
    ("the pain won't stop", SYMPTOM, None),
    ("Please don't stop the reminders, they help", OTHER, None),
    ("cancel my appointment tomorrow", OTHER, None),
    ("Can I stop by the clinic?", OTHER, None),
    ("when should I stop the stretches?", OTHER, None),
    ("the pain won't go away", SYMPTOM, None),
    ("ya no me duele", OTHER, None),
    # Opting back in.
    ("START", START, None),
    ("start", START, None),
    ("Start again", START, None),
    ("UNSTOP", START, None),
    ("unstop please", START, None),
    ("opt in", START, None),
    ("COMENZAR", START, None),
    ("iniciar", START, None),
    # Help.
    ("HELP", HELP, None),
    ("help!", HELP, None),
    ("INFO", HELP, None),
    ("info please", HELP, None),
    ("Who is this?", HELP, None),
    ("what is this", HELP, None),
    ("?", HELP, None),
    ("AYUDA", HELP, None),
    ("Información", HELP, None),
    # Done, and everything that means it.
    ("DONE", DONE, None),
    ("done", DONE, None),
    ("Done!", DONE, None),
    ("done.", DONE, None),
    ("  done  ", DONE, None),
    ("DONE 👍", DONE, None),
    ("Done ✅", DONE, None),
    ("done!!! 💪💪", DONE, None),
    ("Done 😊", DONE, None),
    ("✅", DONE, None),
    ("✔️", DONE, None),
    ("👍", ACK, None),
    ("👍🏽", ACK, None),
    ("💪", DONE, None),
    ("did it", DONE, None),
    ("Did it!", DONE, None),
    ("I did it", DONE, None),
    ("just did it", DONE, None),
    ("finished", DONE, None),
    ("Finished!", DONE, None),
    ("completed", DONE, None),
    ("yes done", DONE, None),
    ("Yes, done", DONE, None),
    ("ok done", DONE, None),
    ("OK DONE!", DONE, None),
    ("all done", DONE, None),
    ("done already", DONE, None),
    ("Done thanks", DONE, None),
    ("done. thank you!", DONE, None),
    ("done with my stretches", DONE, None),
    ("did my exercises", DONE, None),
    ("finished the walk", DONE, None),
    ("Doen", DONE, None),
    ("dne", DONE, None),
    # An acknowledgement is not an exercise.
    ("yes", ACK, None),
    ("Yep", ACK, None),
    ("ok", ACK, None),
    ("Okay!", ACK, None),
    ("LISTO", DONE, None),
    ("listo!", DONE, None),
    ("Hecho", DONE, None),
    ("ya", DONE, None),
    ("ya lo hice", DONE, None),
    ("Terminé", DONE, None),
    ("sí", ACK, None),
    ("Sí, listo", DONE, None),
    # Skip.
    ("SKIP", SKIP, None),
    ("skip today", SKIP, None),
    ("Skip this one", SKIP, None),
    ("not today", SKIP, None),
    ("no", SKIP, None),
    ("Nope", SKIP, None),
    ("didn't do it", SKIP, None),
    ("I didn't", SKIP, None),
    ("I did not do it", SKIP, None),
    ("not done", SKIP, None),
    ("can't today", SKIP, None),
    ("SALTAR", SKIP, None),
    ("hoy no", SKIP, None),
    ("no pude", SKIP, None),
    # Later.
    ("LATER", SNOOZE, None),
    ("later", SNOOZE, None),
    ("Later please", SNOOZE, None),
    ("remind me later", SNOOZE, None),
    ("snooze", SNOOZE, None),
    ("not now", SNOOZE, None),
    ("busy", SNOOZE, None),
    ("in 30 minutes", SNOOZE, None),
    ("not yet", SNOOZE, None),
    ("DESPUÉS", SNOOZE, None),
    ("después", SNOOZE, None),
    ("luego", SNOOZE, None),
    ("más tarde", SNOOZE, None),
    # Pause n (days).
    ("PAUSE 7", PAUSE, 7),
    ("pause 3", PAUSE, 3),
    ("Pause 3 days", PAUSE, 3),
    ("pause for 2 days", PAUSE, 2),
    ("pause 1 week", PAUSE, 7),
    ("pause two weeks", PAUSE, 14),
    ("pause 60", PAUSE, 60),
    ("pause", PAUSE, None),
    ("pause 0", PAUSE, None),
    ("pause 100", PAUSE, None),
    ("PAUSA 5", PAUSE, 5),
    ("pausa 5 días", PAUSE, 5),
    ("pausa 2 semanas", PAUSE, 14),
    # Pain n and bare numbers.
    ("PAIN 3", PAIN, 3),
    ("pain 0", PAIN, 0),
    ("Pain: 5", PAIN, 5),
    ("pain 4/10", PAIN, 4),
    ("pain is 7 today", PAIN, 7),
    ("my pain is 6 out of 10", PAIN, 6),
    ("Pain, 5", PAIN, 5),
    ("pain level 2", PAIN, 2),
    ("pain 3.5", PAIN, 4),
    ("6 pain", PAIN, 6),
    ("DOLOR 8", PAIN, 8),
    ("dolor 4 de 10", PAIN, 4),
    ("5", NUMBER, 5),
    ("0", NUMBER, 0),
    ("10", NUMBER, 10),
    ("7/10", NUMBER, 7),
    (" 3 ", NUMBER, 3),
    ("three", NUMBER, 3),
    ("it's a 4", NUMBER, 4),
    ("cinco", NUMBER, 5),
    ("11", NUMBER, None),  # past the pain scale: see test_out_of_range_numbers_are_refused
    ("pain 15", PAIN, None),  # refused: see test_out_of_range_numbers_are_refused
    # Anything else is for the clinic to read.
    ("thanks", ACK, None),
    ("Thank you!", ACK, None),
    ("hello", OTHER, None),
    ("What time is my appointment?", OTHER, None),
    ("Can I do the stretches in bed?", OTHER, None),
    ("I'm feeling better this week", OTHER, None),
    ("resume", OTHER, None),
    ("", OTHER, None),
    ("😀", OTHER, None),
]

# (text, command): warning signs, alone or with other words.
WARNING_SIGNS: list[tuple[str, Command]] = [
    ("Numbness in my legs", WARNING),
    ("my legs feel numb", WARNING),
    ("new numbness in left leg since this morning", WARNING),
    ("I can't feel my feet", WARNING),
    ("no feeling in my legs", WARNING),
    ("my groin is numb", WARNING),
    ("numb between my legs", WARNING),
    ("weakness in my legs", WARNING),
    ("my leg gave out", WARNING),
    ("legs keep giving way", WARNING),
    ("can't move my legs", WARNING),
    ("lost control of my bladder", WARNING),
    ("loss of bowel control", WARNING),
    ("I peed myself", WARNING),
    ("I can't pee", WARNING),
    ("trouble urinating since yesterday", WARNING),
    ("incontinence", WARNING),
    ("severe pain", WARNING),
    ("Sudden sharp pain in my back", WARNING),
    ("the pain is unbearable", WARNING),
    ("worst pain ever", WARNING),
    ("I fell", WARNING),
    ("I fell down the stairs", WARNING),
    ("had a fall this morning", WARNING),
    ("done but I fell", WARNING),
    ("help, I fell", WARNING),
    ("pain 9, can't feel my legs", WARNING),
    ("piernas dormidas", WARNING),
    ("no siento las piernas", WARNING),
    ("debilidad en las piernas", WARNING),
    ("no puedo orinar", WARNING),
    ("perdí el control de la vejiga", WARNING),
    ("dolor muy fuerte", WARNING),
    ("Me caí", WARNING),
    ("tuve una caída", WARNING),
    # STOP still works, and the warning is not lost.
    ("numbness in legs, stop", STOP),
    ("STOP. I fell and can't get up", STOP),
    ("stop texting me, the pain is unbearable", STOP),
]

NOT_WARNINGS = [
    "I fell asleep before my stretches",
    "the pain is not severe",
    "no numbness today",
    "feeling good, legs are strong",
    "I can't stop the pain",
    "fell behind this week, sorry",
]


@pytest.mark.parametrize(("text", "command", "number"), REAL_REPLIES)
def test_real_replies_parse_to_their_command(
    text: str, command: Command, number: int | None
) -> None:
    reply = parse_reply(text)
    assert (reply.command, reply.number) == (command, number)
    assert reply.warning is False


def test_the_table_has_over_a_hundred_real_replies() -> None:
    assert len(REAL_REPLIES) + len(WARNING_SIGNS) >= 100


@pytest.mark.parametrize(("text", "command"), WARNING_SIGNS)
def test_warning_signs_are_found_anywhere(text: str, command: Command) -> None:
    reply = parse_reply(text)
    assert reply.warning is True
    assert reply.command is command


@pytest.mark.parametrize("text", NOT_WARNINGS)
def test_ordinary_words_are_not_warning_signs(text: str) -> None:
    assert parse_reply(text).warning is False


def test_a_reply_with_a_comment_is_flagged_for_the_clinic() -> None:
    assert parse_reply("Done, felt good today").comment is True
    assert parse_reply("skip, too tired").comment is True
    assert parse_reply("I did the walk but it hurt").comment is True


def test_a_bare_command_or_one_with_thanks_has_no_comment() -> None:
    for text in ("Done", "Done. Thanks!", "done 👍", "yes, done", "LATER please"):
        assert parse_reply(text).comment is False, text


def test_exact_keywords_are_marked_as_twilio_sees_them() -> None:
    assert parse_reply("stop").exact_keyword == "STOP"
    assert parse_reply(" Unsubscribe ").exact_keyword == "UNSUBSCRIBE"
    assert parse_reply("yes").exact_keyword == "YES"
    assert parse_reply("stop please").exact_keyword is None
    assert parse_reply("Stop.").exact_keyword is None


def test_yes_done_is_done_not_an_opt_in() -> None:
    assert parse_reply("yes done").command is DONE


@given(st.text(max_size=400))
@settings(max_examples=500, deadline=None)
def test_arbitrary_text_never_raises(text: str) -> None:
    reply = parse_reply(text)
    assert isinstance(reply, Reply)
    assert reply.command in Command
    if reply.number is not None:
        assert reply.command in {PAUSE, PAIN, NUMBER}
    if reply.error is not None:
        assert reply.command in {PAUSE, PAIN, NUMBER}
        assert reply.number is None
    assert reply.warning is (reply.red_flag is not None)
    assert reply.command is not WARNING or reply.warning


@given(
    st.lists(
        st.sampled_from(["ok", "done", "stop", "no", "ya", "please", "pain", "5", "numb", " "]),
        max_size=60,
    )
)
@settings(max_examples=200, deadline=None)
def test_runs_of_command_words_parse_without_raising(words: list[str]) -> None:
    parse_reply(" ".join(words))


# --- what the forty real-world replies showed ---------------------------------------


@pytest.mark.parametrize("text", ["ok", "yes", "y", "K", "👍 thanks", "Okay 👌", "gracias", "sí"])
def test_an_acknowledgement_is_ack_never_done(text: str) -> None:
    assert parse_reply(text).command is ACK


@pytest.mark.parametrize("text", ["done 👍", "did it", "listo", "hecho", "ok done", "Sí, listo"])
def test_words_that_say_it_was_done_stay_done(text: str) -> None:
    assert parse_reply(text).command is DONE


@pytest.mark.parametrize("text", ["skipped it", "I forgot", "missed it", "olvidé", "se me olvidó"])
def test_forgetting_and_missing_are_skip(text: str) -> None:
    assert parse_reply(text).command is SKIP


@pytest.mark.parametrize(
    ("text", "delay"),
    [
        ("in an hour", Later(LaterKind.MINUTES, 60)),
        ("in 2 hours", Later(LaterKind.MINUTES, 120)),
        ("en media hora", Later(LaterKind.MINUTES, 30)),
        ("remind me in 15 min", Later(LaterKind.MINUTES, 15)),
        ("tomorrow", Later(LaterKind.NEXT_MORNING)),
        ("I'll do it tomorrow", Later(LaterKind.NEXT_MORNING)),
        ("mañana", Later(LaterKind.NEXT_MORNING)),
        ("maybe later", None),
        ("in 30 hours", None),  # not a delay a reminder can wait: the usual one
    ],
)
def test_later_carries_the_delay_it_asks_for(text: str, delay: Later | None) -> None:
    reply = parse_reply(text)
    assert (reply.command, reply.delay) == (SNOOZE, delay)


@pytest.mark.parametrize("text", ["what time is my appointment tomorrow?", "mañana tengo cita"])
def test_a_day_named_in_a_sentence_is_no_later(text: str) -> None:
    assert parse_reply(text).command is OTHER


@pytest.mark.parametrize(
    ("text", "days"), [("pause a week", 7), ("pausa una semana", 7), ("pause 2 wks", 14)]
)
def test_a_pause_in_weeks_is_counted_in_days(text: str, days: int) -> None:
    assert (parse_reply(text).command, parse_reply(text).number) == (PAUSE, days)


@pytest.mark.parametrize(
    ("text", "command", "given", "allowed"),
    [
        ("PAUSE -1", PAUSE, -1, PAUSE_DAYS),
        ("pause 0", PAUSE, 0, PAUSE_DAYS),
        ("pause 1000", PAUSE, 1000, PAUSE_DAYS),
        ("pausa −2", PAUSE, -2, PAUSE_DAYS),  # noqa: RUF001 - a minus sign, as phones send
        ("PAIN -3", PAIN, -3, PAIN_SCALE),
        ("PAIN 11", PAIN, 11, PAIN_SCALE),
        ("dolor 15", PAIN, 15, PAIN_SCALE),
        # A bare number past the scale: the question it answers, if any, states its range.
        ("11", NUMBER, 11, PAIN_SCALE),
    ],
)
def test_out_of_range_numbers_are_refused_with_the_range(
    text: str, command: Command, given: int, allowed: range
) -> None:
    reply = parse_reply(text)
    assert (reply.command, reply.number) == (command, None)
    assert reply.error is not None
    assert (reply.error.given, reply.error.low, reply.error.high) == (
        given,
        allowed.start,
        allowed.stop - 1,
    )


def test_a_range_inside_a_message_is_no_sign() -> None:
    assert parse_reply("pain 4-5").number == 4


@pytest.mark.parametrize(
    "text",
    ["I want to quit the program", "I'm done with this program", "quiero dejar el programa"],
)
def test_leaving_the_program_in_other_words_asks_how_to_stop(text: str) -> None:
    reply = parse_reply(text)
    assert reply.command is Command.QUIT_HELP
    assert reply.comment is True


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("can't walk", RedFlag.LEG_WEAKNESS),
        ("legs keep giving out", RedFlag.LEG_WEAKNESS),
        ("bathroom accident", RedFlag.BLADDER_BOWEL),
        ("no puedo controlar la orina", RedFlag.BLADDER_BOWEL),
        ("I slipped in the shower", RedFlag.FALL),
        ("numb down there", RedFlag.SADDLE_NUMBNESS),
        ("pain so bad I can't sleep, pills don't help", RedFlag.SEVERE_PAIN),
    ],
)
def test_red_flags_name_the_flag(text: str, flag: RedFlag) -> None:
    reply = parse_reply(text)
    assert (reply.command, reply.red_flag) == (WARNING, flag)


@pytest.mark.parametrize(
    "text",
    [
        "my grandson fell",
        "my husband slipped on the ice but he's fine",
        "I fell off the program this week",
        "it slipped my mind",
        "no numbness today",
        "no falls, no bladder problems",
        "I haven't fallen",
        "tingling like usual",
        "I can't walk very far without resting",
        "the weakness in my legs is much better",
    ],
)
def test_other_people_idioms_negations_and_usual_symptoms_are_no_red_flags(text: str) -> None:
    assert parse_reply(text).warning is False


def test_a_red_flag_after_someone_else_is_still_the_patients() -> None:
    assert parse_reply("my wife says I fell").warning is True
    assert parse_reply("walking my dog I tripped and fell").warning is True


@pytest.mark.parametrize(
    "text", ["tingling in my feet", "hurts a lot today", "me duele la espalda", "ok, my back hurts"]
)
def test_ordinary_symptoms_are_flagged_for_the_clinic_without_an_alarm(text: str) -> None:
    reply = parse_reply(text)
    assert (reply.command, reply.symptom, reply.comment, reply.warning) == (
        SYMPTOM,
        True,
        True,
        False,
    )


def test_a_command_with_a_symptom_keeps_the_command_and_flags_it() -> None:
    reply = parse_reply("Skip, my back is sore")
    assert (reply.command, reply.symptom, reply.comment) == (SKIP, True, True)
    assert parse_reply("pain 4").symptom is False  # the score is the symptom's record


def test_the_reading_names_the_command_and_its_detail() -> None:
    readings = [
        parse_reply(text).reading
        for text in ("done", "pause 3", "in an hour", "tomorrow", "PAIN 11", "STOP, I fell")
    ]
    assert readings == [
        "done",
        "pause:3",
        "snooze:60",
        "snooze:next_morning",
        "pain:out_of_range",
        "stop+warning",
    ]
