"""Trust, hole 10: imports that stalled or bloated the server. Every file here is hostile and
built in the test; each must be answered 413 `import_too_large` naming the limit, or 422
`unreadable_file`, and never stop the server from answering others."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import Database
from app.main import create_app
from app.models.identity import Role
from app.services import tabular
from app.services.agency_io import COLUMNS
from app.services.tabular import XLSX_MEDIA_TYPE
from tests.conftest import make_settings
from tests.factories import bearer, make_user
from tests.helpers.problems import assert_problem

URL = "/api/v1/agencies/import"
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
PACKAGE = "http://schemas.openxmlformats.org/package/2006"
OFFICE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def column_letter(index: int) -> str:
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def row_xml(number: int, values: list[str], first_column: int = 1) -> str:
    cells = "".join(
        f'<c r="{column_letter(first_column + i)}{number}" t="inlineStr"><is><t>{v}</t></is></c>'
        for i, v in enumerate(values)
    )
    return f'<row r="{number}">{cells}</row>'


def sheet_xml(rows: str, dimension: str = "A1", prolog: str = XML) -> bytes:
    return (
        f'{prolog}<worksheet xmlns="{MAIN}"><dimension ref="{dimension}"/>'
        f"<sheetData>{rows}</sheetData></worksheet>"
    ).encode()


def xlsx(
    sheet: bytes,
    *,
    shared: bytes | None = None,
    workbook_prolog: str = XML,
    extra: dict[str, bytes] | None = None,
    sheet_path: str = "worksheets/sheet1.xml",
) -> bytes:
    """A minimal workbook written part by part, so each part can be made hostile."""
    types = (
        f'{XML}<Types xmlns="{PACKAGE}/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'
    )
    rels = (
        f'{XML}<Relationships xmlns="{PACKAGE}/relationships">'
        f'<Relationship Id="rId1" Type="{OFFICE}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    )
    workbook = (
        f'{workbook_prolog}<workbook xmlns="{MAIN}" xmlns:r="{OFFICE}">'
        '<sheets><sheet name="agencies" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    workbook_rels = (
        f'{XML}<Relationships xmlns="{PACKAGE}/relationships">'
        f'<Relationship Id="rId1" Type="{OFFICE}/worksheet" Target="{sheet_path}"/>'
        f'<Relationship Id="rId2" Type="{OFFICE}/sharedStrings" Target="sharedStrings.xml"/>'
        "</Relationships>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", types)
        archive.writestr("_rels/.rels", rels)
        archive.writestr("xl/workbook.xml", workbook)
        archive.writestr("xl/_rels/workbook.xml.rels", workbook_rels)
        archive.writestr(f"xl/{sheet_path}", sheet)
        archive.writestr("xl/sharedStrings.xml", shared or f'{XML}<sst xmlns="{MAIN}"/>'.encode())
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


AGENCY = [
    "HOLE10",
    "Sở Tư pháp tỉnh Tuyên Quang",
    "Sở Tư pháp",
    "department",
    "department",
    "",
    "true",
    "2008-01-01",
    "",
    "",
]


def agency_sheet(dimension: str = "A1:J2") -> bytes:
    return sheet_xml(row_xml(1, list(COLUMNS)) + row_xml(2, AGENCY), dimension)


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    data: bytes,
    *,
    name: str = "agencies.xlsx",
    media_type: str = XLSX_MEDIA_TYPE,
) -> httpx.Response:
    return await client.post(
        URL,
        params={"dry_run": "true"},
        files={"file": (name, data, media_type)},
        headers=headers,
    )


def assert_too_large(response: httpx.Response, limit: str) -> None:
    body = assert_problem(response, 413, "import_too_large")
    assert body["limit"] == limit, body
    assert response.json()["errors"][0]["pointer"] == "/body/file"


@pytest.fixture
def limits(app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set import limits of the shared app for one test (they are read per request)."""

    def set_limits(**values: Any) -> None:
        changed = settings.model_copy(update={f"import_max_{k}": v for k, v in values.items()})
        # State keeps its attributes in a dict that monkeypatch.setattr cannot restore.
        monkeypatch.setitem(app.state._state, "settings", changed)

    return set_limits


