"""Bulk import and export of agencies: all or nothing, row-exact errors, lossless round trips."""

from __future__ import annotations

import csv
import io
import unicodedata
import uuid

import httpx
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.agency import Agency
from app.models.identity import Role
from app.services.agency_io import COLUMNS
from app.services.tabular import XLSX_MEDIA_TYPE
from tests.factories import bearer, make_agency, make_user
from tests.helpers.problems import assert_problem

URL = "/api/v1/agencies/import"
HEADER = ",".join(COLUMNS)


def prefix() -> str:
    return f"IMP{uuid.uuid4().hex[:6].upper()}"


def line(code: str, parent: str = "", **cells: str) -> str:
    values = {
        "code": code,
        "name": f"Ủy ban nhân dân xã Đồng Quý {code}",
        "short_name": "UBND xã Đồng Quý",
        "kind": "people_committee",
        "level": "commune",
        "parent_code": parent,
        "is_measured": "true",
        "valid_from": "2008-01-01",
        "valid_to": "",
        "admin_unit_code": "02536",
    }
    values.update(cells)
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([values[c] for c in COLUMNS])
    return out.getvalue()


def csv_file(lines: list[str], bom: bool = False) -> bytes:
    data = "\n".join([HEADER, *lines]).encode()
    return (b"\xef\xbb\xbf" + data) if bom else data


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    data: bytes,
    *,
    name: str = "agencies.csv",
    media_type: str = "text/csv",
    dry_run: bool = False,
) -> httpx.Response:
    return await client.post(
        URL,
        params={"dry_run": str(dry_run).lower()},
        files={"file": (name, data, media_type)},
        headers=headers,
    )


async def codes_with(session: AsyncSession, start: str) -> set[str]:
    rows = await session.scalars(
        sa.select(col(Agency.code)).where(col(Agency.code).startswith(start))
    )
    return set(rows.all())


@pytest.fixture
async def admin(session: AsyncSession, settings: Settings) -> dict[str, str]:
    headers = bearer(settings, await make_user(session, Role.admin))
    await session.commit()  # keep the user when a refused import rolls the session back
    return headers


async def test_parents_may_come_after_children_and_a_second_import_is_unchanged(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    p = prefix()
    data = csv_file(
        [
            line(f"{p}.X.1", f"{p}.D"),
            line(f"{p}.D", p, level="district"),
            line(p, "", level="province", kind="people_committee"),
        ],
        bom=True,
    )
    dry = await upload(client, admin, data, dry_run=True)
    assert dry.status_code == 200, dry.text
    assert dry.json() == {"dry_run": True, "rows": 3, "created": 3, "updated": 0, "unchanged": 0}
    assert await codes_with(session, p) == set()

    done = await upload(client, admin, data)
    assert done.json() == {"dry_run": False, "rows": 3, "created": 3, "updated": 0, "unchanged": 0}
    child = await session.scalar(sa.select(Agency).where(col(Agency.code) == f"{p}.X.1"))
    parent = await session.scalar(sa.select(Agency).where(col(Agency.code) == f"{p}.D"))
    assert child is not None
    assert parent is not None
    assert child.parent_id == parent.id
    assert child.search_name.startswith("uy ban nhan dan xa dong quy")

    again = await upload(client, admin, data)
    assert again.json()["unchanged"] == 3
    changed = csv_file([line(f"{p}.X.1", p, valid_to="2025-06-30")])
    updated = await upload(client, admin, changed)
    assert updated.json() == {
        "dry_run": False,
        "rows": 1,
        "created": 0,
        "updated": 1,
        "unchanged": 0,
    }
    await session.refresh(child)
    assert child.parent_id != parent.id


BAD_ROWS: list[tuple[str, dict[str, str], str, str]] = [
    ("unknown parent", {"parent_code": "NO.SUCH.PARENT"}, "parent_code", "unknown_parent"),
    ("bad date range", {"valid_to": "2001-01-01"}, "valid_to", "bad_date_range"),
    ("bad date", {"valid_from": "01/02/2008"}, "valid_from", "bad_date"),
    ("control character", {"name": "Xã\x07 Lỗi"}, "name", "bad_characters"),
    ("unknown level", {"level": "hamlet"}, "level", "unknown_level"),
    ("unknown kind", {"kind": "ministry"}, "kind", "unknown_kind"),
    ("missing name", {"name": ""}, "name", "missing"),
    ("missing valid_from", {"valid_from": ""}, "valid_from", "missing"),
    ("bad boolean", {"is_measured": "maybe"}, "is_measured", "bad_boolean"),
]


@pytest.mark.parametrize(
    ("what", "cells", "column", "code"), BAD_ROWS, ids=[b[0] for b in BAD_ROWS]
)
async def test_one_bad_row_among_a_hundred_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: dict[str, str],
    what: str,
    cells: dict[str, str],
    column: str,
    code: str,
) -> None:
    p = prefix()
    rows = [line(p, "", level="province")]
    rows += [line(f"{p}.{i:03}", p, **(cells if i == 57 else {})) for i in range(1, 100)]
    response = await upload(client, admin, csv_file(rows))

    body = assert_problem(response, 422, "import_rejected")
    # row 1 is the header, row 2 the province, so child 57 sits on row 59
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [  # type: ignore[attr-defined]
        (f"/rows/59/{column}", code)
    ]
    assert await codes_with(session, p) == set()


