"""A citizen's rating through an invitation: the token alone reads what the form needs and sends
one form; the one-stop system sees whether it was used."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.agency import Agency
from app.models.audit import AuditEvent
from app.models.campaign import Campaign, CampaignState
from app.models.catalogue import Procedure
from app.models.dossier import Invitation
from app.models.identity import Scope
from app.models.submission import Submission
from app.security import sign_invitation
from app.services.ratelimit_guard import ClientRateLimiter
from tests.factories import (
    bearer,
    invitation_token,
    make_agency,
    make_campaign,
    make_client,
    make_invitation,
    make_procedure,
    make_sector,
    stored_form,
)
from tests.helpers.problems import assert_problem, error_codes

GOOD = {"E1.C1": 5, "E1.C2": 4, "E2.C1": 3, "R.GENDER": "nu"}
FORM_URL = "https://danhgia.example.gov.vn/phieu"


@dataclass
class World:
    province: Agency
    district: Agency
    procedure: Procedure
    campaign: Campaign
    one_stop: dict[str, str]

    def url(self) -> str:
        return f"/api/v1/campaigns/{self.campaign.id}/submissions"


@pytest.fixture
async def world(session: AsyncSession, settings: Settings) -> World:
    province = await make_agency(session, level="province", name="Tỉnh Tuyên Quang")
    district = await make_agency(
        session, parent=province, level="district", name="UBND huyện Sơn Dương"
    )
    procedure = await make_procedure(session, await make_sector(session), name="Đăng ký khai sinh")
    campaign = await make_campaign(session, agencies=[province], state=CampaignState.open)
    campaign.rates_dossiers = True
    one_stop, _ = await make_client(session, [Scope.dossiers_write])
    await session.flush()
    return World(province, district, procedure, campaign, bearer(settings, one_stop))


@pytest.fixture
async def citizen(app: FastAPI, client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """The app as `client` has it (the test's transaction), from an address of its own: the
    per-source count of anonymous calls is kept across tests in the same minute."""
    source = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(source, 1))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", event_hooks=client.event_hooks
    ) as c:
        yield c


Configure = Callable[..., None]


@pytest.fixture
def configure(app: FastAPI, settings: Settings) -> Iterator[Configure]:
    """Change the app's settings (and start a fresh rate limiter) for one test."""
    state = app.state
    saved = (state.settings, getattr(state, "rate_limiter", None))

    def apply(**overrides: Any) -> None:
        state.settings = settings.model_copy(update=overrides)
        state.rate_limiter = ClientRateLimiter()

    yield apply
    state.settings, state.rate_limiter = saved


def form(w: World, token: str | None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "submission_id": str(uuid.uuid4()),
        "channel": "web",
        "answers": dict(GOOD),
    }
    if token is not None:
        body["invitation"] = token
    body.update(changes)
    return body


async def invited(session: AsyncSession, settings: Settings, w: World, **changes: Any) -> str:
    invitation = await make_invitation(session, w.campaign, w.district, w.procedure, **changes)
    return invitation_token(settings, invitation)


# ---- reading an invitation -----------------------------------------------------------------------


async def test_an_invitation_tells_the_form_what_it_needs_without_a_credential(
    citizen: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    world: World,
    configure: Configure,
) -> None:
    configure(public_form_url=FORM_URL)
    invitation = await make_invitation(session, world.campaign, world.district, world.procedure)
    token = invitation_token(settings, invitation)
    response = await citizen.get(f"/api/v1/invitations/{token}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["campaign_id"] == str(world.campaign.id)
    assert body["campaign_name"] == world.campaign.name
    assert body["questionnaire_id"] == str(world.campaign.questionnaire_id)
    assert body["questionnaire_version"] == 1
    assert (body["agency_code"], body["agency_name"]) == (
        world.district.code,
        "UBND huyện Sơn Dương",
    )
    assert (body["procedure_code"], body["procedure_name"]) == (
        world.procedure.code,
        "Đăng ký khai sinh",
    )
    assert body["dossier_code"].startswith("HS-")
    assert datetime.fromisoformat(body["expires_at"]) == invitation.expires_at
    assert (body["used"], body["used_at"], body["expired"], body["usable"]) == (
        False,
        None,
        False,
        True,
    )
    assert body["form_url"] == f"{FORM_URL}?invitation={token}"
    assert body["submit_url"] == world.url()

    questionnaire = await citizen.get(body["questionnaire_url"])
    assert questionnaire.status_code == 200, questionnaire.text
    assert questionnaire.json()["id"] == str(world.campaign.questionnaire_id)
    assert questionnaire.json()["definition"]["sections"]


async def test_an_unknown_token_is_404_and_a_used_or_expired_one_says_so(
    citizen: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    forged = sign_invitation(uuid.uuid4(), settings.secret_key.get_secret_value())
    for token in ("inv_nope", forged, "x" * 64):
        assert_problem(await citizen.get(f"/api/v1/invitations/{token}"), 404, "not_found")
        assert_problem(
            await citizen.get(f"/api/v1/invitations/{token}/questionnaire"), 404, "not_found"
        )
    used_at = datetime.now(UTC) - timedelta(hours=1)
    used = await invited(session, settings, world, used_at=used_at)
    body = (await citizen.get(f"/api/v1/invitations/{used}")).json()
    assert (body["used"], body["usable"]) == (True, False)
    assert datetime.fromisoformat(body["used_at"]) == used_at
    expired = await invited(session, settings, world, expires_at=datetime.now(UTC))
    body = (await citizen.get(f"/api/v1/invitations/{expired}")).json()
    assert (body["expired"], body["usable"], body["form_url"]) == (True, False, None)


# ---- sending a form with the invitation alone ----------------------------------------------------


async def test_a_form_with_a_valid_invitation_needs_no_other_credential(
    citizen: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    token = await invited(session, settings, world)
    response = await citizen.post(world.url(), json=form(world, token))
    assert response.status_code == 201, response.text
    created = response.json()
    row = await stored_form(session, created["id"])
    assert row is not None
    assert row.agency_id == world.district.id  # from the invited dossier
    assert (row.client_id, row.surveyor_id) == (None, None)
    invitation = await session.scalar(
        sa.select(Invitation).where(col(Invitation.id) == row.invitation_id)
    )
    assert invitation is not None
    event = await session.scalar(
        sa.select(AuditEvent).where(
            col(AuditEvent.action) == "submission.create",
            col(AuditEvent.object_id) == created["id"],
        )
    )
    assert event is not None
    assert (event.actor_type, event.actor_id) == ("invitation", invitation.id)
    assert event.summary["invitation_id"] == str(invitation.id)
    # the same form again is its first answer; another form with the invitation is refused
    again = await citizen.post(
        world.url(), json=form(world, token, submission_id=created["submission_id"])
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    reused = await citizen.post(world.url(), json=form(world, token))
    body = assert_problem(reused, 409, "invitation_used")
    assert error_codes(body) == [("/body/invitation", "invitation_used")]


async def test_without_a_token_a_bad_invitation_is_refused_clearly(
    citizen: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    nothing = await citizen.post(
        world.url(), json=form(world, None, agency_code=world.district.code)
    )
    assert_problem(nothing, 401, "unauthorized")
    assert nothing.headers["www-authenticate"].startswith("Bearer")
    forged = sign_invitation(uuid.uuid4(), settings.secret_key.get_secret_value())
    for token in ("inv_nope", forged):
        assert_problem(
            await citizen.post(world.url(), json=form(world, token)), 401, "unauthorized"
        )

    expired = await invited(session, settings, world, expires_at=datetime.now(UTC))
    body = assert_problem(
        await citizen.post(world.url(), json=form(world, expired)), 410, "invitation_expired"
    )
    assert error_codes(body) == [("/body/invitation", "invitation_expired")]

    other = await make_campaign(session, agencies=[world.province], state=CampaignState.open)
    elsewhere = invitation_token(
        settings, await make_invitation(session, other, world.district, world.procedure)
    )
    body = assert_problem(
        await citizen.post(world.url(), json=form(world, elsewhere)), 422, "invitation_invalid"
    )
    assert error_codes(body) == [("/body/invitation", "invitation_invalid")]
    count = await session.scalar(
        sa.select(sa.func.count())
        .select_from(Submission)
        .where(col(Submission.campaign_id) == world.campaign.id)
    )
    assert count == 0


async def test_the_bearer_path_still_works_and_still_needs_the_scope(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    reader, _ = await make_client(session, [Scope.questionnaires_read])
    token = await invited(session, settings, world)
    denied = await client.post(
        world.url(), json=form(world, token), headers=bearer(settings, reader)
    )
    assert_problem(denied, 403, "forbidden")
    kiosk, _ = await make_client(session, [Scope.submissions_write])
    made = await client.post(world.url(), json=form(world, token), headers=bearer(settings, kiosk))
    assert made.status_code == 201, made.text
    bad = await client.post(
        world.url(), json=form(world, token), headers={"Authorization": "Bearer nope"}
    )
    assert_problem(bad, 401, "unauthorized")


async def test_anonymous_calls_are_limited_per_invitation_and_per_source(
    citizen: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    world: World,
    configure: Configure,
) -> None:
    configure(invitation_requests_per_minute=2, invitation_source_requests_per_minute=5)
    token = await invited(session, settings, world)
    one = form(world, token)
    statuses = [(await citizen.post(world.url(), json=one)).status_code for _ in range(3)]
    assert statuses == [201, 201, 429]  # per invitation: a form and its retry, then refused
    other = await invited(session, settings, world)
    assert (await citizen.get(f"/api/v1/invitations/{other}")).status_code == 200
    assert (await citizen.post(world.url(), json=form(world, other))).status_code == 201
    limited = await citizen.get(f"/api/v1/invitations/{other}")  # the source's sixth call
    body = assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert body["detail"]


# ---- the one-stop system sees the link and the use -----------------------------------------------


async def test_dossiers_carry_the_form_link_and_say_when_their_invitation_was_used(
    client: httpx.AsyncClient,
    citizen: httpx.AsyncClient,
    settings: Settings,
    world: World,
    configure: Configure,
) -> None:
    configure(public_form_url=FORM_URL)
    event = {
        "code": f"HS-{uuid.uuid4().hex[:8]}",
        "procedure_code": world.procedure.code,
        "agency_code": world.district.code,
        "returned_at": datetime.now(UTC).isoformat(),
    }
    today = datetime.now(UTC).date()
    world.campaign.period_end = today  # the campaign covers the dossier and is in the field
    world.campaign.fieldwork_end = today + timedelta(days=60)
    reported = await client.post("/api/v1/dossiers", json=event, headers=world.one_stop)
    assert reported.status_code == 201, reported.text
    [invitation] = reported.json()["invitations"]
    token = invitation["token"]
    assert invitation["form_url"] == f"{FORM_URL}?invitation={token}"
    assert (invitation["used"], invitation["used_at"]) == (False, None)

    assert (await citizen.post(world.url(), json=form(world, token))).status_code == 201
    after = await client.get(f"/api/v1/dossiers/{event['code']}", headers=world.one_stop)
    [seen] = after.json()["invitations"]
    assert seen["used"] is True
    used_at = datetime.fromisoformat(seen["used_at"])
    assert abs(used_at - datetime.now(UTC)) < timedelta(minutes=5)
