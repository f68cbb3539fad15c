"""Public results without a token: which reports, what they show, and how they are served."""

from __future__ import annotations

import csv
import gzip
import io
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.db import Database
from app.main import create_app
from app.models.agency import Agency
from app.models.audit import AuditEvent
from app.models.campaign import Campaign, CampaignState
from app.models.identity import Role
from app.models.report import Report
from app.models.submission import Channel, Submission, SubmissionState
from app.services import campaigns
from app.services.auth import user_principal
from tests.conftest import make_settings
from tests.factories import bearer, make_agency, make_campaign, make_user
from tests.helpers.problems import assert_problem

PUBLIC = "/public/v1"
NOTE = "Gọi tôi: 0912 345 678, Nguyễn Thị Hoà"
# The small agency's own values (3 forms, below suppress_below = 5): E1.C1 2 of 3 satisfied,
# E2.C1 1 of 3, so 66.67, 33.33, E1 83.33, overall 58.33. None may appear in a public output.
SMALL_VALUES = ("66.67", "33.33", "83.33", "58.33")


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


@dataclass
class Published:
    campaign: Campaign
    report: Report
    province: Agency
    big: Agency
    small: Agency


async def publish_world(session: AsyncSession, *, province_wide: bool = True) -> Published:
    province = await make_agency(session, level="province", name="UBND tỉnh Tuyên Quang")
    big = await make_agency(session, parent=province, level="district", name="UBND huyện Na Hang")
    small = await make_agency(
        session, parent=province, level="district", name="UBND huyện Lâm Bình"
    )
    # A third district outside the scope: a campaign of a few agencies is not province-wide.
    left_out = await make_agency(session, parent=province, level="district")
    scope = [province] if province_wide else [big, small]
    assert left_out not in scope
    campaign = await make_campaign(session, agencies=scope, state=CampaignState.closed)
    for i in range(10):
        level = 5 if i < 4 else 4 if i < 8 else 3
        answers = {"E1.C1": level, "E1.C2": 4, "E2.C1": level, "R.GENDER": "nu", "C.NOTE": NOTE}
        session.add(form(campaign, big, answers))
    for e11, e21 in ((5, 5), (5, 1), (1, 1)):
        session.add(form(campaign, small, {"E1.C1": e11, "E1.C2": 4, "E2.C1": e21}))
    await session.flush()
    admin = user_principal(await make_user(session, Role.admin))
    report = await campaigns.publish(session, admin, campaign.id, "Công bố kết quả")
    return Published(campaign, report, province, big, small)


@pytest.fixture
async def published(session: AsyncSession) -> Published:
    return await publish_world(session)


async def test_a_province_wide_report_is_public_and_shows_no_suppressed_value(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, published: Published
) -> None:
    listed = await client.get(f"{PUBLIC}/reports")
    assert listed.status_code == 200, listed.text
    mine = [r for r in listed.json()["items"] if r["id"] == str(published.report.id)]
    assert len(mine) == 1
    assert mine[0]["campaign"]["code"] == published.campaign.code
    assert mine[0]["links"]["csv"] == f"{PUBLIC}/reports/{published.report.id}/export.csv"

    got = await client.get(f"{PUBLIC}/reports/{published.report.id}")
    assert got.status_code == 200, got.text
    body = got.json()
    cells = {c["key"]: c for c in body["breakdowns"]["agency"]}
    small = cells[str(published.small.id)]
    assert small["suppressed"] is True
    assert small["n_respondents"] == 3
    assert small["index"]["value"] is None
    assert small["index"]["ci_low"] is None
    assert all(c["value"] is None for e in small["index"]["children"] for c in e["children"])
    big = cells[str(published.big.id)]
    assert big["index"]["value"] == "85.00"
    # The same figure as the staff report.
    analyst = bearer(settings, await make_user(session, Role.analyst))
    staff = (await client.get(f"/api/v1/reports/{published.report.id}", headers=analyst)).json()
    staff_big = next(c for c in staff["breakdowns"]["agency"] if c["key"] == str(published.big.id))
    assert staff_big["index"]["value_display"] == big["index"]["value"]
    assert body["total"]["index"]["value"] == staff["total"]["index"]["value_display"]

    text = got.text
    for value in SMALL_VALUES:
        assert value not in text
    # Figures only: no item shares (they carry the respondents' facts), no full precision,
    # no answer counts, no free text.
    for absent in ('"items"', '"exact"', '"counts"', '"dossier"', "R.GENDER", "0912", "Hoà"):
        assert absent not in text, absent

    exported = await client.get(f"{PUBLIC}/reports/{published.report.id}/export.csv")
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    small_rows = [r for r in rows if r["cell_code"] == published.small.code]
    assert small_rows
    assert all(r["value"] == "" for r in small_rows)
    assert not any(v in exported.text for v in SMALL_VALUES)
    big_overall = next(
        r for r in rows if r["cell_code"] == published.big.code and r["node_id"] == "overall"
    )
    assert big_overall["value"] == "85.00"

    xlsx = await client.get(f"{PUBLIC}/reports/{published.report.id}/export.xlsx")
    assert xlsx.status_code == 200
    book = load_workbook(io.BytesIO(xlsx.content))
    values = [
        c for sheet in book.worksheets for row in sheet.iter_rows(values_only=True) for c in row
    ]
    assert "UBND huyện Lâm Bình" in values
    assert not any(isinstance(v, float) and f"{v:.2f}" in SMALL_VALUES for v in values), (
        "a suppressed value in the workbook"
    )


