"""The outbox and the pull feed: every hooked change writes its event in its own transaction,
the feed pages in commit order without skipping or repeating, and shows a caller only what it
may read."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.db import Database
from app.models.agency import Agency
from app.models.campaign import Campaign, CampaignState, Stratum
from app.models.catalogue import Procedure
from app.models.dossier import Invitation
from app.models.event import Event, EventType
from app.models.identity import Role, Scope
from app.security import sign_invitation
from app.services import events
from app.services.events import feed, progress
from app.services.paging import encode_cursor
from tests.factories import (
    bearer,
    make_agency,
    make_campaign,
    make_client,
    make_procedure,
    make_sector,
    make_user,
)
from tests.helpers.events import REVIEWED_FIELDS
from tests.helpers.horizon import settled
from tests.helpers.problems import assert_problem

ANSWERS = {"E1.C1": 5, "E1.C2": 4, "E2.C1": 3, "R.GENDER": "nu"}


@dataclass
class World:
    province: Agency
    district: Agency
    other: Agency
    procedure: Procedure
    campaign: Campaign
    kiosk: dict[str, str]
    admin: dict[str, str]
    one_stop: dict[str, str]

    def forms(self) -> str:
        return f"/api/v1/campaigns/{self.campaign.id}/submissions"


@pytest.fixture
async def world(session: AsyncSession, settings: Settings) -> World:
    province = await make_agency(session, level="province")
    district = await make_agency(session, parent=province, level="district")
    other = await make_agency(session, parent=province, level="district")
    procedure = await make_procedure(session, await make_sector(session))
    campaign = await make_campaign(session, agencies=[province], state=CampaignState.open)
    campaign.rates_dossiers = True
    await session.flush()
    kiosk, _ = await make_client(session, [Scope.submissions_write])
    one_stop, _ = await make_client(session, [Scope.dossiers_write])
    admin = await make_user(session, Role.admin)
    return World(
        province,
        district,
        other,
        procedure,
        campaign,
        bearer(settings, kiosk),
        bearer(settings, admin),
        bearer(settings, one_stop),
    )


def form(w: World, agency: Agency, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "submission_id": str(uuid.uuid4()),
        "agency_code": agency.code,
        "channel": "kiosk",
        "answers": ANSWERS,
    }
    body.update(changes)
    return body


async def events_of(session: AsyncSession, campaign: Campaign | None = None) -> list[Event]:
    query = sa.select(Event).order_by(col(Event.tx_id), col(Event.seq))
    if campaign is not None:
        query = query.where(col(Event.campaign_id) == campaign.id)
    return list((await session.scalars(query)).all())


async def feed_all(
    client: httpx.AsyncClient, headers: dict[str, str], limit: int = 2, **params: str
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": str(limit), **params}
        if cursor:
            query["cursor"] = cursor
        r = await client.get("/api/v1/events", params=query, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += page["items"]
        if not page["items"]:
            assert page["next_cursor"] == cursor  # a poller keeps its place
            return seen
        cursor = page["next_cursor"]


async def test_each_hooked_change_writes_its_event(
    client: httpx.AsyncClient, session: AsyncSession, world: World, settings: Settings
) -> None:
    # dossier.received, then invitation.used and submission.accepted by the form that uses it
    dossier = await client.post(
        "/api/v1/dossiers",
        json={
            "code": f"HS-{uuid.uuid4().hex[:10]}",
            "procedure_code": world.procedure.code,
            "agency_code": world.district.code,
            "returned_at": "2020-05-04T09:30:00+07:00",
        },
        headers=world.one_stop,
    )
    assert dossier.status_code == 201, dossier.text
    # Its invitation expired with the 2020 fieldwork: this one is still open.
    invitation = Invitation(
        dossier_id=uuid.UUID(dossier.json()["dossier_id"]),
        campaign_id=world.campaign.id,
        agency_id=world.district.id,
        procedure_id=world.procedure.id,
        expires_at=datetime.now(UTC) + timedelta(days=3),
    )
    await session.execute(
        sa.delete(Invitation).where(col(Invitation.dossier_id) == invitation.dossier_id)
    )
    session.add(invitation)
    await session.flush()
    token = sign_invitation(invitation.id, settings.secret_key.get_secret_value())
    used = await client.post(
        world.forms(), json=form(world, world.district, invitation=token), headers=world.kiosk
    )
    assert used.status_code == 201, used.text
    batch = await client.post(
        world.forms() + "/batch",
        json={"submissions": [form(world, world.district), form(world, world.other)]},
        headers=world.kiosk,
    )
    assert batch.status_code in (200, 201, 207), batch.text
    reviewed = await client.post(
        f"/api/v1/submissions/{used.json()['id']}/review",
        json={"state": "rejected", "reason": "Phiếu thử"},
        headers=world.admin,
    )
    assert reviewed.status_code == 200, reviewed.text
    closed = await client.post(
        f"/api/v1/campaigns/{world.campaign.id}/transition",
        json={"to": "closed", "reason": "Hết hạn"},
        headers=world.admin,
    )
    assert closed.status_code == 200, closed.text

    rows = await events_of(session)
    mine = [
        e
        for e in rows
        if e.campaign_id == world.campaign.id
        or e.payload.get("agency_id") == str(world.district.id)
    ]
    assert [e.type for e in mine] == [
        "dossier.received",
        "submission.accepted",
        "invitation.used",
        "submission.accepted",
        "submission.accepted",
        "submission.reviewed",
        "campaign.transitioned",
    ]
    received, accepted, inv, *_, review, transition = mine
    assert received.payload["dossier_id"] == dossier.json()["dossier_id"]
    assert received.agency_id == world.district.id
    assert accepted.payload["id"] == used.json()["id"]
    assert accepted.payload["channel"] == "kiosk"
    assert inv.payload["dossier_id"] == dossier.json()["dossier_id"]
    assert inv.payload["submission_id"] == used.json()["id"]
    assert review.payload["from"] == "received"
    assert review.payload["to"] == "rejected"
    assert review.payload["reason"] == "Phiếu thử"  # Vietnamese text kept as written
    # the ids an event is routed by are in its payload too
    assert set(review.payload) == REVIEWED_FIELDS
    assert review.payload["campaign_id"] == str(review.campaign_id) == str(world.campaign.id)
    assert review.payload["agency_id"] == str(review.agency_id)
    assert transition.payload == {
        "campaign_id": str(world.campaign.id),
        "code": world.campaign.code,
        "from": "open",
        "to": "closed",
        "reason": "Hết hạn",
    }
    assert transition.agency_id is None
    assert len({e.id for e in mine}) == len(mine)
    assert all(e.version == events.VERSIONS[EventType(e.type)] for e in mine)


async def test_a_rolled_back_change_leaves_no_event(
    session: AsyncSession, world: World, client: httpx.AsyncClient
) -> None:
    before = len(await events_of(session))
    savepoint = await session.begin_nested()
    await events.emit(
        session,
        type=EventType.submission_reviewed,
        payload={"x": 1},
        agency_id=world.district.id,
    )
    assert len(await events_of(session)) == before + 1
    await savepoint.rollback()
    assert len(await events_of(session)) == before
    # A request that fails after its form was checked writes neither form nor event.
    bad = await client.post(
        world.forms(), json=form(world, world.district, answers={"E1.C1": 9}), headers=world.kiosk
    )
    assert bad.status_code == 422
    assert len(await events_of(session)) == before


async def test_the_feed_pages_without_repeats_and_filters_by_type_and_caller(
    client: httpx.AsyncClient, session: AsyncSession, world: World, settings: Settings
) -> None:
    for agency in (world.district, world.other, world.district):
        r = await client.post(world.forms(), json=form(world, agency), headers=world.kiosk)
        assert r.status_code == 201
    closed = await client.post(
        f"/api/v1/campaigns/{world.campaign.id}/transition",
        json={"to": "closed"},
        headers=world.admin,
    )
    assert closed.status_code == 200
    expected = [str(e.id) for e in await events_of(session)]

    admin = await feed_all(client, world.admin, limit=50)
    assert [e["id"] for e in admin] == expected  # every event once, in order
    only = await feed_all(client, world.admin, limit=50, types="campaign.transitioned")
    assert [e["data"]["campaign_id"] for e in only][-1] == str(world.campaign.id)
    assert {e["type"] for e in only} == {"campaign.transitioned"}

    bound, _ = await make_client(session, [Scope.events_read], agency=world.district)
    seen = await feed_all(client, bearer(settings, bound))
    assert len(seen) == 2
    assert all(e["agency_id"] == str(world.district.id) for e in seen)
    manager = await make_user(session, Role.agency_manager, agency=world.other)
    assert [e["agency_id"] for e in await feed_all(client, bearer(settings, manager))] == [
        str(world.other.id)
    ]


async def test_the_feed_refuses_bad_input_and_unknown_callers(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    assert (await client.get("/api/v1/events")).status_code == 401
    assert_problem(await client.get("/api/v1/events", headers=world.kiosk), 403, "forbidden")
    bad_type = await client.get("/api/v1/events", params={"types": "x.y"}, headers=world.admin)
    body = assert_problem(bad_type, 422, "invalid")
    assert body["errors"][0]["pointer"] == "/query/types"  # type: ignore[index]
    for cursor in ("@@", encode_cursor({"tx": 2**64, "seq": 1}), encode_cursor({"tx": 1})):
        bad = await client.get("/api/v1/events", params={"cursor": cursor}, headers=world.admin)
        assert_problem(bad, 422, "bad_cursor")
    types = await client.get("/api/v1/webhooks/event-types", headers=world.admin)
    assert {t["type"] for t in types.json()} == {t.value for t in EventType}


async def test_behind_target_is_emitted_once_per_campaign_and_check_date(
    session: AsyncSession, world: World, settings: Settings
) -> None:
    # Fieldwork 2020-11-01 to 2020-12-15 (44 days): checked from 2020-11-23, half-way.
    session.add(Stratum(campaign_id=world.campaign.id, agency_id=world.district.id, target=10))
    await session.flush()
    assert progress.check_date(date(2020, 11, 1), date(2020, 12, 15), 0.5) == date(2020, 11, 23)
    assert progress.check_date(date(2020, 11, 1), date(2020, 11, 4), 0.5) == date(2020, 11, 3)
    assert await progress.check_behind_target(session, settings, date(2020, 11, 22)) == 0
    assert await progress.check_behind_target(session, settings, date(2020, 11, 23)) == 1
    assert await progress.check_behind_target(session, settings, date(2020, 11, 24)) == 0
    [event] = [
        e for e in await events_of(session, world.campaign) if e.type == "campaign.behind_target"
    ]
    assert event.payload["valid"] == 0
    assert event.payload["target"] == 10
    assert event.payload["check_date"] == "2020-11-23"


async def test_metrics_show_the_backlog(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    for name in (
        "sipas_webhook_backlog",
        "sipas_webhook_oldest_pending_seconds",
        'sipas_webhook_deliveries{state="dead"}',
        "sipas_events_undispatched",
        "sipas_index_unfolded_forms",
    ):
        assert name in text


@pytest.fixture
async def own_db(db: Database) -> AsyncIterator[Database]:
    yield db
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM events WHERE type = 'plan.updated'"))


async def test_an_event_that_commits_late_is_not_skipped(own_db: Database) -> None:
    """Two real transactions: the first writes, the second writes and commits; the feed shows
    neither until the first ends, then both, in order, and a cursor taken in between never
    passes over the late one."""
    from app.services.principal import Principal

    reader = Principal(kind="user", id=uuid.uuid4(), name="t", scopes=frozenset(Scope))
    marker = uuid.uuid4().hex

    async def page(cursor: str | None) -> tuple[list[str], str | None]:
        async with AsyncSession(own_db.engine) as s:
            got = await feed.list_events(
                s, reader, limit=500, cursor=cursor, types=[EventType.plan_updated]
            )
            await s.rollback()
        return [e.data["n"] for e in got.items if e.data.get("m") == marker], got.next_cursor

    _, start = await page(None)
    async with AsyncSession(own_db.engine) as early, AsyncSession(own_db.engine) as late:
        await events.emit(early, type=EventType.plan_updated, payload={"m": marker, "n": "early"})
        await early.flush()
        await events.emit(late, type=EventType.plan_updated, payload={"m": marker, "n": "late"})
        await late.commit()
        seen, cursor = await page(start)
        assert seen == []  # "late" committed, but waits behind the open "early"
        await early.commit()
    await asyncio.sleep(0)
    await settled(own_db.engine)  # other pytest-xdist workers' transactions end too
    seen, _ = await page(cursor)
    assert seen == ["early", "late"]


async def test_publishing_a_report_tells_its_version_and_where_to_fetch_it(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    r = await client.post(world.forms(), json=form(world, world.district), headers=world.kiosk)
    assert r.status_code == 201
    closed = await client.post(
        f"/api/v1/campaigns/{world.campaign.id}/transition",
        json={"to": "closed"},
        headers=world.admin,
    )
    assert closed.status_code == 200, closed.text
    published = await client.post(
        f"/api/v1/campaigns/{world.campaign.id}/reports",
        json={"reason": "Công bố"},
        headers=world.admin,
    )
    assert published.status_code == 201, published.text
    report = published.json()
    tail = [(e.type, e.payload) for e in await events_of(session, world.campaign)][-2:]
    assert [t for t, _ in tail] == ["campaign.transitioned", "report.published"]
    assert tail[0][1]["to"] == "published"
    assert tail[1][1]["report_id"] == report["id"]
    assert tail[1][1]["version"] == 1
    assert tail[1][1]["url"] == f"/api/v1/reports/{report['id']}"


async def test_a_campaign_bound_caller_sees_only_its_campaign_s_events(
    client: httpx.AsyncClient, session: AsyncSession, world: World, settings: Settings
) -> None:
    other = await make_campaign(session, agencies=[world.province], state=CampaignState.open)
    for campaign in (world.campaign, other):
        r = await client.post(
            f"/api/v1/campaigns/{campaign.id}/submissions",
            json=form(world, world.district),
            headers=world.kiosk,
        )
        assert r.status_code == 201, r.text
    bound, _ = await make_client(session, [Scope.events_read])
    bound.campaign_id = world.campaign.id
    await session.flush()
    seen = await feed_all(client, bearer(settings, bound), limit=50)
    assert [e["campaign_id"] for e in seen] == [str(world.campaign.id)]
