"""Tables in and out: every CSV or XLSX import is read here, and every CSV or XLSX export is
written here.

Reading. An upload is untrusted: a 1.5 KB XLSX can declare sixteen thousand columns, a CSV
header can hold forty thousand names, a zip member can inflate a thousandfold, an XML part can
declare entities. So a file is parsed in a child process (forked from a clean fork server, so
the app's threads and connections are not copied) that is killed when it runs past the time
limit, and the parse itself stops at the first limit it meets: rows, columns, cells, shared
strings, zip members, uncompressed bytes. The XLSX `dimension` declaration is never trusted;
rows are streamed as they are stored. Any XML part with a DOCTYPE (hence any entity
declaration) is refused before a parser sees it. A limit answers 413 `import_too_large` naming
the limit; a file that cannot be read answers 422 `unreadable_file`.

Writing. Text that a spreadsheet would take for a formula (it starts with `=`, `+`, `-`, `@`,
a tab or a carriage return) is neutralised: prefixed with `'` in CSV (OWASP's advice), and
written as an explicit string cell in XLSX, so nothing ever becomes a formula. Numbers stay
numbers, negative ones included; only text is touched.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import multiprocessing
import re
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Literal

from openpyxl import load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell

from app.errors import AppError, FieldError, Invalid

if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet

    from app.config import Settings

logger = logging.getLogger(__name__)

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
BATCH_SIZE = 1000  # rows written per multi-row statement by the importers
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# ---- limits --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard limits of one parse. `rows` bounds the row number (header = 1) of any row read."""

    rows: int = 100_000
    columns: int = 256
    cells: int = 2_000_000
    shared_strings: int = 250_000
    uncompressed_bytes: int = 100 * 2**20
    zip_members: int = 200
    seconds: float = 30.0

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """Each limit from its setting, `import_max_<limit>`."""
        return cls(**{f.name: getattr(settings, f"import_max_{f.name}") for f in fields(cls)})


LIMIT_NAMES: dict[str, str] = {
    "rows": "rows",
    "columns": "columns",
    "cells": "non-empty cells",
    "shared_strings": "shared strings",
    "uncompressed_bytes": "uncompressed bytes",
    "zip_members": "zip members",
    "seconds": "seconds of parsing",
}


class _TooLarge(Exception):
    def __init__(self, limit: str, maximum: float) -> None:
        super().__init__(limit)
        self.limit, self.maximum = limit, maximum


class _Unreadable(Exception):
    pass


def too_large(limit: str, maximum: float) -> AppError:
    detail = (
        f"The file was not imported: it goes past the limit of {maximum:g} "
        f"{LIMIT_NAMES[limit]} per import. Split it, or ask the operator to raise the limit."
    )
    return AppError(
        "import_too_large",
        detail,
        413,
        errors=[FieldError("/body/file", detail, "too_large")],
        extra={"limit": limit, "maximum": maximum},
    )


def file_error(detail: str) -> AppError:
    return Invalid(detail, [FieldError("/body/file", detail, "unreadable_file")], "unreadable_file")


# ---- the parsed table ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Table:
    """Row 1 (the header) and every later row that has content, with its number as a
    spreadsheet shows it (blank rows are skipped but still counted)."""

    header: list[Any]
    rows: list[tuple[int, list[Any]]]


@dataclass(slots=True)
class RawRow:
    """One line of the file: its number as a spreadsheet shows it (header = 1) and its cells."""

    number: int
    cells: dict[str, Any]


@dataclass(slots=True)
class _RowErrors:
    """The problems of one row; reported as one entry pointing at the first bad column."""

    column: str | None = None
    reasons: list[str] = field(default_factory=list)
    code: str = "invalid"

    def add(self, column: str | None, reason: str, code: str) -> None:
        if not self.reasons:
            self.column, self.code = column, code
        self.reasons.append(reason)