async def test_invalid_utf8_and_duplicates_are_reported_per_row(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    p = prefix()
    data = csv_file([line(p, "", level="province"), line(f"{p}.A", p), line(f"{p}.A", p)])
    data = data.replace(b"xa\xcc\x83", b"xa")  # keep the test independent of NFC
    broken = data + b"\n" + line(f"{p}.B", p).encode().replace("Đồng".encode(), b"\xc4\x90\xff")
    body = assert_problem(await upload(client, admin, broken), 422, "import_rejected")
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [  # type: ignore[attr-defined]
        ("/rows/4/code", "duplicate_code"),
        ("/rows/5/name", "bad_characters"),
    ]
    assert await codes_with(session, p) == set()


async def test_a_cycle_in_the_file_or_with_stored_agencies_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    p = prefix()
    in_file = csv_file(
        [
            line(f"{p}.A", f"{p}.B"),
            line(f"{p}.B", f"{p}.C"),
            line(f"{p}.C", f"{p}.A"),
            line(f"{p}.D", f"{p}.A"),
        ]
    )
    body = assert_problem(await upload(client, admin, in_file), 422, "import_rejected")
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [  # type: ignore[attr-defined]
        ("/rows/2/parent_code", "cycle"),
        ("/rows/3/parent_code", "cycle"),
        ("/rows/4/parent_code", "cycle"),
    ]

    root = await make_agency(session, code=f"{p}.ROOT")
    child = await make_agency(session, code=f"{p}.KID", parent=root)
    root_id = root.id
    await session.commit()
    assert child.parent_id == root_id
    with_stored = csv_file([line(f"{p}.ROOT", f"{p}.KID", level="department", kind="department")])
    body = assert_problem(await upload(client, admin, with_stored), 422, "import_rejected")
    assert body["errors"][0]["pointer"] == "/rows/2/parent_code"  # type: ignore[index]
    assert body["errors"][0]["code"] == "cycle"  # type: ignore[index]
    stored = await session.get(Agency, root_id)
    assert stored is not None
    await session.refresh(stored)
    assert stored.parent_id is None


async def test_a_bad_header_is_refused(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    body = assert_problem(await upload(client, admin, b"code,ten\nX,Y\n"), 422, "import_rejected")
    pointers = {e["pointer"] for e in body["errors"]}  # type: ignore[attr-defined]
    assert "/rows/1/name" in pointers
    assert_problem(
        await upload(client, admin, b"not a zip", name="a.xlsx", media_type=XLSX_MEDIA_TYPE),
        422,
        "unreadable_file",
    )


def _nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_import_export_import_is_lossless(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str], fmt: str
) -> None:
    p = prefix()
    names = {
        p: "Ủy ban nhân dân tỉnh Tuyên Quang",
        f"{p}.SVH": "Sở Văn hóa, Thể thao và Du lịch",
        f"{p}.XA": 'Ủy ban nhân dân xã Ỷ La "mới"',
    }
    rows = [
        line(p, "", name=_nfd(names[p]), level="province", admin_unit_code="08"),
        line(
            f"{p}.SVH",
            p,
            name=_nfd(names[f"{p}.SVH"]),
            short_name="",
            is_measured="false",
            kind="department",
            level="department",
            admin_unit_code="",
        ),
        line(f"{p}.XA", p, name=_nfd(names[f"{p}.XA"]), valid_to="2025-06-30"),
    ]
    first = await upload(client, admin, csv_file(rows))
    assert first.json()["created"] == 3
    stored = {
        a.code: a
        for a in (
            await session.scalars(sa.select(Agency).where(col(Agency.code).startswith(p)))
        ).all()
    }
    assert {c: a.name for c, a in stored.items()} == names  # composed (NFC) on the way in

    exported = await client.get("/api/v1/agencies/export", params={"format": fmt}, headers=admin)
    assert exported.status_code == 200, exported.text
    if fmt == "csv":
        assert exported.content.startswith(b"\xef\xbb\xbf")
        assert exported.content[3:].split(b"\r\n", 1)[0].decode() == HEADER
        table = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
        media_type = "text/csv"
    else:
        assert exported.headers["content-type"] == XLSX_MEDIA_TYPE
        sheet = load_workbook(io.BytesIO(exported.content)).worksheets[0]
        table = [
            ["" if c is None else str(c) for c in r] for r in sheet.iter_rows(values_only=True)
        ]
        media_type = XLSX_MEDIA_TYPE
    assert list(table[0]) == list(COLUMNS)
    mine = [r for r in table[1:] if str(r[0]).startswith(p)]
    assert {r[0]: r[1] for r in mine} == names
    assert next(r for r in mine if r[0] == p)[9] == "08"

    again = await upload(
        client, admin, exported.content, name=f"agencies.{fmt}", media_type=media_type
    )
    assert again.status_code == 200, again.text
    assert again.json()["created"] == 0
    assert again.json()["updated"] == 0
    assert again.json()["unchanged"] == again.json()["rows"]


async def test_import_needs_the_write_scope(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    data = csv_file([line(prefix(), "", level="province")])
    assert_problem(await upload(client, {}, data), 401, "unauthorized")
    for role in (Role.supervisor, Role.analyst):
        headers = bearer(settings, await make_user(session, role))
        assert_problem(await upload(client, headers, data), 403, "forbidden")
    assert_problem(await client.get("/api/v1/agencies/export"), 401, "unauthorized")


async def test_export_has_an_etag(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    await make_agency(session)
    first = await client.get("/api/v1/agencies/export", headers=admin)
    cached = await client.get(
        "/api/v1/agencies/export", headers={**admin, "If-None-Match": first.headers["etag"]}
    )
    assert cached.status_code == 304
