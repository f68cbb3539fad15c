"""One-stop integration: dossier events are idempotent and yield one-time invitations."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.errors import AppError
from app.models.agency import Agency
from app.models.campaign import Campaign, CampaignState
from app.models.catalogue import Procedure
from app.models.dossier import Dossier, Invitation
from app.models.identity import Scope
from app.security import sign_invitation
from app.services.dossiers import claim_invitation
from tests.factories import (
    bearer,
    make_agency,
    make_campaign,
    make_client,
    make_procedure,
    make_sector,
)
from tests.helpers.problems import assert_problem


@dataclass
class World:
    province: Agency
    district: Agency
    procedure: Procedure
    campaign: Campaign
    headers: dict[str, str]


@pytest.fixture
async def world(session: AsyncSession, settings: Settings) -> World:
    province = await make_agency(session, level="province")
    district = await make_agency(session, parent=province, level="district")
    procedure = await make_procedure(session, await make_sector(session))
    campaign = await make_campaign(session, agencies=[province], state=CampaignState.open)
    campaign.rates_dossiers = True
    await session.flush()
    one_stop, _ = await make_client(session, [Scope.dossiers_write])
    return World(province, district, procedure, campaign, bearer(settings, one_stop))


def event(w: World, code: str | None = None, **changes: str) -> dict[str, str]:
    body = {
        "code": code or f"000.00.23.H57-{uuid.uuid4().hex[:10]}",
        "procedure_code": w.procedure.code,
        "agency_code": w.district.code,
        "returned_at": "2020-05-04T09:30:00+07:00",
    }
    body.update(changes)
    return body


async def test_a_dossier_gets_an_invitation_bound_to_it(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    response = await client.post("/api/v1/dossiers", json=event(world), headers=world.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "created"
    [invitation] = body["invitations"]
    assert invitation["campaign_id"] == str(world.campaign.id)
    assert invitation["token"].startswith("inv_")
    stored = await session.scalar(
        sa.select(Invitation).where(col(Invitation.dossier_id) == uuid.UUID(body["dossier_id"]))
    )
    assert stored is not None
    assert stored.agency_id == world.district.id  # the dossier's agency, under the scoped province
    assert stored.procedure_id == world.procedure.id
    assert stored.used_at is None
    dossier = await session.get(Dossier, uuid.UUID(body["dossier_id"]))
    assert dossier is not None
    assert dossier.returned_at == datetime(2020, 5, 4, 2, 30, tzinfo=UTC)


async def test_the_same_event_again_returns_the_same_invitation(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    body = event(world)
    first = await client.post("/api/v1/dossiers", json=body, headers=world.headers)
    again = await client.post("/api/v1/dossiers", json=body, headers=world.headers)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert again.json()["invitations"] == first.json()["invitations"]
    count = await session.scalar(
        sa.select(sa.func.count()).select_from(Dossier).where(col(Dossier.code) == body["code"])
    )
    assert count == 1
    changed = await client.post(
        "/api/v1/dossiers",
        json={**body, "returned_at": "2020-05-05T09:30:00+07:00"},
        headers=world.headers,
    )
    problem = assert_problem(changed, 409, "dossier_conflict")
    assert problem["errors"] == [
        {
            "pointer": "/body/code",
            "code": "conflict",
            "detail": "this dossier code was reported with other details",
        }
    ]


async def test_no_invitation_outside_an_open_rating_campaign(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    outside_period = await client.post(
        "/api/v1/dossiers",
        json=event(world, returned_at="2021-03-01T08:00:00+07:00"),
        headers=world.headers,
    )
    assert outside_period.status_code == 201
    assert outside_period.json()["invitations"] == []
    world.campaign.state = CampaignState.closed
    await session.flush()
    closed = await client.post("/api/v1/dossiers", json=event(world), headers=world.headers)
    assert closed.json()["invitations"] == []


async def test_unknown_references_are_422_naming_the_field(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        "/api/v1/dossiers",
        json=event(world, procedure_code="9.999999", agency_code="NO.SUCH"),
        headers=world.headers,
    )
    body = assert_problem(response, 422, "invalid")
    pointers = {e["pointer"] for e in body["errors"]}  # type: ignore[attr-defined]
    assert pointers == {"/body/procedure_code", "/body/agency_code"}


async def test_a_client_scoped_to_another_agency_cannot_report_for_this_one(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    elsewhere = await make_agency(session, level="province")
    scoped, _ = await make_client(session, [Scope.dossiers_write], agency=elsewhere)
    response = await client.post(
        "/api/v1/dossiers", json=event(world), headers=bearer(settings, scoped)
    )
    body = assert_problem(response, 422, "invalid")
    assert [e["pointer"] for e in body["errors"]] == ["/body/agency_code"]  # type: ignore[attr-defined]


async def test_batch_mixes_created_duplicate_and_error(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    repeated = event(world)
    await client.post("/api/v1/dossiers", json=repeated, headers=world.headers)
    items = [event(world), repeated, event(world, procedure_code="9.000000"), event(world)]
    response = await client.post(
        "/api/v1/dossiers/batch", json={"dossiers": items}, headers=world.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["created", "duplicate", "error", "created"]
    assert body["results"][2]["errors"][0]["pointer"] == "/dossiers/2/procedure_code"
    assert (body["created"], body["duplicates"], body["errors"]) == (2, 1, 1)
    stored = set(
        (
            await session.scalars(
                sa.select(col(Dossier.code)).where(
                    col(Dossier.code).in_([i["code"] for i in items])
                )
            )
        ).all()
    )
    assert stored == {items[0]["code"], items[1]["code"], items[3]["code"]}


async def test_claiming_an_invitation(
    session: AsyncSession, settings: Settings, world: World
) -> None:
    dossier = Dossier(
        code="X-1",
        procedure_id=world.procedure.id,
        agency_id=world.district.id,
        returned_at=datetime.now(UTC),
        request_hash="h",
    )
    session.add(dossier)
    await session.flush()
    invitation = Invitation(
        dossier_id=dossier.id,
        campaign_id=world.campaign.id,
        agency_id=world.district.id,
        procedure_id=world.procedure.id,
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )
    session.add(invitation)
    await session.flush()
    secret = settings.secret_key.get_secret_value()
    token = sign_invitation(invitation.id, secret)
    assert (await claim_invitation(session, settings, token, world.campaign.id)).id == invitation.id

    forged = sign_invitation(invitation.id, "another-secret-" + "x" * 30)
    other_campaign = await make_campaign(session, agencies=[world.province])
    cases = [
        (forged, world.campaign.id, "invitation_invalid"),
        ("inv_garbage", world.campaign.id, "invitation_invalid"),
        (token, other_campaign.id, "invitation_invalid"),
    ]
    for bad_token, campaign_id, code in cases:
        with pytest.raises(AppError) as caught:
            await claim_invitation(session, settings, bad_token, campaign_id)
        assert caught.value.code == code

    invitation.used_at = datetime.now(UTC)
    await session.flush()
    with pytest.raises(AppError) as used:
        await claim_invitation(session, settings, token, world.campaign.id)
    assert (used.value.code, used.value.status) == ("invitation_used", 409)

    invitation.used_at = None
    invitation.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    await session.flush()
    with pytest.raises(AppError) as expired:
        await claim_invitation(session, settings, token, world.campaign.id)
    assert (expired.value.code, expired.value.status) == ("invitation_expired", 410)


async def test_lost_tokens_can_be_fetched_again(client: httpx.AsyncClient, world: World) -> None:
    body = event(world)
    first = await client.post("/api/v1/dossiers", json=body, headers=world.headers)
    again = await client.get(f"/api/v1/dossiers/{body['code']}", headers=world.headers)
    assert again.status_code == 200
    assert again.json()["invitations"] == first.json()["invitations"]
    missing = await client.get("/api/v1/dossiers/NOPE", headers=world.headers)
    assert_problem(missing, 404, "not_found")


async def test_nul_in_a_code_is_an_error_naming_the_field(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    """PostgreSQL text cannot hold NUL; the look-up used to fail as an unnamed bad value (and a
    batch as a whole)."""
    bad = event(world, code="HS-\x00-1")
    response = await client.post("/api/v1/dossiers", json=bad, headers=world.headers)
    body = assert_problem(response, 422, "validation_failed")
    assert [e["pointer"] for e in body["errors"]] == ["/body/code"]  # type: ignore[attr-defined]
    good = event(world)
    batch = await client.post(
        "/api/v1/dossiers/batch",
        json={"dossiers": [good, event(world, agency_code="A\x00")]},
        headers=world.headers,
    )
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["status"] for r in results] == ["created", "error"]
    assert [e["pointer"] for e in results[1]["errors"]] == ["/dossiers/1/agency_code"]
    stored = await session.scalars(sa.select(col(Dossier.code)))
    assert good["code"] in stored.all()


async def test_a_malformed_item_is_its_own_error_and_the_others_are_kept(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    """Items are checked one by one: a missing field or a value of the wrong type is
    an error in that item's result, with its pointer, and the valid events are stored."""
    first, last = event(world), event(world)
    items: list[object] = [
        first,
        {"code": "HS-thiếu-ngày", "procedure_code": world.procedure.code},
        {**event(world), "returned_at": "hôm qua"},
        first,
        last,
    ]
    response = await client.post(
        "/api/v1/dossiers/batch", json={"dossiers": items}, headers=world.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    results = body["results"]
    assert [r["status"] for r in results] == ["created", "error", "error", "duplicate", "created"]
    assert results[1]["code"] == "HS-thiếu-ngày"
    assert {e["pointer"] for e in results[1]["errors"]} == {
        "/dossiers/1/agency_code",
        "/dossiers/1/returned_at",
    }
    assert [e["pointer"] for e in results[2]["errors"]] == ["/dossiers/2/returned_at"]
    assert (body["created"], body["duplicates"], body["errors"]) == (2, 1, 2)
    stored = set((await session.scalars(sa.select(col(Dossier.code)))).all())
    assert {first["code"], last["code"]} <= stored
    assert "HS-thiếu-ngày" not in stored