class RowErrors:
    """Every bad row's problems, each reported as one entry `<prefix>/<n>/<first bad column>`:
    files point at `/rows/<row number>`, JSON bodies at `/<list>/<index>`."""

    def __init__(self, prefix: str = "/rows", noun: str = "row(s)", what: str = "file") -> None:
        self.prefix, self.noun, self.what = prefix, noun, what
        self.rows: dict[int, _RowErrors] = {}

    def add(self, number: int, column: str | None, reason: str, code: str = "invalid") -> None:
        self.rows.setdefault(number, _RowErrors()).add(column, reason, code)

    def __bool__(self) -> bool:
        return bool(self.rows)

    def raise_if_any(self) -> None:
        if not self.rows:
            return
        errors = [
            FieldError(
                f"{self.prefix}/{number}" + (f"/{e.column}" if e.column else ""),
                "; ".join(e.reasons),
                e.code,
            )
            for number, e in sorted(self.rows.items())
        ]
        raise Invalid(
            f"The {self.what} was not imported: {len(errors)} {self.noun} are not valid; "
            "see errors.",
            errors,
            code="import_rejected",
        )


def keyed_rows(
    table: Table, columns: Sequence[str], required: Sequence[str], errors: RowErrors
) -> list[RawRow]:
    """The rows as cells under the header's (lower-cased) names, after checking the header:
    every required column present, no unknown or repeated column."""
    header = [
        str(h).strip().lstrip("\ufeff").lower() if h is not None else "" for h in table.header
    ]
    if not any(header) and not table.rows:
        raise file_error("The file is empty; the first row must be the column names.")
    known = set(columns)
    for name in required:
        if name not in header:
            errors.add(1, name, f"the column {name!r} is missing", "missing_column")
    for name in header:
        if name and name not in known:
            errors.add(1, None, f"unknown column {name!r}", "unknown_column")
    counts = Counter(h for h in header if h)
    for name in sorted(n for n, c in counts.items() if c > 1):
        errors.add(1, name, f"the column {name!r} appears twice", "duplicate_column")
    errors.raise_if_any()
    rows: list[RawRow] = []
    width = len(header)
    for number, line in table.rows:
        cells = {name: line[i] if i < len(line) else None for i, name in enumerate(header) if name}
        if len(line) > width and any(v not in (None, "") for v in line[width:]):
            cells["__extra__"] = True
        rows.append(RawRow(number, cells))
    return rows


# ---- reading ---------------------------------------------------------------------------------


def is_xlsx(filename: str | None, content_type: str | None, data: bytes) -> bool:
    if filename and filename.lower().endswith((".xlsx", ".xlsm")):
        return True
    if content_type and content_type.split(";")[0].strip() == XLSX_MEDIA_TYPE:
        return True
    return data[:4] == b"PK\x03\x04"


def _blank(line: Sequence[Any]) -> bool:
    return all(v is None or (isinstance(v, str) and not v.strip()) for v in line)


class _Budget:
    """Counts what a parse has read and stops it at the first limit (time included, checked
    between rows, for the parse in a thread; the child process is also killed from outside)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.cells = 0
        self.deadline = time.monotonic() + limits.seconds

    def row(self, number: int, line: Sequence[Any]) -> bool:
        """Check one row; True when it has content."""
        if number > self.limits.rows:
            raise _TooLarge("rows", self.limits.rows)
        if time.monotonic() > self.deadline:
            raise _TooLarge("seconds", self.limits.seconds)
        width = len(line)
        while width and line[width - 1] in (None, ""):
            width -= 1
        if width > self.limits.columns:
            raise _TooLarge("columns", self.limits.columns)
        self.cells += sum(1 for v in line[:width] if v not in (None, ""))
        if self.cells > self.limits.cells:
            raise _TooLarge("cells", self.limits.cells)
        return width > 0 and not _blank(line[:width])


def _unquote(value: str) -> str:
    """Undo the export's formula neutralisation, so an exported CSV imports back exactly."""
    if value[:1] == "'" and value[1:2] and value[1] in "=+-@\t\r":
        return value[1:]
    return value


def _read_csv(data: bytes, limits: Limits) -> Table:
    """Bytes that are not UTF-8 survive as lone surrogates so the row that holds them can be
    named; the importer's checks reject them."""
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    # Excel in some locales saves with ';' or tab; the header (plain names) tells which.
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    budget = _Budget(limits)
    header: list[Any] = []
    rows: list[tuple[int, list[Any]]] = []
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        for number, record in enumerate(reader, start=1):
            if budget.row(number, record) or number == 1:
                line: list[Any] = [_unquote(v) for v in record]
                if number == 1:
                    header = line
                else:
                    rows.append((number, line))
    except csv.Error as exc:
        raise _Unreadable(f"The CSV file cannot be read: {exc}.") from exc
    return Table(header, rows)