@pytest.fixture
async def roomy(
    database_url: str, db: Database, session: AsyncSession
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with a body limit large enough for the files of the attack run, on the
    test's transaction."""
    app = create_app(make_settings(database_url, max_body_bytes=8 * 2**20), database=db)

    @asynccontextmanager
    async def in_test_transaction(_: Database) -> AsyncIterator[AsyncSession]:
        yield session

    app.state.session_scope = in_test_transaction
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


# ---- XLSX --------------------------------------------------------------------------------------


def test_hole_10_a_declared_dimension_of_a1_xfd12000_is_not_trusted() -> None:
    """1.5 KB declaring A1:XFD12000 used to be read as 12,000 rows of 16,384 cells (780 MB);
    now each row is as wide as what it holds."""
    data = xlsx(agency_sheet(dimension="A1:XFD12000"))
    assert len(data) < 4096
    table = tabular.read_table(data, "xlsx", tabular.Limits())
    assert table.header == list(COLUMNS)
    assert [number for number, _ in table.rows] == [2]
    cells = table.rows[0][1]
    assert len(cells) <= len(COLUMNS)
    assert cells[:2] == AGENCY[:2]


async def test_hole_10_a_small_xlsx_declaring_xfd12000_imports_at_once(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await upload(client, admin, xlsx(agency_sheet(dimension="A1:XFD12000")))
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == 1


async def test_hole_10_a_cell_in_column_xfd_is_refused_naming_columns(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    rows = row_xml(1, list(COLUMNS)) + row_xml(2, ["x"], first_column=16384)
    response = await upload(client, admin, xlsx(sheet_xml(rows, "A1:XFD12000")))
    assert_too_large(response, "columns")


async def test_hole_10_a_row_numbered_past_the_limit_is_refused_naming_rows(
    client: httpx.AsyncClient, admin: dict[str, str], limits: Any
) -> None:
    limits(rows=1000)
    rows = row_xml(1, list(COLUMNS)) + row_xml(1_048_576, AGENCY)
    response = await upload(client, admin, xlsx(sheet_xml(rows)))
    assert_too_large(response, "rows")


async def test_hole_10_too_many_cells_are_refused_naming_cells(
    client: httpx.AsyncClient, admin: dict[str, str], limits: Any
) -> None:
    limits(cells=50)
    rows = row_xml(1, list(COLUMNS)) + "".join(row_xml(n, AGENCY) for n in range(2, 12))
    response = await upload(client, admin, xlsx(sheet_xml(rows)))
    assert_too_large(response, "cells")


async def test_hole_10_300000_shared_strings_are_refused_naming_shared_strings(
    roomy: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    assert Settings(_env_file=None).import_max_shared_strings < 300_000
    strings = "".join(f"<si><t>{n}</t></si>" for n in range(300_000))
    shared = f'{XML}<sst xmlns="{MAIN}" count="1" uniqueCount="1">{strings}</sst>'.encode()
    data = xlsx(agency_sheet(), shared=shared)
    assert len(data) < 8 * 2**20
    response = await upload(roomy, admin, data)
    assert_too_large(response, "shared_strings")


async def test_hole_10_an_inflating_member_is_refused_naming_uncompressed_bytes(
    client: httpx.AsyncClient, admin: dict[str, str], limits: Any
) -> None:
    limits(uncompressed_bytes=2 * 2**20)
    data = xlsx(agency_sheet(), extra={"xl/media/padding.bin": bytes(20 * 2**20)})
    assert len(data) < 64 * 1024  # 20 MB of zeros in a few kilobytes
    response = await upload(client, admin, data)
    assert_too_large(response, "uncompressed_bytes")


async def test_hole_10_thousands_of_zip_members_are_refused_naming_zip_members(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    extra = {f"xl/media/{n}.bin": b"" for n in range(500)}
    response = await upload(client, admin, xlsx(agency_sheet(), extra=extra))
    assert_too_large(response, "zip_members")


@pytest.mark.parametrize(
    "case",
    [
        "truncated_xml",
        "entity_declaration",
        "doctype_in_workbook",
        "doctype_in_a_part_not_named_xml",
        "truncated_zip",
        "utf16",
    ],
)
async def test_hole_10_malformed_xlsx_answers_422(
    client: httpx.AsyncClient, admin: dict[str, str], case: str
) -> None:
    if case == "truncated_xml":
        data = xlsx(agency_sheet()[:-60])
    elif case == "entity_declaration":
        laughs = (
            '<!DOCTYPE worksheet [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
            '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        )
        data = xlsx(sheet_xml(row_xml(1, ["&c;"]), prolog=XML + laughs))
    elif case == "doctype_in_workbook":
        data = xlsx(agency_sheet(), workbook_prolog=XML + "<!DOCTYPE workbook>")
    elif case == "doctype_in_a_part_not_named_xml":
        sheet = sheet_xml(row_xml(1, list(COLUMNS)), prolog=XML + "<!DOCTYPE worksheet>")
        data = xlsx(sheet, sheet_path="worksheets/sheet1.txt")
    elif case == "truncated_zip":
        data = xlsx(agency_sheet())[:-200]
    else:
        data = xlsx(agency_sheet().decode().replace("UTF-8", "UTF-16").encode("utf-16"))
    response = await upload(client, admin, data)
    assert_problem(response, 422, "unreadable_file")
    assert response.json()["errors"][0]["pointer"] == "/body/file"


# ---- CSV ---------------------------------------------------------------------------------------


async def test_hole_10_a_csv_header_of_40000_columns_is_refused_naming_columns(
    roomy: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    header = ",".join(f"column_{n:05d}" for n in range(40_000))
    data = (header + "\r\n").encode()
    assert len(data) > 256 * 1024
    response = await upload(roomy, admin, data, name="agencies.csv", media_type="text/csv")
    assert_too_large(response, "columns")


async def test_hole_10_csv_rows_and_cells_are_limited(
    client: httpx.AsyncClient, admin: dict[str, str], limits: Any
) -> None:
    lines = [",".join(COLUMNS)] + [",".join(AGENCY)] * 30
    data = "\r\n".join(lines).encode()
    limits(rows=20)
    response = await upload(client, admin, data, name="agencies.csv", media_type="text/csv")
    assert_too_large(response, "rows")
    limits(cells=100)
    response = await upload(client, admin, data, name="agencies.csv", media_type="text/csv")
    assert_too_large(response, "cells")


async def test_hole_10_frame_imports_are_limited_too(
    client: httpx.AsyncClient, admin: dict[str, str], session: AsyncSession
) -> None:
    """The frame import (CSV body or multipart) reads through the same limits."""
    from tests.factories import make_agency, make_campaign

    campaign = await make_campaign(session, agencies=[await make_agency(session)])
    header = ",".join(f"c{n}" for n in range(5000))
    response = await client.post(
        f"/api/v1/campaigns/{campaign.id}/frame",
        content=header.encode(),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert_too_large(response, "columns")
    response = await client.post(
        f"/api/v1/campaigns/{campaign.id}/frame",
        files={"file": ("frame.xlsx", xlsx(agency_sheet()[:-60]), XLSX_MEDIA_TYPE)},
        headers=admin,
    )
    assert_problem(response, 422, "unreadable_file")


# ---- time, and the server meanwhile ----------------------------------------------------------


def slow_workbook(rows: int) -> bytes:
    """A workbook of plain numbers that takes seconds to parse: 20 cells a row."""
    body = "".join(
        f'<row r="{r}">'
        + "".join(f'<c r="{column_letter(c)}{r}"><v>{r}</v></c>' for c in range(1, 21))
        + "</row>"
        for r in range(1, rows + 1)
    )
    return xlsx(sheet_xml(body))


async def test_hole_10_healthz_answers_while_a_slow_import_parses(
    database_url: str, db: Database, session: AsyncSession, settings: Settings
) -> None:
    """The parse runs off the event loop: /healthz is answered while the import is still
    running, and the import is cut at the time limit with 413 naming `seconds`."""
    app = create_app(
        make_settings(
            database_url,
            max_body_bytes=8 * 2**20,
            import_max_seconds=3.0,
            import_max_rows=10**7,
            import_max_cells=10**8,
        ),
        database=db,
    )

    @asynccontextmanager
    async def in_test_transaction(_: Database) -> AsyncIterator[AsyncSession]:
        yield session

    app.state.session_scope = in_test_transaction
    admin = bearer(settings, await make_user(session, Role.admin))
    data = slow_workbook(50_000)  # about 10 s of parsing when nothing stops it
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        importing = asyncio.create_task(upload(client, admin, data))
        await asyncio.sleep(0.2)  # let the import read its body and start parsing
        answered = 0
        while answered < 3:
            health = await client.get("/healthz")
            assert health.status_code == 200
            assert not importing.done(), "the import held the event loop until it finished"
            answered += 1
            await asyncio.sleep(0.05)
        assert_too_large(await importing, "seconds")


async def test_hole_10_limits_hold_when_no_child_process_can_start(
    client: httpx.AsyncClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no process may be forked (a daemonic worker), the parse runs in a thread: still
    off the event loop, still within every limit."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("no processes here")

    monkeypatch.setattr(tabular._CONTEXT, "Process", refuse)
    rows = row_xml(1, list(COLUMNS)) + row_xml(2, ["x"], first_column=16384)
    assert_too_large(await upload(client, admin, xlsx(sheet_xml(rows))), "columns")
    response = await upload(client, admin, xlsx(agency_sheet()))
    assert response.status_code == 200, response.text


def test_every_limit_is_read_from_its_own_setting(settings: Settings) -> None:
    """`Limits.of` reads `import_max_<limit>` by name: each limit must have its setting, and
    each must come from its own (distinct values, so a crossed pair would show)."""
    names = [f.name for f in dataclasses.fields(tabular.Limits)]
    chosen = {f"import_max_{name}": 1000 + i for i, name in enumerate(names)}
    limits = tabular.Limits.of(settings.model_copy(update=chosen))
    assert {name: getattr(limits, name) for name in names} == {
        name: chosen[f"import_max_{name}"] for name in names
    }
    assert len(names) == 7  # rows, columns, cells, shared strings, bytes, zip members, seconds
