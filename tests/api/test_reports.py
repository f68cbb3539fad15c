"""Publishing: an immutable, versioned snapshot; JSON, CSV and XLSX read back exactly."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.cache import Budget
from app.config import Settings
from app.models.agency import Agency
from app.models.campaign import Campaign, CampaignState
from app.models.identity import Role
from app.models.report import Report
from app.models.submission import Channel, Submission, SubmissionState
from app.services import report_files
from app.services import reports as reports_service
from app.services.report_files import RENDERING_VERSION
from tests.factories import bearer, make_agency, make_campaign, make_user
from tests.helpers.problems import assert_problem

NAME = "Ủy ban nhân dân huyện Chiêm Hóa"


def form(campaign: Campaign, agency: Agency, answers: dict[str, object]) -> Submission:
    return Submission(
        campaign_id=campaign.id,
        client_submission_id=uuid.uuid4(),
        request_hash="x",
        agency_id=agency.id,
        channel=Channel.post_office,
        state=SubmissionState.valid,
        answers=answers,
        received_at=datetime.now(UTC),
    )


@pytest.fixture
async def closed(session: AsyncSession) -> tuple[Campaign, Agency]:
    province = await make_agency(session, level="province", name="Ủy ban nhân dân tỉnh Tuyên Quang")
    district = await make_agency(session, parent=province, level="district", name=NAME)
    campaign = await make_campaign(session, agencies=[province], state=CampaignState.closed)
    for i in range(10):
        level = 5 if i < 4 else 4 if i < 8 else 3
        session.add(
            form(campaign, district, {"E1.C1": level, "E1.C2": 4, "E2.C1": level, "R.GENDER": "nu"})
        )
    await session.flush()
    return campaign, district


async def test_publish_snapshot_is_immutable_and_versioned(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    closed: tuple[Campaign, Agency],
) -> None:
    campaign, district = closed
    analyst = bearer(settings, await make_user(session, Role.analyst))
    published = await client.post(
        f"/api/v1/campaigns/{campaign.id}/reports",
        json={"reason": "Công bố kết quả"},
        headers=analyst,
    )
    assert published.status_code == 201, published.text
    first = published.json()
    assert first["version"] == 1
    assert first["forms_counted"] == 10
    await session.refresh(campaign)
    assert campaign.state == "published"

    url = f"/api/v1/reports/{first['id']}"
    got = await client.get(url, headers=analyst)
    assert got.status_code == 200
    assert got.headers["etag"] == first["etag"]
    assert "immutable" in got.headers["cache-control"]
    body = got.json()
    # 8 of 10 satisfied on E1.C1: 80; E1.C2 all 4: 100; E1 = 90; E2 = 80; overall = 85
    assert body["total"]["index"]["value_display"] == "85.00"
    assert body["total"]["index"]["value"] == pytest.approx(85.0)
    assert body["questionnaire"]["version"] == 1
    assert body["data_cutoff"]
    assert len(body["inputs_hash"]) == 64
    agencies = {c["label"]: c for c in body["breakdowns"]["agency"]}
    assert agencies[NAME]["n_respondents"] == 10
    assert (
        await client.get(url, headers={**analyst, "If-None-Match": first["etag"]})
    ).status_code == 304

    # Forms that change afterwards change the live index, never the published report.
    session.add(form(campaign, district, {"E1.C1": 1, "E1.C2": 1, "E2.C1": 1, "R.GENDER": "nam"}))
    await session.flush()
    again = await client.get(url, headers=analyst)
    assert again.content == got.content
    assert again.headers["etag"] == first["etag"]
    live = await client.get(f"/api/v1/campaigns/{campaign.id}/index", headers=analyst)
    assert live.json()["total"]["index"]["value"] != "85.00"

    second = await client.post(f"/api/v1/campaigns/{campaign.id}/reports", json={}, headers=analyst)
    assert second.status_code == 201
    assert second.json()["version"] == 2
    assert second.json()["id"] != first["id"]
    assert second.json()["inputs_hash"] != first["inputs_hash"]
    assert (await client.get(url, headers=analyst)).content == got.content
    latest = await client.get(f"/api/v1/campaigns/{campaign.id}/reports/latest", headers=analyst)
    assert latest.json()["version"] == 2
    versions = await client.get(f"/api/v1/campaigns/{campaign.id}/reports", headers=analyst)
    assert [v["version"] for v in versions.json()["items"]] == [1, 2]

    with pytest.raises(DBAPIError, match="immutable"):
        async with session.begin_nested():
            await session.execute(sa.text("UPDATE reports SET forms_counted = 0"))


async def test_csv_and_xlsx_read_back_with_exact_vietnamese(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    closed: tuple[Campaign, Agency],
) -> None:
    campaign, _ = closed
    admin = bearer(settings, await make_user(session, Role.admin))
    report = (
        await client.post(f"/api/v1/campaigns/{campaign.id}/reports", json={}, headers=admin)
    ).json()
    supervisor = bearer(settings, await make_user(session, Role.supervisor))

    exported = await client.get(f"/api/v1/reports/{report['id']}/export.csv", headers=supervisor)
    assert exported.status_code == 200
    assert exported.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    mine = [r for r in rows if r["breakdown"] == "agency" and r["cell_label"] == NAME]
    overall = next(r for r in mine if r["node_id"] == "overall")
    assert overall["value"] == "85.00"
    labels = {r["label_vi"] for r in mine}
    assert "Chỗ ngồi chờ" in labels
    etag = exported.headers["etag"]
    cached = await client.get(
        f"/api/v1/reports/{report['id']}/export.csv", headers={**supervisor, "If-None-Match": etag}
    )
    assert cached.status_code == 304

    xlsx = await client.get(f"/api/v1/reports/{report['id']}/export.xlsx", headers=supervisor)
    assert xlsx.status_code == 200
    book = load_workbook(io.BytesIO(xlsx.content))
    assert "Tổng hợp" in book.sheetnames
    assert "Theo cơ quan, đơn vị" in book.sheetnames
    sheet = book["Theo cơ quan, đơn vị"]
    header = [c.value for c in sheet[1]]
    assert header[:3] == ["Nhóm", "Mã nhóm", "Tên nhóm"]
    assert "Giá trị (%)" in header
    value_col = header.index("Giá trị (%)")
    row = next(
        r
        for r in sheet.iter_rows(min_row=2, values_only=True)
        if r[2] == NAME and r[4] == "overall"
    )
    assert isinstance(row[value_col], int | float)  # a number, not text
    assert row[value_col] == pytest.approx(85.0)


async def test_only_closed_or_published_campaigns_publish(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    campaign = await make_campaign(
        session, agencies=[await make_agency(session)], state=CampaignState.open
    )
    admin = bearer(settings, await make_user(session, Role.admin))
    response = await client.post(f"/api/v1/campaigns/{campaign.id}/reports", json={}, headers=admin)
    assert_problem(response, 409, "campaign_not_closed")


async def test_publishing_needs_reports_write(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    closed: tuple[Campaign, Agency],
) -> None:
    campaign, _ = closed
    for role in (Role.supervisor, Role.agency_manager, Role.surveyor):
        agency = await make_agency(session) if role is Role.agency_manager else None
        headers = bearer(settings, await make_user(session, role, agency=agency))
        response = await client.post(
            f"/api/v1/campaigns/{campaign.id}/reports", json={}, headers=headers
        )
        assert_problem(response, 403, "forbidden")
    missing = await client.get(
        f"/api/v1/reports/{uuid.uuid4()}",
        headers=bearer(settings, await make_user(session, Role.analyst)),
    )
    assert_problem(missing, 404, "not_found")


async def test_renderings_are_made_once_and_a_304_renders_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    closed: tuple[Campaign, Agency],
) -> None:
    """A report never changes, so its JSON, CSV and XLSX are rendered once per process and
    kept within a byte budget; a caller holding the current tag gets a 304 before the
    snapshot is read at all."""
    campaign, _ = closed
    admin = bearer(settings, await make_user(session, Role.admin))
    report = (
        await client.post(f"/api/v1/campaigns/{campaign.id}/reports", json={}, headers=admin)
    ).json()
    rid = uuid.UUID(report["id"])
    url = f"/api/v1/reports/{rid}"
    kept = reports_service.RENDERINGS
    kept.clear()

    summary = await client.get(f"/api/v1/campaigns/{campaign.id}/reports", headers=admin)
    etag = next(r["etag"] for r in summary.json()["items"] if r["id"] == str(rid))
    held = await client.get(url, headers={**admin, "If-None-Match": etag})
    assert held.status_code == 304
    assert held.content == b""
    assert not kept  # nothing rendered, nothing read

    first = await client.get(url, headers=admin)
    again = await client.get(url, headers=admin)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert first.headers["etag"] == etag
    assert [k[2] for k in kept] == ["json"]
    stored = await session.scalar(sa.select(col(Report.content)).where(col(Report.id) == rid))
    assert json.loads(first.content) == stored

    with kept.budget_of(Budget(max_bytes=1)):
        exported = await client.get(f"{url}/export.csv", headers=admin)
        assert exported.status_code == 200
        assert exported.headers["etag"] == etag[:-1] + f'-csv{RENDERING_VERSION}"'
        assert [k[2] for k in kept] == ["csv"]  # over budget: only the newest is kept
        assert (await client.get(f"{url}/export.csv", headers=admin)).content == exported.content


@pytest.mark.parametrize(
    ("figure", "shown"),
    [
        # a snapshot made since numbers are JSON numbers: the display string is published
        (
            {
                "value": 26.675000000000001,
                "value_display": "26.68",
                "ci_low": 20.004999,
                "ci_low_display": "20.00",
                "ci_high": None,
                "ci_high_display": None,
            },
            (26.68, 20.0, None),
        ),
        # an older snapshot: the values themselves were the display strings
        ({"value": "85.00", "ci_low": "80.10", "ci_high": "89.90"}, (85.0, 80.1, 89.9)),
    ],
)
def test_renderings_show_the_published_figures(
    figure: dict[str, object], shown: tuple[float | None, ...]
) -> None:
    node = {
        "id": "overall",
        "kind": "overall",
        "label_vi": "Chỉ số SIPAS",
        "n": 40,
        "low_reliability": False,
        "suppressed": False,
        "children": [],
        **figure,
    }
    cell = {"key": "all", "label": "Tỉnh", "n_respondents": 40, "index": node}
    (row,) = report_files.table({"total": cell, "breakdowns": {}})
    assert tuple(row[7:10]) == shown
    body = report_files.to_csv({"total": cell, "breakdowns": {}}).decode("utf-8-sig")
    (line,) = list(csv.DictReader(io.StringIO(body)))
    assert line["value"] == f"{shown[0]:.2f}"