_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_SHARED_STRING = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?si[\s/>]")
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_CHUNK = 64 * 1024
_TAIL = 32


def _utf8_xml(first: bytes) -> bool:
    """False for a part that is XML in another encoding than UTF-8 (UTF-16 by its BOM or its
    zero bytes around `<`, or an XML declaration naming another encoding)."""
    if first[:2] in (b"\xfe\xff", b"\xff\xfe") or first[:2] in (b"<\x00", b"\x00<"):
        return False
    if not first.removeprefix(b"\xef\xbb\xbf").startswith(b"<?xml"):
        return True  # not XML at all (an image, a binary part): nothing to decode
    declared = _ENCODING.search(first[:200])
    return declared is None or declared.group(1).lower() in (b"utf-8", b"utf8")


def _inspect_zip(archive: zipfile.ZipFile, limits: Limits) -> None:
    """Sizes, then every part read once, whatever its name (a worksheet may be named anything
    by the relationships): no DOCTYPE, XML in UTF-8 only, shared strings counted.

    The declared sizes bound what zipfile will inflate (it stops at them and checks the CRC),
    so summing them is a sound bound of the bytes the parse can produce."""
    members = archive.infolist()
    if len(members) > limits.zip_members:
        raise _TooLarge("zip_members", limits.zip_members)
    if sum(m.file_size for m in members) > limits.uncompressed_bytes:
        raise _TooLarge("uncompressed_bytes", limits.uncompressed_bytes)
    shared = 0
    for member in members:
        with archive.open(member) as stream:
            tail = b""
            first = True
            while chunk := stream.read(_CHUNK):
                if first and not _utf8_xml(chunk):
                    raise _Unreadable("The XLSX file has XML parts that are not UTF-8.")
                first = False
                window = tail + chunk
                if _DOCTYPE.search(window):
                    raise _Unreadable(
                        "The XLSX file declares a DOCTYPE or entities; such files are refused."
                    )
                shared += sum(1 for m in _SHARED_STRING.finditer(window) if m.end() > len(tail))
                if shared > limits.shared_strings:
                    raise _TooLarge("shared_strings", limits.shared_strings)
                tail = window[-_TAIL:]


def _read_xlsx(data: bytes, limits: Limits) -> Table:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _inspect_zip(archive, limits)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise _Unreadable("The XLSX file cannot be read (not a valid zip).") from exc
    workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        if not workbook.worksheets:
            raise _Unreadable("The XLSX file has no worksheet.")
        sheet = workbook.worksheets[0]
        # The stored `dimension` may claim A1:XFD1048576 for a file of ten cells: ignore it,
        # so each row is as wide as its own last cell and missing rows cost nothing.
        sheet.reset_dimensions()
        budget = _Budget(limits)
        header: list[Any] = []
        rows: list[tuple[int, list[Any]]] = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            line = list(values)
            if budget.row(number, line) or number == 1:
                if number == 1:
                    header = line
                else:
                    rows.append((number, line))
        return Table(header, rows)
    finally:
        workbook.close()


Kind = Literal["csv", "xlsx"]


def read_table(data: bytes, kind: Kind, limits: Limits) -> Table:
    """Parse in the calling thread (trusted files: the seed data; and the child process).

    Raises AppError: 413 `import_too_large` at a limit, 422 `unreadable_file` otherwise."""
    outcome = _outcome(data, kind, limits)
    return _result(outcome)


_Outcome = (
    tuple[Literal["ok"], Table]
    | tuple[Literal["too_large"], str, float]
    | tuple[Literal["unreadable"], str]
)


def _outcome(data: bytes, kind: Kind, limits: Limits) -> _Outcome:
    try:
        return ("ok", _read_xlsx(data, limits) if kind == "xlsx" else _read_csv(data, limits))
    except _TooLarge as exc:
        return ("too_large", exc.limit, exc.maximum)
    except _Unreadable as exc:
        return ("unreadable", str(exc))
    except Exception:  # any failure of the parsers on an untrusted file is the file's fault
        return ("unreadable", f"The {kind.upper()} file cannot be read (malformed content).")


