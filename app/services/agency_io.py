"""Bulk import and export of the agency map as CSV or XLSX.

An import is all or nothing: every row is checked first (including parents that come later in
the file and cycles formed only by the file's own rows) and any bad row refuses the whole file
with one error per bad row. Good files are written with a few multi-row upserts, parents first.
"""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from openpyxl import Workbook, load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from app.errors import FieldError, Invalid
from app.models.agency import (
    Agency,
    AgencyKind,
    ImportSummary,
    bad_characters,
    check_code,
)
from app.models.base import nfc
from app.services import access, audit
from app.services.agencies import LOCK_TREE, level_codes, search_name
from app.services.principal import Principal

COLUMNS = (
    "code",
    "name",
    "short_name",
    "kind",
    "level",
    "parent_code",
    "is_measured",
    "valid_from",
    "valid_to",
    "admin_unit_code",
)
REQUIRED = ("code", "name", "kind", "level", "valid_from")
HEADINGS_VI = {
    "code": "Mã cơ quan (ổn định, không đổi)",
    "name": "Tên cơ quan",
    "short_name": "Tên ngắn",
    "kind": "Loại: department | people_committee | participant",
    "level": "Cấp: province | department | district | commune",
    "parent_code": "Mã cơ quan cấp trên",
    "is_measured": "Có đo lường SIPAS (true/false)",
    "valid_from": "Hiệu lực từ ngày (YYYY-MM-DD)",
    "valid_to": "Hiệu lực đến ngày (YYYY-MM-DD)",
    "admin_unit_code": "Mã đơn vị hành chính quốc gia",
}
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_TRUE = {"true", "1", "yes", "y", "có", "x"}
_FALSE = {"false", "0", "no", "n", "không"}
BATCH_SIZE = 1000


@dataclass(slots=True)
class RawRow:
    """One line of the file: its number as a spreadsheet shows it (header = 1) and its cells."""

    number: int
    cells: dict[str, Any]


@dataclass(slots=True)
class AgencyRow:
    number: int
    code: str
    name: str
    short_name: str | None
    kind: AgencyKind
    level: str
    parent_code: str | None
    is_measured: bool
    valid_from: date
    valid_to: date | None
    admin_unit_code: str | None


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


def file_error(detail: str) -> Exception:
    return Invalid(detail, [FieldError("/body/file", detail, "unreadable_file")], "unreadable_file")


# --- reading -----------------------------------------------------------------------------------


def is_xlsx(filename: str | None, content_type: str | None, data: bytes) -> bool:
    if filename and filename.lower().endswith((".xlsx", ".xlsm")):
        return True
    if content_type and content_type.split(";")[0].strip() == XLSX_MEDIA_TYPE:
        return True
    return data[:4] == b"PK\x03\x04"


def read_csv(data: bytes) -> list[list[Any]]:
    """Rows of cells. Bytes that are not UTF-8 survive as lone surrogates so the row that holds
    them can be named; the validation step rejects them."""
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    # Excel in some locales saves with ';' or tab; the header (plain names) tells which.
    header = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=header.count)
    try:
        return [list(r) for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]
    except csv.Error as exc:
        raise file_error(f"The CSV file cannot be read: {exc}.") from exc


def read_xlsx(data: bytes) -> list[list[Any]]:
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise file_error("The XLSX file cannot be read.") from exc
    try:
        sheet = workbook.worksheets[0]
        return [list(r) for r in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()


def raw_rows(table: Sequence[Sequence[Any]]) -> list[RawRow]:
    """Map the cells under the header; blank lines are skipped but still counted."""
    if not table:
        raise file_error("The file is empty; the first row must be the column names.")
    header = [str(h).strip().lstrip("\ufeff").lower() if h is not None else "" for h in table[0]]
    errors = RowErrors()
    missing = [c for c in REQUIRED if c not in header]
    for name in missing:
        errors.add(1, name, f"the column {name!r} is missing", "missing_column")
    unknown = [h for h in header if h and h not in COLUMNS]
    for name in unknown:
        errors.add(1, None, f"unknown column {name!r}", "unknown_column")
    duplicated = {h for h in header if h and header.count(h) > 1}
    for name in sorted(duplicated):
        errors.add(1, name, f"the column {name!r} appears twice", "duplicate_column")
    errors.raise_if_any()
    rows: list[RawRow] = []
    for index, line in enumerate(table[1:], start=2):
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in line):
            continue
        cells = {name: line[i] if i < len(line) else None for i, name in enumerate(header) if name}
        if len(line) > len(header) and any(v not in (None, "") for v in line[len(header) :]):
            cells["__extra__"] = True
        rows.append(RawRow(index, cells))
    return rows


def parse_file(filename: str | None, content_type: str | None, data: bytes) -> list[RawRow]:
    table = read_xlsx(data) if is_xlsx(filename, content_type, data) else read_csv(data)
    return raw_rows(table)


# --- checking ----------------------------------------------------------------------------------


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
    text = str(value)
    return text


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value).strip())


