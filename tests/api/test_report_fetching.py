"""What a report fetcher needs (issue 13): the list across campaigns with filters, cursor and
ETag; HEAD wherever GET has an ETag; gzip for JSON and CSV; and publishing over identical
inputs answering the version already stored."""

from __future__ import annotations

import gzip
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.agency import Agency
from app.models.audit import AuditEvent
from app.models.campaign import Campaign, CampaignState
from app.models.identity import Role, Scope
from app.models.submission import Channel, Submission, SubmissionState
from tests.factories import bearer, make_agency, make_campaign, make_client, make_user
from tests.helpers.problems import assert_problem

LIST = "/api/v1/reports"


def form(campaign: Campaign, agency: Agency, level: int = 5) -> Submission:
    return Submission(
        campaign_id=campaign.id,
        client_submission_id=uuid.uuid4(),
        request_hash="x",
        agency_id=agency.id,
        channel=Channel.post_office,
        state=SubmissionState.valid,
        answers={"E1.C1": level, "E1.C2": 4, "E2.C1": level},
        received_at=datetime.now(UTC),
    )


@dataclass(frozen=True, slots=True)
class World:
    province: Agency
    covered: Agency
    other: Agency
    a: Campaign
    b: Campaign
    admin: dict[str, str]
    first: dict[str, Any]
    second: dict[str, Any]


async def publish(
    client: httpx.AsyncClient, headers: dict[str, str], campaign: Campaign
) -> httpx.Response:
    return await client.post(f"/api/v1/campaigns/{campaign.id}/reports", json={}, headers=headers)


@pytest.fixture
async def world(client: httpx.AsyncClient, session: AsyncSession, settings: Settings) -> World:
    """A province with two districts; campaign A covers the province, campaign B one district
    only. Both are published."""
    province = await make_agency(session, level="province", name="Tỉnh Tuyên Quang")
    covered = await make_agency(session, parent=province, level="district", name="Huyện Na Hang")
    other = await make_agency(session, parent=province, level="district", name="Huyện Yên Sơn")
    a = await make_campaign(session, agencies=[province], state=CampaignState.closed)
    b = await make_campaign(session, agencies=[covered], state=CampaignState.closed)
    for _ in range(6):
        session.add(form(a, covered))
        session.add(form(a, other, 3))
        session.add(form(b, covered, 4))
    await session.flush()
    admin = bearer(settings, await make_user(session, Role.admin))
    first = await publish(client, admin, a)
    second = await publish(client, admin, b)
    assert first.status_code == second.status_code == 201, first.text
    return World(
        province=province,
        covered=covered,
        other=other,
        a=a,
        b=b,
        admin=admin,
        first=first.json(),
        second=second.json(),
    )


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_reports_list_filters_by_agency_campaign_and_since(
    client: httpx.AsyncClient, world: World
) -> None:
    w = world
    a_id, b_id = w.first["id"], w.second["id"]
    # The agency covered by both campaigns (A through its province), by code or by id.
    both = await client.get(LIST, params={"agency": w.covered.code}, headers=w.admin)
    assert ids(both) == [a_id, b_id]
    assert both.json()["items"][0]["campaign_code"] == w.a.code
    assert both.json()["items"][0]["campaign_year"] == w.a.year
    by_id = await client.get(LIST, params={"agency": str(w.covered.id)}, headers=w.admin)
    assert ids(by_id) == [a_id, b_id]
    # The other district is covered by A only; the province by A only (B covers less).
    assert ids(await client.get(LIST, params={"agency": w.other.code}, headers=w.admin)) == [a_id]
    assert ids(await client.get(LIST, params={"agency": w.province.code}, headers=w.admin)) == [
        a_id
    ]
    assert ids(await client.get(LIST, params={"campaign": w.b.code}, headers=w.admin)) == [b_id]
    assert ids(await client.get(LIST, params={"campaign": str(w.a.id)}, headers=w.admin)) == [a_id]
    since = w.first["published_at"]
    later = await client.get(
        LIST, params={"agency": w.covered.code, "since": since}, headers=w.admin
    )
    assert ids(later) == [b_id]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert ids(await client.get(LIST, params={"since": future}, headers=w.admin)) == []

    # Past year 9999 once the offset is applied: a clear 422, not an overflow.
    edge = await client.get(LIST, params={"since": "9999-12-31T23:59:59-14:00"}, headers=w.admin)
    assert_problem(edge, 422, "invalid")
    assert edge.json()["errors"][0]["pointer"] == "/query/since"

    unknown = await client.get(LIST, params={"agency": "NO-SUCH-AGENCY"}, headers=w.admin)
    assert_problem(unknown, 422, "invalid")
    assert unknown.json()["errors"][0]["pointer"] == "/query/agency"
    unknown = await client.get(LIST, params={"campaign": str(uuid.uuid4())}, headers=w.admin)
    assert_problem(unknown, 422, "invalid")
    assert unknown.json()["errors"][0]["pointer"] == "/query/campaign"