async def test_public_reads_are_cached_compressed_and_tagged(
    client: httpx.AsyncClient, published: Published
) -> None:
    url = f"{PUBLIC}/reports/{published.report.id}"
    first = await client.get(url)
    etag = first.headers["etag"]
    assert "public" in first.headers["cache-control"]
    assert "max-age=31536000" in first.headers["cache-control"]
    again = await client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    raw = await client.get(url, headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    # httpx decodes; the body is the same document
    assert raw.json() == first.json()
    stream = client.build_request("GET", url, headers={"Accept-Encoding": "gzip"})
    response = await client.send(stream, stream=True)
    compressed = b"".join([chunk async for chunk in response.aiter_raw()])
    await response.aclose()
    assert json.loads(gzip.decompress(compressed)) == first.json()
    assert len(compressed) < len(first.content)
    # Each format has its own tag.
    tags = {
        (await client.get(f"{url}{suffix}")).headers["etag"]
        for suffix in ("", "/export.csv", "/export.xlsx", "/agencies")
    }
    assert len(tags) == 4
    listing = await client.get(f"{PUBLIC}/reports")
    assert listing.headers["cache-control"] == "public, max-age=300"
    assert (
        await client.get(f"{PUBLIC}/reports", headers={"If-None-Match": listing.headers["etag"]})
    ).status_code == 304


async def test_agency_summaries_rank_criteria_against_the_province(
    client: httpx.AsyncClient, published: Published
) -> None:
    url = f"{PUBLIC}/reports/{published.report.id}/agencies"
    body = (await client.get(url)).json()
    by_code = {a["code"]: a for a in body["items"]}
    big = by_code[published.big.code]
    assert big["overall"] == "85.00"
    assert big["name"] == "UBND huyện Na Hang"
    # E1.C2 (100) before E1.C1 and E2.C1 (80 each, by id)
    assert [c["id"] for c in big["criteria"]] == ["E1.C2", "E1.C1", "E2.C1"]
    province = {c["id"]: c["province_value"] for c in big["criteria"]}
    # Province: 10 of 13 satisfied on E1.C1, 9 of 13 on E2.C1.
    assert province == {"E1.C1": "76.92", "E1.C2": "100.00", "E2.C1": "69.23"}
    diff = {c["id"]: c["difference"] for c in big["criteria"]}
    assert diff == {"E1.C1": "3.08", "E1.C2": "0.00", "E2.C1": "10.77"}
    assert [e["id"] for e in big["elements"]] == ["E1", "E2"]
    assert big["rank"] == 1
    assert big["ranked_among"] == 2
    small = by_code[published.small.code]
    assert small["overall"] is None
    assert small["suppressed"] is True
    assert all(c["value"] is None and c["difference"] is None for c in small["criteria"])
    one = await client.get(f"{url}/{published.big.code}")
    assert one.json() == big
    assert_problem(await client.get(f"{url}/NO-SUCH"), 404, "not_found")
    assert_problem(await client.get(f"{PUBLIC}/reports/{uuid.uuid4()}"), 404, "not_found")


async def test_publicity_is_set_by_admin_or_analyst_and_audited(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    world = await publish_world(session, province_wide=False)
    rid = world.report.id
    # Not province-wide: private until someone decides.
    assert_problem(await client.get(f"{PUBLIC}/reports/{rid}"), 404, "not_found")
    analyst = bearer(settings, await make_user(session, Role.analyst))
    state = await client.get(f"/api/v1/reports/{rid}/publicity", headers=analyst)
    assert state.json()["is_public"] is False
    assert state.json()["explicit"] is False

    url = f"/api/v1/reports/{rid}/publicity"
    assert_problem(await client.post(url, json={"is_public": True}), 401, "unauthorized")
    for role in (Role.supervisor, Role.agency_manager, Role.surveyor):
        who = bearer(settings, await make_user(session, role, agency=world.big))
        assert_problem(
            await client.post(url, json={"is_public": True}, headers=who), 403, "forbidden"
        )
    assert_problem(
        await client.post(url, json={"is_public": "sometimes"}, headers=analyst),
        422,
        "validation_failed",
    )
    made = await client.post(
        url, json={"is_public": True, "reason": "Công khai theo Chỉ thị"}, headers=analyst
    )
    assert made.status_code == 200, made.text
    assert made.json()["is_public"] is True
    assert made.json()["explicit"] is True
    assert (await client.get(f"{PUBLIC}/reports/{rid}")).status_code == 200
    admin = bearer(settings, await make_user(session, Role.admin))
    hidden = await client.post(url, json={"is_public": False}, headers=admin)
    assert hidden.status_code == 200
    assert_problem(await client.get(f"{PUBLIC}/reports/{rid}"), 404, "not_found")
    assert_problem(await client.get(f"{PUBLIC}/reports/{rid}/export.csv"), 404, "not_found")
    listed = (await client.get(f"{PUBLIC}/reports")).json()["items"]
    assert str(rid) not in {r["id"] for r in listed}
    events = (
        await session.scalars(
            sa.select(AuditEvent)
            .where(
                col(AuditEvent.object_id) == str(rid), col(AuditEvent.action) == "report.publicity"
            )
            .order_by(col(AuditEvent.id))
        )
    ).all()
    assert [e.summary["is_public"] for e in events] == [True, False]
    assert events[0].summary["reason"] == "Công khai theo Chỉ thị"
    assert_problem(
        await client.post(
            f"/api/v1/reports/{uuid.uuid4()}/publicity", json={"is_public": True}, headers=admin
        ),
        404,
        "not_found",
    )


async def test_public_reads_are_rate_limited_per_source(settings: Settings, db: Database) -> None:
    app: FastAPI = create_app(
        make_settings(settings.database_url or "", public_requests_per_minute=3), database=db
    )
    # A source address of its own, so no other test's requests count against it.
    source = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    other = "203.0.113.9"
    seen = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(source, 4000)), base_url="http://test"
    ) as c:
        for _ in range(5):
            seen.append(await c.get(f"{PUBLIC}/reports"))
    assert [r.status_code for r in seen[:3]] == [200, 200, 200]
    assert seen[-1].status_code == 429
    assert_problem(seen[-1], 429, "rate_limited")
    assert int(seen[-1].headers["retry-after"]) >= 1
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(other + str(uuid.uuid4().int % 9), 1)),
        base_url="http://test",
    ) as c:
        assert (await c.get(f"{PUBLIC}/reports")).status_code == 200


