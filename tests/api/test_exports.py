"""Exports a spreadsheet can open safely and a fetcher can count on.

Trust, hole 11: text that a spreadsheet would evaluate (`=`, `+`, `-`, `@`, tab, carriage
return first) comes out inert in every CSV and XLSX export: prefixed with `'` in CSV, a string
cell in XLSX. Numbers, negative ones included, stay numbers. And the contract of issue 13:
counts as integers, flags as 1 and 0, agencies by code and name, one column per item or
measure, Vietnamese text exactly as stored.
"""

from __future__ import annotations

import csv
import io
import unicodedata
import uuid
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.agency import Agency
from app.models.campaign import Campaign, CampaignState, FrameContact, FrameUnit
from app.models.submission import Channel, Submission, SubmissionState
from app.services import tabular
from tests.factories import make_agency, make_campaign

FORMULA = '=HYPERLINK("http://x","y")'
HOSTILE = [FORMULA, "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
# Decomposed on purpose nowhere: the API stores NFC, and NFC must come back byte for byte.
VIETNAMESE = unicodedata.normalize("NFC", "Ủy ban nhân dân xã Thượng Lâm, huyện Lâm Bình")


def csv_rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.content.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


def text_cells(content: bytes) -> dict[str, list[Any]]:
    """Every cell of every sheet holding a hostile value, with its data type."""
    book = load_workbook(io.BytesIO(content))
    found: dict[str, list[Any]] = {}
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value in HOSTILE:
                    found.setdefault(cell.value, []).append(cell.data_type)
    return found


def test_neutralise_touches_text_only() -> None:
    assert [tabular.neutralise(v) for v in HOSTILE] == ["'" + v for v in HOSTILE]
    assert tabular.neutralise("Sở Tư pháp") == "Sở Tư pháp"
    assert tabular.csv_text(-3) == "-3"
    assert tabular.csv_text(-2.5) == "-2.5"
    assert tabular.csv_text(True) == "1"
    assert tabular.csv_text(False) == "0"
    assert tabular.csv_text(date(2020, 1, 2)) == "2020-01-02"


# ---- agencies ----------------------------------------------------------------------------------


async def test_hole_11_agency_export_is_inert_and_imports_back_unchanged(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    hostile = await make_agency(session, name=FORMULA)
    hostile.short_name = "-UBND"
    await session.flush()
    exported = await client.get("/api/v1/agencies/export", headers=admin)
    rows = {r["code"]: r for r in csv_rows(exported)}
    mine = rows[hostile.code]
    assert mine["name"] == "'" + FORMULA
    assert mine["short_name"] == "'-UBND"
    assert mine["is_measured"] in ("1", "0")

    # The import undoes the apostrophe: what was exported comes back unchanged.
    again = await client.post(
        "/api/v1/agencies/import",
        params={"dry_run": "true"},
        files={"file": ("agencies.csv", exported.content, "text/csv")},
        headers=admin,
    )
    assert again.status_code == 200, again.text
    assert again.json()["created"] == again.json()["updated"] == 0

    book = await client.get("/api/v1/agencies/export", params={"format": "xlsx"}, headers=admin)
    sheet = load_workbook(io.BytesIO(book.content))["agencies"]
    cell = next(r[1] for r in sheet.iter_rows(min_row=2) if r[0].value == hostile.code)
    assert cell.value == FORMULA
    assert cell.data_type == "s"  # a string, not a formula


# ---- worklist ----------------------------------------------------------------------------------


async def test_hole_11_worklist_csv_is_inert(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    agency = await make_agency(session, name=VIETNAMESE)
    campaign = await make_campaign(session, agencies=[agency], state=CampaignState.open)
    unit = FrameUnit(
        campaign_id=campaign.id,
        dossier_code="=1+1",
        agency_id=agency.id,
        returned_on=date(2020, 3, 1),
        in_sample=True,
    )
    session.add(unit)
    await session.flush()
    session.add(FrameContact(frame_unit_id=unit.id, name=FORMULA, phone="+84912345678"))
    await session.flush()
    response = await client.get(
        f"/api/v1/campaigns/{campaign.id}/worklist", params={"format": "csv"}, headers=admin
    )
    [row] = csv_rows(response)
    assert row["contact_name"] == "'" + FORMULA
    assert row["contact_phone"] == "'+84912345678"
    assert row["dossier_code"] == "'=1+1"
    assert row["agency_name"] == VIETNAMESE


# ---- submissions -------------------------------------------------------------------------------


def form(
    campaign: Campaign, agency: Agency, answers: dict[str, object], **extra: Any
) -> Submission:
    return Submission(
        campaign_id=campaign.id,
        client_submission_id=uuid.uuid4(),
        request_hash="x",
        agency_id=agency.id,
        channel=Channel.post_office,
        state=SubmissionState.valid,
        answers=answers,
        received_at=datetime.now(UTC),
        **extra,
    )


async def test_hole_11_submissions_export_is_inert_with_one_column_per_item(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    agency = await make_agency(session, name=VIETNAMESE)
    campaign = await make_campaign(session, agencies=[agency], state=CampaignState.open)
    session.add(
        form(
            campaign,
            agency,
            {"E1.C1": 5, "E1.C2": 4, "R.GENDER": "nu", "C.NOTE": FORMULA, "X.DELTA": -3},
            is_synthetic=True,
        )
    )
    session.add(form(campaign, agency, {"E1.C1": 2, "C.NOTE": "Cán bộ nhiệt tình, chu đáo"}))
    await session.flush()
    response = await client.get(
        "/api/v1/submissions/export", params={"campaign_id": str(campaign.id)}, headers=admin
    )
    rows = csv_rows(response)
    assert len(rows) == 2
    header = list(rows[0])
    assert "answers" not in header
    assert "agency_id" not in header
    # Every item of the questionnaire has its column, in form order, then unknown keys.
    assert header.index("E1.C1") < header.index("E1.C2") < header.index("C.NOTE")
    assert header[-1] == "X.DELTA"
    first, second = rows
    assert first["C.NOTE"] == "'" + FORMULA
    assert first["X.DELTA"] == "-3"  # a number stays a number
    assert first["E1.C1"] == "5"
    assert first["is_synthetic"] == "1"
    assert second["is_synthetic"] == "0"
    assert second["E1.C2"] == ""  # not answered: an empty cell, the column still there
    assert first["agency_code"] == agency.code
    assert first["agency_name"] == VIETNAMESE
    assert first["campaign_code"] == campaign.code
    assert second["C.NOTE"] == "Cán bộ nhiệt tình, chu đáo"


# ---- reports -----------------------------------------------------------------------------------


@pytest.fixture
async def report(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> tuple[dict[str, Any], Agency]:
    province = await make_agency(session, level="province", name=VIETNAMESE)
    hostile = await make_agency(session, parent=province, level="district", name=FORMULA)
    plain = await make_agency(session, parent=province, level="district", name=VIETNAMESE)
    campaign = await make_campaign(session, agencies=[province], state=CampaignState.closed)
    for i in range(10):
        level = 5 if i < 6 else 2
        session.add(form(campaign, hostile, {"E1.C1": level, "E1.C2": 4, "E2.C1": level}))
        session.add(form(campaign, plain, {"E1.C1": 5, "E1.C2": 5, "E2.C1": 5}))
    await session.flush()
    published = await client.post(
        f"/api/v1/campaigns/{campaign.id}/reports", json={}, headers=admin
    )
    assert published.status_code == 201, published.text
    return published.json(), hostile


async def test_hole_11_report_csv_is_inert_with_codes_integers_and_flags(
    client: httpx.AsyncClient, admin: dict[str, str], report: tuple[dict[str, Any], Agency]
) -> None:
    summary, hostile = report
    rows = csv_rows(await client.get(f"/api/v1/reports/{summary['id']}/export.csv", headers=admin))
    mine = [r for r in rows if r["breakdown"] == "agency" and r["cell_code"] == hostile.code]
    assert mine
    assert {r["cell_label"] for r in mine} == {"'" + FORMULA}
    labels = {r["cell_label"] for r in rows if r["breakdown"] == "agency"}
    assert labels == {"'" + FORMULA, VIETNAMESE}  # no UUID anywhere in the agency cells
    overall = next(r for r in mine if r["node_id"] == "overall")
    assert overall["n_respondents"] == "10"
    assert overall["n"] == "10"
    assert overall["low_reliability"] in ("0", "1")
    assert overall["suppressed"] == "0"
    # E1.C1 6 of 10 satisfied, E1.C2 all: E1 = 80; E2 = 60; overall = 70
    assert overall["value"] == "70.00"
    assert float(overall["value_exact"]) == pytest.approx(70.0)
    total = next(r for r in rows if r["breakdown"] == "total" and r["node_id"] == "overall")
    assert total["cell_code"] == "all"


async def test_hole_11_report_xlsx_writes_text_as_strings(
    client: httpx.AsyncClient, admin: dict[str, str], report: tuple[dict[str, Any], Agency]
) -> None:
    summary, hostile = report
    response = await client.get(f"/api/v1/reports/{summary['id']}/export.xlsx", headers=admin)
    assert response.status_code == 200
    found = text_cells(response.content)
    assert set(found[FORMULA]) == {"s"}
    book = load_workbook(io.BytesIO(response.content))
    agencies = book["Theo cơ quan, đơn vị"]
    overall = [r for r in agencies.iter_rows(min_row=2, values_only=True) if r[4] == "overall"]
    assert {r[2] for r in overall} == {FORMULA, VIETNAMESE}  # exactly as stored (NFC)
    row = next(r for r in overall if r[2] == FORMULA)
    assert row[1] == hostile.code
    assert isinstance(row[3], int)  # a count, as an integer
    assert row[7] == pytest.approx(70.0)  # a value, as a number


async def test_export_etags_change_with_the_renderers(
    client: httpx.AsyncClient, admin: dict[str, str], report: tuple[dict[str, Any], Agency]
) -> None:
    """A caller holding a CSV made by the old renderers (tag `<snapshot>-csv`) gets the new
    rendering, not a 304."""
    summary, _ = report
    url = f"/api/v1/reports/{summary['id']}/export.csv"
    old = summary["etag"][:-1] + '-csv"'
    response = await client.get(url, headers={**admin, "If-None-Match": old})
    assert response.status_code == 200
    assert response.headers["etag"] != old