def _result(outcome: _Outcome) -> Table:
    if outcome[0] == "ok":
        return outcome[1]
    if outcome[0] == "too_large":
        raise too_large(outcome[1], outcome[2])
    raise file_error(outcome[1])


# The fork server starts once per process, single-threaded, with this module (hence openpyxl)
# already imported, so each parse is a cheap fork of a clean process.
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload([__name__])


def _child(sender: Connection, data: bytes, kind: Kind, limits: Limits) -> None:
    try:
        sender.send(_outcome(data, kind, limits))
    finally:
        sender.close()


# At most this many parses run at once in a process; more wait their turn in their thread, so a
# burst of uploads cannot fork a child per upload.
PARALLEL_PARSES = 2
_PARSES = threading.BoundedSemaphore(PARALLEL_PARSES)


def _in_child(data: bytes, kind: Kind, limits: Limits) -> _Outcome:
    """Parse in a child process; kill it at the time limit. Blocks: run it in a thread."""
    with _PARSES:
        return _parse_in_child(data, kind, limits)


def _parse_in_child(data: bytes, kind: Kind, limits: Limits) -> _Outcome:
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(target=_child, args=(sender, data, kind, limits), daemon=True)
    try:
        process.start()
        sender.close()
        if not receiver.poll(limits.seconds):
            return ("too_large", "seconds", limits.seconds)
        try:
            outcome: _Outcome = receiver.recv()
        except EOFError:  # the child died (the OS killed it, out of memory): the file's doing
            return ("unreadable", f"The {kind.upper()} file could not be parsed.")
        return outcome
    finally:
        receiver.close()
        if process.is_alive():
            process.kill()
        process.join()


async def read_upload(
    filename: str | None, content_type: str | None, data: bytes, limits: Limits
) -> Table:
    """An uploaded CSV or XLSX, parsed off the event loop in a child process with hard limits."""
    kind: Kind = "xlsx" if is_xlsx(filename, content_type, data) else "csv"
    try:
        outcome = await asyncio.to_thread(_in_child, data, kind, limits)
    except (OSError, AssertionError):
        # No child process could be started (multiprocessing asserts that a daemonic process
        # has no children): parse in a thread, still off the event loop and within the limits.
        logger.warning("import parsed in a thread: no child process could be started")
        outcome = await asyncio.to_thread(_outcome, data, kind, limits)
    return _result(outcome)


# ---- checking cells ------------------------------------------------------------------------


def cell_as_text(value: Any) -> str | None:
    """An imported cell (CSV text or an XLSX value) as the text the checks read; None if empty."""
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value).strip())


# ---- writing ---------------------------------------------------------------------------------


def neutralise(text: str) -> str:
    """Text that a spreadsheet would evaluate, made inert by a leading apostrophe (OWASP)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(value: Any) -> str:
    """A value as one CSV cell: integers and decimals as written, booleans as 1 and 0, dates
    in ISO 8601, empty for none; text neutralised against formulas."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return neutralise(str(value))


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 with a BOM (so Excel reads the Vietnamese text right), CRLF, header first. Cells
    that are already `str` pass through `csv_text` like any other value."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_text(v) for v in row])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    """Like `csv_bytes`, a few hundred rows at a time, for streamed exports."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    out.write("\ufeff")
    writer.writerow(header)
    for index, row in enumerate(rows, start=1):
        writer.writerow([csv_text(v) for v in row])
        if index % 500 == 0:
            yield out.getvalue().encode("utf-8")
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode("utf-8")


def xlsx_cell(sheet: Worksheet, value: str) -> Cell:
    """A text cell for `sheet.append`: always a string, never a formula, whatever it starts
    with; characters XML cannot hold become U+FFFD."""
    cell = Cell(sheet, 1, 1, ILLEGAL_CHARACTERS_RE.sub("\ufffd", value))  # append places it
    cell.data_type = "s"
    return cell


def xlsx_append(sheet: Worksheet, values: Iterable[Any]) -> None:
    """`sheet.append` with every text value as a string cell (see `xlsx_cell`)."""
    sheet.append([xlsx_cell(sheet, v) if isinstance(v, str) else v for v in values])