async def test_a_scope_of_every_measured_district_is_the_whole_province(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """As the demo campaigns: no province agency in scope, but every measured department and
    district in force on the map date (2020-10-31) is; agencies gone by then do not count."""
    province = await make_agency(session, level="province")
    districts = [await make_agency(session, parent=province, level="district") for _ in range(2)]
    await make_agency(session, parent=province, level="district", valid_to=date(2019, 12, 31))
    await make_agency(session, parent=province, level="district", is_measured=False)
    campaign = await make_campaign(session, agencies=districts, state=CampaignState.closed)
    for d in districts:
        for _ in range(6):
            session.add(form(campaign, d, {"E1.C1": 5, "E1.C2": 4, "E2.C1": 4}))
    await session.flush()
    admin = user_principal(await make_user(session, Role.admin))
    report = await campaigns.publish(session, admin, campaign.id, None)
    # Another campaign's reports must not confuse the rule (each is judged on its own scope).
    other = await make_campaign(session, agencies=districts[:1], state=CampaignState.closed)
    await campaigns.publish(session, admin, other.id, None)
    await campaigns.publish(session, admin, other.id, None)
    assert (await client.get(f"{PUBLIC}/reports/{report.id}")).status_code == 200
    listed = (await client.get(f"{PUBLIC}/reports")).json()["items"]
    assert [r["id"] for r in listed] == [str(report.id)]
    # One measured district in force left out: no longer the whole province.
    await make_agency(session, parent=province, level="department")
    assert_problem(await client.get(f"{PUBLIC}/reports/{report.id}"), 404, "not_found")