def check_rows(raw: list[RawRow], levels: set[str]) -> tuple[list[AgencyRow], RowErrors]:
    """Each row on its own: characters, required fields, vocabularies, dates, duplicates."""
    errors = RowErrors()
    good: list[AgencyRow] = []
    first_row: dict[str, int] = {}
    for row in raw:
        n = row.number
        if row.cells.get("__extra__"):
            errors.add(n, None, "more cells than columns", "extra_cells")
        text: dict[str, str | None] = {}
        unreadable: set[str] = set()
        for name in COLUMNS:
            value = cell_as_text(row.cells.get(name))
            if value is not None and bad_characters(value):
                errors.add(
                    n, name, f"{name} has control characters or invalid UTF-8", "bad_characters"
                )
                unreadable.add(name)
                value = None
            text[name] = nfc(value) or None if value is not None else None
        for name in REQUIRED:
            if text[name] is None and name not in unreadable:
                errors.add(n, name, f"{name} is required", "missing")
        code = text["code"]
        if code is not None:
            try:
                code = check_code(code)
            except ValueError as exc:
                errors.add(n, "code", str(exc), "bad_code")
                code = None
        if code is not None:
            if code in first_row:
                errors.add(
                    n, "code", f"duplicate code: already on row {first_row[code]}", "duplicate_code"
                )
            else:
                first_row[code] = n
        kind: AgencyKind | None = None
        if text["kind"] is not None:
            try:
                kind = AgencyKind(text["kind"])
            except ValueError:
                known = ", ".join(k.value for k in AgencyKind)
                errors.add(
                    n, "kind", f"unknown kind {text['kind']!r} (use {known})", "unknown_kind"
                )
        if text["level"] is not None and text["level"] not in levels:
            known = ", ".join(sorted(levels))
            errors.add(
                n, "level", f"unknown level {text['level']!r} (use {known})", "unknown_level"
            )
        is_measured = True
        measured_text = (text["is_measured"] or "").lower()
        if measured_text in _FALSE:
            is_measured = False
        elif measured_text and measured_text not in _TRUE:
            errors.add(n, "is_measured", "use true or false", "bad_boolean")
        dates: dict[str, date | None] = {"valid_from": None, "valid_to": None}
        for name in dates:
            raw_value = row.cells.get(name)
            if text[name] is None:
                continue
            try:
                dates[name] = parse_date(raw_value)
            except ValueError:
                errors.add(n, name, "not a date; use YYYY-MM-DD", "bad_date")
        valid_from, valid_to = dates["valid_from"], dates["valid_to"]
        if valid_from and valid_to and valid_to < valid_from:
            errors.add(n, "valid_to", "valid_to is before valid_from", "bad_date_range")
        if n in errors.rows or code is None or kind is None or valid_from is None:
            continue
        good.append(
            AgencyRow(
                number=n,
                code=code,
                name=text["name"] or "",
                short_name=text["short_name"],
                kind=kind,
                level=text["level"] or "",
                parent_code=text["parent_code"],
                is_measured=is_measured,
                valid_from=valid_from,
                valid_to=valid_to,
                admin_unit_code=text["admin_unit_code"],
            )
        )
    return good, errors


@dataclass(slots=True)
class _Existing:
    id: uuid.UUID
    parent_code: str | None
    values: dict[str, Any]


def _values(row: AgencyRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "short_name": row.short_name,
        "kind": row.kind.value,
        "level": row.level,
        "is_measured": row.is_measured,
        "valid_from": row.valid_from,
        "valid_to": row.valid_to,
        "admin_unit_code": row.admin_unit_code,
    }


async def _existing(session: AsyncSession) -> dict[str, _Existing]:
    parent = aliased(Agency)
    query = sa.select(Agency, col(parent.code)).outerjoin(
        parent, col(parent.id) == col(Agency.parent_id)
    )
    result: dict[str, _Existing] = {}
    for agency, parent_code in (await session.execute(query)).all():
        values = {
            "name": agency.name,
            "short_name": agency.short_name,
            "kind": str(agency.kind),
            "level": agency.level,
            "is_measured": agency.is_measured,
            "valid_from": agency.valid_from,
            "valid_to": agency.valid_to,
            "admin_unit_code": agency.admin_unit_code,
        }
        result[agency.code] = _Existing(agency.id, parent_code, values)
    return result


def _check_tree(
    rows: list[AgencyRow], existing: dict[str, _Existing], errors: RowErrors
) -> dict[str, int]:
    """Parents known and no cycles in the tree as it would be; the depth of every file code."""
    parent_of: dict[str, str | None] = {c: e.parent_code for c, e in existing.items()}
    for row in rows:
        parent_of[row.code] = row.parent_code
    for row in rows:
        if row.parent_code is not None and row.parent_code not in parent_of:
            errors.add(
                row.number,
                "parent_code",
                f"unknown parent {row.parent_code!r}: not in the file nor stored",
                "unknown_parent",
            )
    depth: dict[str, int] = {}
    for row in rows:
        chain: list[str] = []
        seen: set[str] = set()
        node: str | None = row.code
        while node is not None and node not in depth and node not in seen:
            seen.add(node)
            chain.append(node)
            node = parent_of.get(node)
        if node is not None and node in seen:
            continue  # the chain runs into a cycle; its members are reported below
        base = depth[node] + 1 if node is not None else 0
        for offset, code in enumerate(reversed(chain)):
            depth[code] = base + offset
    for row in rows:
        if row.code in depth:
            continue
        node, steps = parent_of.get(row.code), 0
        while node is not None and node != row.code and steps <= len(parent_of):
            node, steps = parent_of.get(node), steps + 1
        if node == row.code:
            errors.add(
                row.number,
                "parent_code",
                f"cycle: {row.code!r} would become its own ancestor",
                "cycle",
            )
    return depth