async def test_reports_list_pages_by_cursor_and_answers_304(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    w = world
    params = {"agency": w.covered.code, "limit": "1"}
    page1 = await client.get(LIST, params=params, headers=w.admin)
    assert ids(page1) == [w.first["id"]]
    cursor = page1.json()["next_cursor"]
    assert cursor
    page2 = await client.get(LIST, params={**params, "cursor": cursor}, headers=w.admin)
    assert ids(page2) == [w.second["id"]]
    assert page2.json()["next_cursor"] is None
    bad = await client.get(LIST, params={**params, "cursor": "bm9wZQ"}, headers=w.admin)
    assert_problem(bad, 422, "bad_cursor")

    listed = await client.get(LIST, params={"agency": w.covered.code}, headers=w.admin)
    etag = listed.headers["etag"]
    held = await client.get(
        LIST, params={"agency": w.covered.code}, headers={**w.admin, "If-None-Match": etag}
    )
    assert held.status_code == 304
    assert held.content == b""
    # A new version is news: the same poll gets the list again, with another tag.
    session.add(form(w.b, w.covered, 1))
    await session.flush()
    assert (await publish(client, w.admin, w.b)).status_code == 201
    fresh = await client.get(
        LIST, params={"agency": w.covered.code}, headers={**w.admin, "If-None-Match": etag}
    )
    assert fresh.status_code == 200
    assert fresh.headers["etag"] != etag
    assert len(fresh.json()["items"]) == 3


async def test_reports_list_keeps_the_read_rules(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    w = world
    assert_problem(await client.get(LIST), 401, "unauthorized")
    surveyor = bearer(settings, await make_user(session, Role.surveyor))
    assert_problem(await client.get(LIST, headers=surveyor), 403, "forbidden")
    # A client bound to campaign B sees B's versions only, and A is unknown to it.
    fetcher, _ = await make_client(session, [Scope.reports_read])
    fetcher.campaign_id = w.b.id
    await session.flush()
    bound = bearer(settings, fetcher)
    assert ids(await client.get(LIST, params={"agency": w.covered.code}, headers=bound)) == [
        w.second["id"]
    ]
    refused = await client.get(LIST, params={"campaign": w.a.code}, headers=bound)
    assert_problem(refused, 422, "invalid")


# ---- HEAD and gzip ----------------------------------------------------------------------------


async def test_head_answers_every_get_with_an_etag_without_a_body(
    client: httpx.AsyncClient, world: World
) -> None:
    w = world
    rid = w.first["id"]
    urls = [
        f"/api/v1/reports/{rid}",
        f"/api/v1/reports/{rid}/export.csv",
        f"/api/v1/reports/{rid}/export.xlsx",
        f"/api/v1/campaigns/{w.a.id}/reports/latest",
        LIST,
        "/api/v1/agencies/export",
    ]
    plain = {**w.admin, "Accept-Encoding": "identity"}
    for url in urls:
        got = await client.get(url, headers=plain)
        head = await client.head(url, headers=plain)
        assert got.status_code == head.status_code == 200, (url, head.status_code)
        assert head.content == b""
        assert head.headers["etag"] == got.headers["etag"]
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-length"] == str(len(got.content))
        held = await client.head(url, headers={**plain, "If-None-Match": got.headers["etag"]})
        assert held.status_code == 304
    assert (await client.head("/healthz")).status_code == 200


async def test_json_and_csv_are_gzipped_and_keep_their_etags(
    client: httpx.AsyncClient, world: World
) -> None:
    w = world
    rid = w.first["id"]
    for url in (f"/api/v1/reports/{rid}", f"/api/v1/reports/{rid}/export.csv"):
        plain = await client.get(url, headers={**w.admin, "Accept-Encoding": "identity"})
        zipped = await client.get(url, headers={**w.admin, "Accept-Encoding": "gzip"})
        assert "content-encoding" not in plain.headers
        assert zipped.headers["content-encoding"] == "gzip"
        assert "accept-encoding" in zipped.headers["vary"].lower()
        assert zipped.content == plain.content  # httpx decodes: the same bytes
        assert int(zipped.headers["content-length"]) < len(plain.content)
        assert zipped.headers["etag"] == plain.headers["etag"]
        held = await client.get(
            url,
            headers={**w.admin, "Accept-Encoding": "gzip", "If-None-Match": zipped.headers["etag"]},
        )
        assert held.status_code == 304
    xlsx = await client.get(
        f"/api/v1/reports/{rid}/export.xlsx", headers={**w.admin, "Accept-Encoding": "gzip"}
    )
    assert "content-encoding" not in xlsx.headers  # a zip already
    # The streamed submissions export is gzipped too.
    streamed = await client.get(
        "/api/v1/submissions/export",
        params={"campaign_id": str(w.a.id)},
        headers={**w.admin, "Accept-Encoding": "gzip"},
    )
    assert streamed.status_code == 200
    assert streamed.headers["content-encoding"] == "gzip"
    assert streamed.content.startswith(b"\xef\xbb\xbf")
    raw = gzip.compress(streamed.content)
    assert gzip.decompress(raw) == streamed.content


# ---- publishing again --------------------------------------------------------------------------


async def test_publishing_identical_inputs_again_answers_the_stored_version(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    w = world
    again = await publish(client, w.admin, w.a)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == w.first
    publishes = await session.scalar(
        sa.select(sa.func.count(col(AuditEvent.id))).where(
            col(AuditEvent.action) == "report.publish",
            col(AuditEvent.object_id) == w.first["id"],
        )
    )
    assert publishes == 1

    # New forms are new inputs: a new version.
    session.add(form(w.a, w.other, 1))
    await session.flush()
    changed = await publish(client, w.admin, w.a)
    assert changed.status_code == 201
    assert changed.json()["version"] == 2
    # So is a renamed agency: its cells would be labelled differently.
    w.other.name = "Thành phố Tuyên Quang"
    await session.flush()
    renamed = await publish(client, w.admin, w.a)
    assert renamed.status_code == 201
    assert renamed.json()["version"] == 3
    assert renamed.json()["inputs_hash"] != changed.json()["inputs_hash"]
