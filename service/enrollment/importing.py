"""Enroll patients from a CSV export: fast, idempotent, and exact about what went wrong.

Shape of the file: a header row naming the columns like the ``patients enroll`` flags
(``first_name``/``first-name``/``First Name``, ``phone``, ``email``, ``timezone``, ``program``,
``channel``, ``wake``, ``locale``, ``start``, plus ``tune`` and ``max_per_day``), UTF-8 with or
without a BOM, blank lines ignored.

Guarantees:

1. A file-level problem (wrong encoding, missing or repeated columns, broken quoting) stops
   the import before anything is stored. Columns we do not take (an EHR export's MRN, date
   of birth, provider) are read past with one warning that names them, and never stored;
   ``column_map`` maps an export's own header names onto ours.
2. Every bad row is reported with its line number and reason; good rows are kept.
3. Re-importing changes nothing: a row whose phone (email-only rows: email) and first name
   are already at the clinic, or earlier in the file, counts as unchanged (family members
   sharing a phone are different rows). For phones the database enforces it (unique clinic +
   phone + first name) even against an enrollment running at the same moment; email-only
   rows are checked against what the clinic had when the import started. A row naming a
   removed or completed patient re-activates that patient, as ``patients enroll`` does.
4. Each batch of rows is one transaction: a row is stored whole (patient, plan items,
   welcome message, consent record, re-activation) or not at all. Batches commit in the
   order of the file, so when the database fails one (``ImportStoppedError``: its lines and what
   the database said), every batch before it is stored whole and nothing from it on.

Speed (target: 100,000 rows at 5,000 rows/s into PostgreSQL on two cores; see
``bench/import_bench.py``): next-due times are computed once per distinct schedule (zone,
window, tuned program, start date) instead of once per patient; rows shared by many patients
are built once (``_Template``); PostgreSQL gets COPY instead of INSERT (``service.db.bulk``),
from two writer threads while the caller validates the next batch (``_Pipeline``).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session, sessionmaker

from service import audit
from service.db import DATABASE_ERRORS, Base, database_error_text
from service.db.bulk import Columns
from service.db.dialects import bulk_loader, commit_without_waiting_for_disk
from service.enrollment import plans
from service.enrollment.patients import (
    EnrollmentError,
    EnrollmentRequest,
    ProgramBook,
    ValidEnrollment,
    consent_audit_values,
    patient_values,
    reactivate,
    validate,
    welcome_values,
)
from service.enrollment.plans import plan_item_values
from service.enrollment.programs import Program
from service.enrollment.scheduling import next_due_by_item
from service.models import (
    AuditEvent,
    ChannelChoice,
    Clinic,
    Patient,
    PatientStatus,
    PlanItem,
    Reminder,
)

BATCH_SIZE = 1000
WRITERS = 2  # PostgreSQL connections writing batches at once (see _Pipeline)
_STAGING = "import_patients"
_PATIENTS = Base.metadata.tables[Patient.__tablename__]
_PLAN_ITEMS = Base.metadata.tables[PlanItem.__tablename__]
_REMINDERS = Base.metadata.tables[Reminder.__tablename__]
_AUDIT = Base.metadata.tables[AuditEvent.__tablename__]
# The unique index patients conflict on: clinic + phone + first name in any case.
_FAMILY_KEY = [_PATIENTS.c.clinic_id, _PATIENTS.c.phone, func.lower(_PATIENTS.c.first_name)]
ENCODINGS = ("utf-8", "cp1252")
COLUMNS = (
    "first_name",
    "phone",
    "email",
    "timezone",
    "program",
    "channel",
    "wake",
    "locale",
    "start",
    "tune",
    "max_per_day",
    "consent_method",
    "weeks",
    "end",
)
# Names EHR exports commonly use for the same thing.
ALIASES = {
    "firstname": "first_name",
    "given_name": "first_name",
    "mobile": "phone",
    "phone_number": "phone",
    "cell": "phone",
    "email_address": "email",
    "time_zone": "timezone",
    "tz": "timezone",
    "start_date": "start",
    "wake_window": "wake",
    "language": "locale",
    "tuning": "tune",
    "end_date": "end",
}

Progress = Callable[[int, int], None]  # (rows done, rows in the file)
# ("phone", "+1312…", "ana") or ("email", "ana@…", "ana"): what makes a row "the same"
Key = tuple[str, str, str]


class ImportFileError(ValueError):
    """The file as a whole cannot be imported; nothing was stored."""


class ImportStoppedError(Exception):
    """The database failed while storing one batch: that batch is stored not at all, every
    batch before it whole, nothing after it (``result`` counts what was stored)."""

    def __init__(self, *, first_line: int, last_line: int, cause: str, result: ImportResult):
        self.first_line = first_line
        self.last_line = last_line
        self.cause = cause
        self.result = result
        super().__init__(
            f"the import stopped at the batch of lines {first_line}-{last_line}: the database "
            f"said: {cause}. Nothing from line {first_line} on was stored; the rows before it "
            f"were ({result.added:,} added). Importing the file again adds the rest."
        )


@dataclass
class ImportResult:
    added: int = 0
    unchanged: int = 0
    reactivated: int = 0  # removed or completed patients enrolled again
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    dry_run: bool = False
    # Header names of columns we do not take (an MRN, a date of birth): read past, never stored.
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.added + self.unchanged + self.reactivated + len(self.errors)


@dataclass(frozen=True)
class _Row:
    """One row of the file: its cells by canonical column, or why it cannot be read as a row
    (the wrong number of cells)."""

    line: int
    cells: dict[str, str]
    error: str | None = None


def import_csv(
    *,
    sessions: sessionmaker[Session],
    clinic: Clinic,
    path: Path,
    actor: str,
    now: dt.datetime,
    dry_run: bool = False,
    encoding: str = "utf-8",
    programs_dir: Path | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
    column_map: Mapping[str, str] | None = None,
) -> ImportResult:
    """Import the file into the clinic, committing every ``batch_size`` rows. ``column_map``
    maps an export's own header names onto ours (``parse_column_map``).

    1. Decode and parse the whole file, header first (ImportFileError: nothing stored).
    2. Per batch: validate each row; drop rows already at the clinic or earlier in the file
       (the clinic's patients are read once, up front); re-activate the removed or
       completed patients rows name.
    3. Unless a dry run, insert patients (skipping phones that appeared meanwhile), their
       plan items with next-due times, welcome messages and consent audit rows; commit, in
       the order of the file. A batch the database fails raises ImportStoppedError.
    """
    parsed = parse_csv(_decode(path.read_bytes(), encoding), column_map=column_map)
    rows = parsed.rows
    result = ImportResult(dry_run=dry_run, ignored_columns=parsed.ignored)
    programs = ProgramBook(programs_dir)
    seen, ended = _keys_at_clinic(sessions=sessions, clinic=clinic)
    writer = _Writer(sessions=sessions, clinic=clinic, actor=actor, now=now)
    tally = _Tally(result=result, total=len(rows), progress=progress)
    workers = WRITERS if writer.loader.concurrent_writers else 0
    with _stopped_at_batch(result), _Pipeline(workers=workers, done=tally.add) as pipeline:
        for part in _batches(rows, batch_size):
            valid = _validate(part, clinic=clinic, now=now, programs=programs, result=result)
            new, revived = _new_rows(valid, seen, ended, result)
            batch = _Batch(part[0].line, part[-1].line, new, revived, len(part))
            if dry_run:
                tally.add(_Written(len(new), 0, len(revived), batch.size))
            else:
                pipeline.submit(writer.write, batch)
        pipeline.drain()
    if not dry_run:
        _record_import(sessions=sessions, clinic=clinic, actor=actor, path=path, result=result)
    return result


@contextmanager
def _stopped_at_batch(result: ImportResult) -> Iterator[None]:
    """A batch the database failed, told as where the import stopped and what it stored."""
    try:
        yield
    except _BatchError as failed:
        raise ImportStoppedError(
            first_line=failed.first_line,
            last_line=failed.last_line,
            cause=failed.cause,
            result=result,
        ) from failed.__cause__


@dataclass
class _Tally:
    """Adds finished batches to the result and reports progress in rows of the file."""

    result: ImportResult
    total: int
    progress: Progress | None
    handled: int = 0

    def __post_init__(self) -> None:
        if self.progress:
            self.progress(0, self.total)

    def add(self, outcome: _Written) -> None:
        self.handled += outcome.rows
        self.result.added += outcome.added
        self.result.unchanged += outcome.unchanged
        self.result.reactivated += outcome.reactivated
        if self.progress:
            self.progress(self.handled, self.total)


def _validate(
    batch: list[_Row],
    *,
    clinic: Clinic,
    now: dt.datetime,
    programs: ProgramBook,
    result: ImportResult,
) -> list[tuple[int, ValidEnrollment]]:
    valid = []
    for row in batch:
        if row.error is not None:
            result.errors.append((row.line, row.error))
            continue
        try:
            enrollment = validate(
                request_from(row.cells), clinic=clinic, now=now, programs=programs
            )
        except EnrollmentError as exc:
            result.errors.append((row.line, str(exc)))
            continue
        valid.append((row.line, enrollment))
    return valid


# --- reading the file --------------------------------------------------------------------


def _decode(data: bytes, encoding: str) -> str:
    """The text, or an error naming the first line that is not in the expected encoding."""
    if encoding not in ENCODINGS:
        raise ImportFileError(f"encoding {encoding!r} is not supported; use utf-8 or cp1252")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFileError("the file is UTF-16 text; save it as CSV UTF-8 and import again")
    try:
        # utf-8-sig drops the BOM Excel puts in front of "CSV UTF-8" files.
        return data.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        hint = (
            " (files saved by Excel on Windows are often cp1252: pass --encoding cp1252)"
            if encoding == "utf-8"
            else ""
        )
        raise ImportFileError(
            f"line {line} is not {encoding} text (byte 0x{data[exc.start]:02X} at offset "
            f"{exc.start}); save the file as UTF-8{hint}"
        ) from None


@dataclass(frozen=True)
class ParsedCsv:
    rows: list[_Row]
    ignored: list[str]  # header names of the columns read past


def parse_csv(text: str, *, column_map: Mapping[str, str] | None = None) -> ParsedCsv:
    """Rows keyed by canonical column name, each with the line it starts on; blank lines
    and rows of empty cells are skipped. Columns we do not take are read past (their header
    names returned, their cells never kept). Column problems raise ImportFileError."""
    records = _records(text)
    header = next(records, None)
    if header is None:
        raise ImportFileError("the file is empty: expected a header row such as first_name,phone")
    columns = _columns(header[1], column_map or {})
    rows = [_row(line, columns, cells) for line, cells in records]
    ignored = [name for name, column in zip(header[1], columns, strict=True) if column is None]
    return ParsedCsv(rows, ignored)


def parse_column_map(text: str) -> dict[str, str]:
    """``--map "Patient First=first_name,Cell=phone"``: export header names onto ours."""
    mapping: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        source, sep, target = pair.partition("=")
        column = canonical_column(target)
        if not sep or not source.strip() or column not in COLUMNS:
            raise ImportFileError(
                f"--map {pair!r}: expected EXPORT_NAME=column with a column we take "
                f"({', '.join(COLUMNS)})"
            )
        mapping[_header_key(source)] = column
    return mapping


def _header_key(name: str) -> str:
    """A header name as compared: case, spaces, dashes and underscores folded alike."""
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1
    try:
        for record in reader:
            if any(cell.strip() for cell in record):
                yield line, record
            # line_num counts physical lines read so far: a quoted cell may span several.
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ImportFileError(f"line {line}: the CSV does not parse ({exc})") from None


def canonical_column(name: str) -> str:
    """``First Name``, ``first-name`` and ``FIRST_NAME`` are all ``first_name``."""
    key = _header_key(name)
    return ALIASES.get(key, key)


def _columns(header: Sequence[str], column_map: Mapping[str, str]) -> list[str | None]:
    """Each header name's column, or None for one we do not take."""
    named = [column_map.get(_header_key(name)) or canonical_column(name) for name in header]
    columns = [column if column in COLUMNS else None for column in named]
    known = [column for column in columns if column is not None]
    twice = sorted({column for column in known if known.count(column) > 1})
    if twice:
        raise ImportFileError(f"column(s) {', '.join(twice)} appear more than once in the header")
    missing = [] if "first_name" in columns else ["first_name"]
    if "phone" not in columns and "email" not in columns:
        missing.append("phone or email")
    if missing:
        raise ImportFileError(f"missing required column(s): {', '.join(missing)}")
    return columns


def _row(line: int, columns: list[str | None], cells: list[str]) -> _Row:
    # Spreadsheets pad rows with trailing empty cells; anything else out of line is reported
    # for that row, not guessed at.
    extra = cells[len(columns) :]
    if len(cells) < len(columns) or any(cell.strip() for cell in extra):
        return _Row(line, {}, error=f"expected {len(columns)} fields, found {len(cells)}")
    pairs = zip(columns, cells, strict=False)
    named = {column: cell for column, cell in pairs if column is not None}
    # A NUL or other control character cannot be stored (PostgreSQL refuses NUL in text), so
    # it is this row's error, caught here where the dry run sees it too. Tabs and line breaks
    # (a quoted cell over two lines) are ordinary text. Ignored columns are never stored.
    for column, cell in named.items():
        if any(unicodedata.category(char) == "Cc" and char not in "\t\r\n" for char in cell):
            return _Row(line, {}, error=f"{column} contains a control character")
    return _Row(line, named)


def request_from(cells: dict[str, str]) -> EnrollmentRequest:
    """The enrollment request a row asks for. ``tune`` holds tunings separated by ``;`` or
    spaces (commas belong to the values: ``stretch.at=10:00,16:00``)."""
    return EnrollmentRequest(
        first_name=cells.get("first_name", ""),
        phone=cells.get("phone"),
        email=cells.get("email"),
        timezone=cells.get("timezone"),
        program=cells.get("program"),
        channel=cells.get("channel"),
        wake=cells.get("wake"),
        locale=cells.get("locale"),
        start=cells.get("start"),
        tune=tuple(cells.get("tune", "").replace(";", " ").split()),
        max_per_day=cells.get("max_per_day"),
        consent_method=cells.get("consent_method"),
        weeks=cells.get("weeks"),
        end=cells.get("end"),
    )


def _batches(rows: list[_Row], size: int) -> Iterator[list[_Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


# --- deciding what is new ----------------------------------------------------------------


def _key(valid: ValidEnrollment) -> Key:
    return key_of(valid.phone, valid.email, valid.first_name)


def key_of(phone: str | None, email: str | None, first_name: str) -> Key:
    name = first_name.lower()  # as the unique index's lower(first_name)
    return ("phone", phone, name) if phone else ("email", email or "", name)


Revived = list[tuple[int, ValidEnrollment]]  # (patient id, the row)


def _new_rows(
    rows: list[tuple[int, ValidEnrollment]],
    seen: set[Key],
    ended: dict[Key, int],
    result: ImportResult,
) -> tuple[list[tuple[int, ValidEnrollment]], Revived]:
    """Split rows into new patients and re-activations of removed or completed ones; rows
    whose phone (email-only rows: email) and first name the clinic already has or an earlier
    row of the file brought count as unchanged, as they will on every later import."""
    fresh, revived = [], []
    for line, valid in rows:
        key = _key(valid)
        if key in seen:
            result.unchanged += 1
            continue
        seen.add(key)
        if key in ended:
            revived.append((ended[key], valid))
        else:
            fresh.append((line, valid))
    return fresh, revived


def _keys_at_clinic(
    *, sessions: sessionmaker[Session], clinic: Clinic
) -> tuple[set[Key], dict[Key, int]]:
    """The clinic's patients by phone (or email) and first name, read once (one pass over
    the clinic's patients): those enrolled, and the removed or completed ones by id. Cheaper
    and steadier than a lookup per batch: with statistics not yet updated for the rows the
    import itself just added, PostgreSQL may plan each batch's lookup as a scan of the
    clinic, which made 100,000 rows take minutes."""
    with sessions() as session:
        found = session.execute(
            select(
                Patient.id, Patient.phone, Patient.email, Patient.first_name, Patient.status
            ).where(Patient.clinic_id == clinic.id)
        )
        keys: set[Key] = set()
        ended: dict[Key, int] = {}
        for patient_id, phone, email, first_name, status in found:
            for key in _keys(phone, email, first_name):
                if status.ended:
                    ended.setdefault(key, patient_id)
                else:
                    keys.add(key)
        return keys, ended


def _keys(phone: str | None, email: str | None, first_name: str) -> list[Key]:
    # A patient with both is "the same" as a phone row and as an email-only row.
    found = [key_of(phone, None, first_name)] if phone else []
    return found + ([key_of(None, email, first_name)] if email else [])


# --- writing ---------------------------------------------------------------------------
# Rows go through the database's bulk loader (``service.db.bulk``): COPY into PostgreSQL,
# executemany into SQLite. An import writes about nine rows per patient, most of them shared
# by many patients, so those are rendered once per kind of patient (``_Template``).


@dataclass(frozen=True)
class _Batch:
    """Rows of the file from ``first_line`` to ``last_line``: the new patients among them,
    and the removed or completed ones they re-activate."""

    first_line: int
    last_line: int
    new: list[tuple[int, ValidEnrollment]]
    revived: Revived
    size: int  # rows of the file the batch covers (for progress)


@dataclass(frozen=True)
class _Written:
    added: int
    unchanged: int  # phones enrolled by someone else between the check and the insert
    reactivated: int
    rows: int  # rows of the file the batch covered (for progress)


class _BatchError(Exception):
    """The database failed this batch (its transaction rolled back); ``__cause__`` is why."""

    def __init__(self, batch: _Batch, cause: str) -> None:
        super().__init__(f"lines {batch.first_line}-{batch.last_line}: {cause}")
        self.first_line, self.last_line, self.cause = batch.first_line, batch.last_line, cause


class _Pipeline:
    """Batches written by ``workers`` threads, each on its own connection, while the caller
    validates the next batch (workers=0: written inline).

    On PostgreSQL a writer spends most of its time waiting for the server (foreign-key
    checks, index updates, all on one core per connection): two writers keep both cores
    busy. Batches never overlap in phone or email (the caller removed repeats), so the
    writers' transactions never wait on each other.
    """

    def __init__(self, *, workers: int, done: Callable[[_Written], None]) -> None:
        self._workers = workers
        self._done = done  # told of each batch stored, in the order of the file
        self._pool = ThreadPoolExecutor(workers, "import-writer") if workers else None
        self._pending: deque[Future[_Written]] = deque()

    def __enter__(self) -> _Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        # On an error, batches not yet started are dropped; those running finish (each is
        # one transaction: stored whole or not at all; one after a failed batch rolls back).
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(
        self, write: Callable[[_Batch, Future[_Written] | None], _Written], batch: _Batch
    ) -> None:
        """Hand over a batch, after waiting for the oldest ones to make room (their errors
        are raised here). ``write`` gets the batch before it, still running or None: it
        commits only once that one has."""
        if self._pool is None:
            self._done(write(batch, None))
            return
        while len(self._pending) >= self._workers:
            self._done(self._pending.popleft().result())
        before = self._pending[-1] if self._pending else None
        self._pending.append(self._pool.submit(write, batch, before))

    def drain(self) -> None:
        while self._pending:
            self._done(self._pending.popleft().result())


def _committed(before: Future[_Written] | None) -> None:
    """Wait until the batch before has committed; its failure is raised here."""
    if before is not None:
        before.result()


@dataclass(frozen=True)
class _Template:
    """Rows of a child table that many patients share (a program's plan items, a welcome, a
    consent record), without the patient's own values: the patient id, and for plan items
    the next-due time. ``rows`` are in the loader's form (COPY text on PostgreSQL), so a
    patient's row costs one join instead of converting every value again."""

    columns: Columns
    rows: list[Any]


@dataclass
class _Children:
    """One batch's plan items, welcome messages and consent rows, in the loader's form."""

    rows: dict[str, list[Any]] = field(default_factory=dict)
    columns: dict[str, Columns] = field(default_factory=dict)


class _Writer:
    """Bulk writes for one import, with caches that make a patient's rows cheap: plan rows
    by program, next-due times by schedule, welcome and consent rows by kind of patient."""

    def __init__(
        self, *, sessions: sessionmaker[Session], clinic: Clinic, actor: str, now: dt.datetime
    ) -> None:
        self.sessions = sessions
        self.clinic = clinic
        self.actor = actor
        self.now = now
        with sessions() as session:
            self.loader = bulk_loader(session)
        self._plans: dict[int, _Template] = {}
        self._next_due: dict[tuple[Any, ...], list[Any]] = {}
        self._welcomes: dict[ChannelChoice, _Template] = {}
        self._audits: dict[tuple[Any, ...], _Template] = {}

    def write(self, batch: _Batch, before: Future[_Written] | None) -> _Written:
        """Store one batch in one transaction: re-activations, then patients (their ids come
        back), then their plan items, welcome messages and consent rows. The commit waits
        for the batch ``before`` it: a batch after a failed one rolls back too."""
        if not batch.new and not batch.revived:
            _committed(before)
            return _Written(0, 0, 0, batch.size)
        try:
            with self.sessions() as session, session.begin():
                # The import's last commit is synchronous and flushes all of these: when
                # import_csv returns, every batch is durable; until then a crash may lose the
                # latest batches, which re-importing restores.
                commit_without_waiting_for_disk(session)
                self._reactivate(session, batch.revived)
                added = self._store(session, batch.new) if batch.new else 0
                _committed(before)
        except DATABASE_ERRORS as error:
            raise _BatchError(batch, database_error_text(error)) from error
        return _Written(added, len(batch.new) - added, len(batch.revived), batch.size)

    def _reactivate(self, session: Session, revived: Revived) -> None:
        """Enroll removed or completed patients again, as ``patients enroll`` does (few
        rows: one patient at a time)."""
        for patient_id, valid in revived:
            patient = session.get(Patient, patient_id)
            if patient is not None and patient.status.ended:
                reactivate(
                    session=session,
                    patient=patient,
                    valid=valid,
                    actor=self.actor,
                    now=self.now,
                    source="import",
                )

    def _store(self, session: Session, rows: list[tuple[int, ValidEnrollment]]) -> int:
        ids = self._insert_patients(session, rows)
        children = self._children(rows, ids)
        for target in (_PLAN_ITEMS, _REMINDERS, _AUDIT):
            columns = children.columns.get(target.name, ())
            self.loader.write(session, target, columns, children.rows.get(target.name, []))
        return len(ids)

    def _children(self, rows: list[tuple[int, ValidEnrollment]], ids: dict[Key, int]) -> _Children:
        children = _Children()
        join = self.loader.join
        for _, valid in rows:
            patient_id = ids.get(_key(valid))
            if patient_id is None:
                continue
            patient = self.loader.cell(patient_id)
            due = self._due_times(valid)
            plan = self._plan_template(valid.plan(self.now))
            children.rows.setdefault(_PLAN_ITEMS.name, []).extend(
                join((patient, due[n], row)) for n, row in enumerate(plan.rows)
            )
            children.columns[_PLAN_ITEMS.name] = ("patient_id", "next_due_at", *plan.columns)
            for target, template in (
                (_REMINDERS, self._welcome_template(valid.channel)),
                (_AUDIT, self._audit_template(valid)),
            ):
                children.rows.setdefault(target.name, []).extend(
                    join((patient, row)) for row in template.rows
                )
                children.columns[target.name] = ("patient_id", *template.columns)
        return children

    def _insert_patients(
        self, session: Session, rows: list[tuple[int, ValidEnrollment]]
    ) -> dict[Key, int]:
        """Insert, skipping phones and first names already at the clinic (a concurrent
        enrollment), and return the new ids. Email-only rows have no unique key to
        conflict on."""
        dicts = [
            patient_values(valid, clinic=self.clinic, actor=self.actor, now=self.now)
            for _, valid in rows
        ]
        inserted = self.loader.insert_new(
            session,
            _PATIENTS,
            tuple(dicts[0]),
            [tuple(row.values()) for row in dicts],
            unique=_FAMILY_KEY,
            returning=(
                _PATIENTS.c.id,
                _PATIENTS.c.phone,
                _PATIENTS.c.email,
                _PATIENTS.c.first_name,
            ),
        )
        return {
            key_of(phone, email, first_name): patient_id
            for patient_id, phone, email, first_name in inserted
        }

    def _plan_template(self, program: Program) -> _Template:
        # Keyed by identity: one import's ProgramBook hands out one object per tuned program,
        # and hashing a program's items for every patient costs more than building them.
        if id(program) not in self._plans:
            self._plans[id(program)] = self._template(_PLAN_ITEMS, plan_item_values(program))
        return self._plans[id(program)]

    def _welcome_template(self, channel: ChannelChoice) -> _Template:
        if channel not in self._welcomes:
            rows = welcome_values(patient_id=0, channel=channel, now=self.now)
            self._welcomes[channel] = self._template(_REMINDERS, rows, skip="patient_id")
        return self._welcomes[channel]

    def _audit_template(self, valid: ValidEnrollment) -> _Template:
        key = (valid.program.id, valid.channel, valid.consent_method)
        if key not in self._audits:
            row = consent_audit_values(
                valid,
                patient_id=0,
                clinic=self.clinic,
                actor=self.actor,
                now=self.now,
                source="import",
            )
            self._audits[key] = self._template(_AUDIT, [row], skip="patient_id")
        return self._audits[key]

    def _template(self, target: Table, rows: list[dict[str, Any]], skip: str = "") -> _Template:
        columns = tuple(name for name in rows[0] if name != skip)
        rendered = [
            self.loader.row(target, columns, (row[name] for name in columns)) for row in rows
        ]
        return _Template(columns, rendered)

    def _due_times(self, valid: ValidEnrollment) -> list[Any]:
        """Next-due times by item position (as cells of the loader's rows), shared by every
        patient with the same schedule: computed exactly as ``plans.refresh_next_due`` would
        for each."""
        key = (
            valid.timezone,
            valid.wake_start,
            valid.wake_end,
            id(valid.program),
            valid.start_date,
            valid.end_date,
        )
        if key not in self._next_due:
            due = _next_due_by_position(valid, self.now)
            self._next_due[key] = [self.loader.cell(moment) for moment in due]
        return self._next_due[key]


def _next_due_by_position(valid: ValidEnrollment, now: dt.datetime) -> list[dt.datetime | None]:
    # Transient (never added) objects so the schedule is built by the same code as for an
    # enrolled patient; positions stand in for plan item ids.
    plan = valid.plan(now)
    patient = Patient(
        status=PatientStatus.ACTIVE,
        paused_until=None,
        timezone=valid.timezone,
        wake_start=valid.wake_start,
        wake_end=valid.wake_end,
        start_date=valid.start_date,
        max_per_day=plan.max_per_day,
    )
    rows = plan_item_values(plan)
    items = [PlanItem(id=position, **values) for position, values in enumerate(rows)]
    schedule = plans.schedule_for(patient, items)
    due = next_due_by_item(schedule, after=now) if schedule else {}
    change = valid.changes_at(now)
    return [plans.before_change(due.get(position), change) for position in range(len(items))]


def _record_import(
    *, sessions: sessionmaker[Session], clinic: Clinic, actor: str, path: Path, result: ImportResult
) -> None:
    """One audit row for the import as a whole (each patient has its own enroll/consent)."""
    with sessions() as session, session.begin():
        audit.record(
            session=session,
            actor=actor,
            action="import",
            clinic_id=clinic.id,
            detail={
                "file": path.name,
                "added": result.added,
                "unchanged": result.unchanged,
                "errors": len(result.errors),
            },
        )