async def import_rows(
    session: AsyncSession,
    actor: Principal | None,
    raw: list[RawRow],
    *,
    dry_run: bool,
    source: str | None = None,
) -> ImportSummary:
    """Upsert agencies by code; all or nothing. With dry_run nothing is written or audited."""
    if not dry_run:
        await session.execute(LOCK_TREE)
    rows, errors = check_rows(raw, await level_codes(session))
    existing = await _existing(session)
    depth = _check_tree(rows, existing, errors)
    errors.raise_if_any()

    ids = {code: e.id for code, e in existing.items()}
    for row in rows:
        ids.setdefault(row.code, uuid.uuid4())
    created: list[AgencyRow] = []
    updated: list[AgencyRow] = []
    unchanged = 0
    for row in rows:
        before = existing.get(row.code)
        if before is None:
            created.append(row)
        elif before.values != _values(row) or before.parent_code != row.parent_code:
            updated.append(row)
        else:
            unchanged += 1
    summary = ImportSummary(
        dry_run=dry_run,
        rows=len(rows),
        created=len(created),
        updated=len(updated),
        unchanged=unchanged,
    )
    if dry_run:
        return summary
    changed = sorted(created + updated, key=lambda r: (depth[r.code], r.number))
    now = datetime.now(UTC)
    for start in range(0, len(changed), BATCH_SIZE):
        await _upsert(session, changed[start : start + BATCH_SIZE], ids, now)
    await audit.record(
        session,
        actor,
        "agency.import",
        object_type="agency",
        summary={
            "source": source,
            "created": [r.code for r in created],
            "updated": [r.code for r in updated],
            "unchanged": unchanged,
        },
    )
    return summary


async def _upsert(
    session: AsyncSession, rows: list[AgencyRow], ids: dict[str, uuid.UUID], now: datetime
) -> None:
    """One INSERT ... ON CONFLICT (code) DO UPDATE for a batch, parents before children."""
    stmt = pg.insert(Agency).values(
        [
            {
                "id": ids[r.code],
                "code": r.code,
                **_values(r),
                "parent_id": ids[r.parent_code] if r.parent_code else None,
                "search_name": search_name(r.name, r.short_name),
                "created_at": now,
                "updated_at": now,
            }
            for r in rows
        ]
    )
    excluded = stmt.excluded
    updatable = [*_values(rows[0]).keys(), "parent_id", "search_name", "updated_at"]
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["code"], set_={name: excluded[name] for name in updatable}
        )
    )


# --- export ------------------------------------------------------------------------------------


async def export_rows(session: AsyncSession, principal: Principal) -> list[dict[str, Any]]:
    """The agencies the caller may see, by code, in the import's column layout."""
    parent = aliased(Agency)
    query = (
        access.readable_agencies(principal)
        .add_columns(col(parent.code))
        .outerjoin(parent, col(parent.id) == col(Agency.parent_id))
        .order_by(col(Agency.code))
    )
    return [
        {
            "code": a.code,
            "name": a.name,
            "short_name": a.short_name,
            "kind": str(a.kind),
            "level": a.level,
            "parent_code": parent_code,
            "is_measured": a.is_measured,
            "valid_from": a.valid_from,
            "valid_to": a.valid_to,
            "admin_unit_code": a.admin_unit_code,
        }
        for a, parent_code in (await session.execute(query)).all()
    ]


def export_text(value: Any) -> str:
    """A stored value as the text written to an exported cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def to_csv(rows: Iterable[dict[str, Any]]) -> bytes:
    """UTF-8 with a BOM, so that Excel shows the Vietnamese text right."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([export_text(row[c]) for c in COLUMNS])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def to_xlsx(rows: Iterable[dict[str, Any]]) -> bytes:
    """Sheet 1 has the CSV's columns (machine names in row 1); sheet 2 explains them in
    Vietnamese. Text cells stay text, so codes such as 08 keep their leading zero."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None  # noqa: S101 - a new workbook always has one sheet
    sheet.title = "agencies"
    sheet.append(list(COLUMNS))
    for row in rows:
        cells: list[Any] = []
        for name in COLUMNS:
            value = row[name]
            if isinstance(value, bool):
                cells.append("true" if value else "false")
            else:
                cells.append(value)
        sheet.append(cells)
    for column in ("H", "I"):
        for cell in sheet[column][1:]:
            cell.number_format = "yyyy-mm-dd"
    legend = workbook.create_sheet("chu_thich")
    legend.append(["cot", "y_nghia"])
    for name in COLUMNS:
        legend.append([name, HEADINGS_VI[name]])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
