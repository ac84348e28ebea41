"""The reply parser measured on a labelled corpus of replies written as patients write them
(``tests/data/replies_corpus.tsv``), most of them unlike the examples the rules were built
from. The confusion table is printed at the end of the run whatever the outcome (``pytest -s``
not needed, with or without xdist: ``tests/conftest.py`` prints each ``SUMMARY_TABLE``)."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.replies.parser import parse_reply
from tests.conftest import SUMMARY_TABLE

CORPUS = Path(__file__).parents[2] / "data" / "replies_corpus.tsv"
MIN_AGREEMENT = 0.95
ALARMS = frozenset({"warning", "stop+warning"})
COLUMN = 6  # characters of a column label ("stop+warning" shows as "stop+w")


@dataclass(frozen=True)
class Case:
    line: int
    text: str
    expected: str
    got: str


def _command(reading: str) -> str:
    return reading.split(":", maxsplit=1)[0]


def _cases() -> list[Case]:
    with CORPUS.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [
        Case(line, row["text"], row["reading"], parse_reply(row["text"]).reading)
        for line, row in enumerate(rows, start=2)
    ]


def _table(cases: list[Case]) -> str:
    """Expected command down, read command across; then every disagreement."""
    counts = Counter((_command(c.expected), _command(c.got)) for c in cases)
    labels = sorted({label for pair in counts for label in pair})
    first = max(len(label) for label in labels) + 1
    lines = [" " * first + "".join(label[:COLUMN].rjust(COLUMN + 1) for label in labels)]
    for expected in labels:
        cells = (str(counts[expected, got] or ".").rjust(COLUMN + 1) for got in labels)
        lines.append(expected.ljust(first) + "".join(cells))
    wrong = [c for c in cases if c.got != c.expected]
    agreement = 1 - len(wrong) / len(cases)
    lines.append(f"\n{len(cases)} replies, {agreement:.1%} read as labelled; disagreements:")
    lines += [f"  line {c.line}: {c.text!r}: labelled {c.expected}, read {c.got}" for c in wrong]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return _cases()


def test_the_corpus_is_large_and_bilingual(cases: list[Case]) -> None:
    assert len(cases) >= 300
    spanish = [c for c in cases if any(w in c.text.lower() for w in ("listo", "me ", "dolor"))]
    assert len(spanish) >= 30


def test_the_corpus_reads_as_labelled(
    cases: list[Case], record_property: Callable[[str, object], None]
) -> None:
    table = "Reply corpus: confusion table (expected down, read across)\n" + _table(cases)
    record_property(SUMMARY_TABLE, table)
    missed = [c for c in cases if c.expected in ALARMS and c.got not in ALARMS]
    false_done = [c for c in cases if c.got == "done" and c.expected != "done"]
    acks_as_done = [c for c in false_done if c.expected == "ack"]
    assert missed == [], "red flags missed"
    assert acks_as_done == [], "acknowledgements counted as DONE"
    assert false_done == [], "DONE given to replies that are not"
    agreement = sum(c.got == c.expected for c in cases) / len(cases)
    assert agreement >= MIN_AGREEMENT


# --- the independent corpus: written by someone who never saw the rules -------------------

INDEPENDENT = CORPUS.with_name("replies_independent.tsv")
# Read before any rule was changed for it: 76.8% agreement, 6 red flags missed, 4 false
# alarms (tests/data/README.md). Red flags are held to zero; agreement may only go up.
MIN_INDEPENDENT_AGREEMENT = 0.80


def _independent_cases() -> list[Case]:
    with INDEPENDENT.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [
        Case(line, row["text"], row["expected"], _command(parse_reply(row["text"]).reading))
        for line, row in enumerate(rows, start=2)
    ]


def test_the_independent_corpus_misses_no_red_flag_and_raises_no_false_alarm(
    record_property: Callable[[str, object], None],
) -> None:
    cases = _independent_cases()
    alarm = {"warning", "stop+warning"}
    record_property(
        SUMMARY_TABLE, "Independent corpus (expected down, read across)\n" + _table(cases)
    )
    assert len(cases) >= 200
    assert [c for c in cases if c.expected == "warning" and c.got not in alarm] == []
    assert [c for c in cases if c.got in alarm and c.expected != "warning"] == []
    assert [c for c in cases if c.got == "done" and c.expected != "done"] == []
    agreement = sum(c.got == c.expected or {c.got, c.expected} <= alarm for c in cases)
    assert agreement / len(cases) >= MIN_INDEPENDENT_AGREEMENT
