"""Bulk import and export of the agency map as CSV or XLSX.

An import is all or nothing: every row is checked first (including parents that come later in
the file and cycles formed only by the file's own rows) and any bad row refuses the whole file
with one error per bad row. Good files are written with a few multi-row upserts, parents first.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from openpyxl import Workbook
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from app.models.agency import (
    Agency,
    AgencyKind,
    ImportSummary,
    bad_characters,
    check_code,
)
from app.models.base import nfc
from app.services import access, audit, tabular
from app.services.agencies import LOCK_TREE, level_codes, search_name
from app.services.principal import Principal
from app.services.tabular import (
    BATCH_SIZE,
    RawRow,
    RowErrors,
    cell_as_text,
    is_xlsx,
    parse_date,
)

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
_TRUE = {"true", "1", "yes", "y", "có", "x"}
_FALSE = {"false", "0", "no", "n", "không"}


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


# --- reading -----------------------------------------------------------------------------------


def raw_rows(table: tabular.Table) -> list[RawRow]:
    """Map the cells under the header; blank lines are skipped but still counted."""
    return tabular.keyed_rows(table, COLUMNS, REQUIRED, RowErrors())


async def parse_upload(
    filename: str | None, content_type: str | None, data: bytes, limits: tabular.Limits
) -> list[RawRow]:
    """An uploaded file, parsed off the event loop within the import limits."""
    return raw_rows(await tabular.read_upload(filename, content_type, data, limits))


def parse_file(filename: str | None, content_type: str | None, data: bytes) -> list[RawRow]:
    """A trusted file (the seed data), parsed in the calling thread."""
    kind: tabular.Kind = "xlsx" if is_xlsx(filename, content_type, data) else "csv"
    return raw_rows(tabular.read_table(data, kind, tabular.Limits()))


# --- checking ----------------------------------------------------------------------------------


def _row_texts(row: RawRow, errors: RowErrors) -> dict[str, str | None]:
    """The row's cells as NFC text; a missing required cell or an unreadable one is an error."""
    n = row.number
    if row.cells.get("__extra__"):
        errors.add(n, None, "more cells than columns", "extra_cells")
    text: dict[str, str | None] = {}
    unreadable: set[str] = set()
    for name in COLUMNS:
        value = cell_as_text(row.cells.get(name))
        if value is not None and bad_characters(value):
            errors.add(n, name, f"{name} has control characters or invalid UTF-8", "bad_characters")
            unreadable.add(name)
            value = None
        text[name] = nfc(value) or None if value is not None else None
    for name in REQUIRED:
        if text[name] is None and name not in unreadable:
            errors.add(n, name, f"{name} is required", "missing")
    return text


def _row_code(n: int, code: str | None, first_row: dict[str, int], errors: RowErrors) -> str | None:
    if code is None:
        return None
    try:
        code = check_code(code)
    except ValueError as exc:
        errors.add(n, "code", str(exc), "bad_code")
        return None
    if code in first_row:
        errors.add(n, "code", f"duplicate code: already on row {first_row[code]}", "duplicate_code")
    else:
        first_row[code] = n
    return code


def _row_kind(n: int, value: str | None, errors: RowErrors) -> AgencyKind | None:
    if value is None:
        return None
    try:
        return AgencyKind(value)
    except ValueError:
        known = ", ".join(k.value for k in AgencyKind)
        errors.add(n, "kind", f"unknown kind {value!r} (use {known})", "unknown_kind")
        return None


def _row_level(n: int, value: str | None, levels: set[str], errors: RowErrors) -> None:
    if value is not None and value not in levels:
        known = ", ".join(sorted(levels))
        errors.add(n, "level", f"unknown level {value!r} (use {known})", "unknown_level")


def _row_measured(n: int, value: str | None, errors: RowErrors) -> bool:
    measured_text = (value or "").lower()
    if measured_text in _FALSE:
        return False
    if measured_text and measured_text not in _TRUE:
        errors.add(n, "is_measured", "use true or false", "bad_boolean")
    return True


def _row_dates(
    row: RawRow, text: dict[str, str | None], errors: RowErrors
) -> tuple[date | None, date | None]:
    n = row.number
    dates: dict[str, date | None] = {"valid_from": None, "valid_to": None}
    for name in dates:
        if text[name] is None:
            continue
        try:
            dates[name] = parse_date(row.cells.get(name))
        except ValueError:
            errors.add(n, name, "not a date; use YYYY-MM-DD", "bad_date")
    valid_from, valid_to = dates["valid_from"], dates["valid_to"]
    if valid_from and valid_to and valid_to < valid_from:
        errors.add(n, "valid_to", "valid_to is before valid_from", "bad_date_range")
    return valid_from, valid_to


def check_rows(raw: list[RawRow], levels: set[str]) -> tuple[list[AgencyRow], RowErrors]:
    """Each row on its own: characters, required fields, vocabularies, dates, duplicates."""
    errors = RowErrors()
    good: list[AgencyRow] = []
    first_row: dict[str, int] = {}
    for row in raw:
        n = row.number
        text = _row_texts(row, errors)
        code = _row_code(n, text["code"], first_row, errors)
        kind = _row_kind(n, text["kind"], errors)
        _row_level(n, text["level"], levels, errors)
        is_measured = _row_measured(n, text["is_measured"], errors)
        valid_from, valid_to = _row_dates(row, text, errors)
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


def to_csv(rows: Iterable[dict[str, Any]]) -> bytes:
    """UTF-8 with a BOM, so that Excel shows the Vietnamese text right; booleans as 1 and 0
    (which the import reads back), text neutralised against formulas."""
    return tabular.csv_bytes(COLUMNS, ([row[c] for c in COLUMNS] for row in rows))


def to_xlsx(rows: Iterable[dict[str, Any]]) -> bytes:
    """Sheet 1 has the CSV's columns (machine names in row 1); sheet 2 explains them in
    Vietnamese. Text cells stay text (never formulas), so codes such as 08 keep their leading
    zero."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None  # noqa: S101 - a new workbook always has one sheet
    sheet.title = "agencies"
    tabular.xlsx_append(sheet, COLUMNS)
    for row in rows:
        cells: list[Any] = []
        for name in COLUMNS:
            value = row[name]
            if isinstance(value, bool):
                cells.append("true" if value else "false")
            else:
                cells.append(value)
        tabular.xlsx_append(sheet, cells)
    for column in ("H", "I"):
        for cell in sheet[column][1:]:
            cell.number_format = "yyyy-mm-dd"
    legend = workbook.create_sheet("chu_thich")
    tabular.xlsx_append(legend, ["cot", "y_nghia"])
    for name in COLUMNS:
        tabular.xlsx_append(legend, [name, HEADINGS_VI[name]])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
