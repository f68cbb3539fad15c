"""Holes 1, 12 and 13 of the attack run (issue 12), each reproduced first: an invitation used
for several forms in a batch, bad input that reached a 500, and timestamps a client should not
choose."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.json_depth import nesting_depth
from app.models.agency import Agency
from app.models.campaign import Campaign, CampaignState
from app.models.catalogue import Procedure
from app.models.dossier import Invitation
from app.models.identity import Role, Scope
from app.models.submission import Submission
from tests.factories import (
    bearer,
    invitation_token,
    make_agency,
    make_campaign,
    make_client,
    make_invitation,
    make_procedure,
    make_sector,
    make_user,
    stored_form,
)
from tests.helpers.problems import assert_problem, error_codes

GOOD = {"E1.C1": 5, "E1.C2": 4, "E2.C1": 3, "R.GENDER": "nu"}


@dataclass
class World:
    agency: Agency
    procedure: Procedure
    campaign: Campaign
    kiosk: dict[str, str]
    one_stop: dict[str, str]

    def url(self, suffix: str = "") -> str:
        return f"/api/v1/campaigns/{self.campaign.id}/submissions{suffix}"


@pytest.fixture
async def world(session: AsyncSession, settings: Settings) -> World:
    agency = await make_agency(session, level="province")
    procedure = await make_procedure(session, await make_sector(session))
    campaign = await make_campaign(session, agencies=[agency], state=CampaignState.open)
    campaign.rates_dossiers = True
    kiosk, _ = await make_client(session, [Scope.submissions_write])
    one_stop, _ = await make_client(session, [Scope.dossiers_write])
    await session.flush()
    return World(agency, procedure, campaign, bearer(settings, kiosk), bearer(settings, one_stop))


def form(w: World, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "submission_id": str(uuid.uuid4()),
        "agency_code": w.agency.code,
        "channel": "web",
        "answers": dict(GOOD),
    }
    body.update(changes)
    return body


async def forms_of(session: AsyncSession, campaign: Campaign) -> list[Submission]:
    rows = await session.scalars(
        sa.select(Submission).where(col(Submission.campaign_id) == campaign.id)
    )
    return list(rows.all())


# ---- hole 1: one invitation, one form ------------------------------------------------------------


async def test_hole_1_one_invitation_three_times_in_a_batch_makes_one_form(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    token = invitation_token(
        settings, await make_invitation(session, world.campaign, world.agency, world.procedure)
    )
    items = [form(world, invitation=token) for _ in range(3)] + [form(world)]
    response = await client.post(
        world.url("/batch"), json={"submissions": items}, headers=world.kiosk
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "error", "error", "created"]
    for i in (1, 2):
        assert [(e["pointer"], e["code"]) for e in results[i]["errors"]] == [
            (f"/body/submissions/{i}/invitation", "invitation_used")
        ]
    stored = await forms_of(session, world.campaign)
    assert len(stored) == 2  # the invited form and the plain one, which is kept
    assert sum(s.invitation_id is not None for s in stored) == 1


async def test_hole_1_a_used_invitation_is_refused_on_every_path(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    token = invitation_token(
        settings, await make_invitation(session, world.campaign, world.agency, world.procedure)
    )
    first = await client.post(
        world.url("/batch"),
        json={"submissions": [form(world, invitation=token)]},
        headers=world.kiosk,
    )
    assert first.json()["created"] == 1
    single = await client.post(world.url(), json=form(world, invitation=token), headers=world.kiosk)
    body = assert_problem(single, 409, "invitation_used")
    assert error_codes(body) == [("/body/invitation", "invitation_used")]
    batch = await client.post(
        world.url("/batch"),
        json={"submissions": [form(world, invitation=token), form(world)]},
        headers=world.kiosk,
    )
    assert batch.json()["results"][0]["errors"][0]["code"] == "invitation_used"
    assert len(await forms_of(session, world.campaign)) == 2


async def test_hole_1_the_database_refuses_a_second_form_for_one_invitation(
    session: AsyncSession, world: World
) -> None:
    """Whatever a service forgets, the unique key on submissions.invitation_id holds."""
    invitation = await make_invitation(session, world.campaign, world.agency, world.procedure)

    def row() -> dict[str, Any]:
        return {
            "campaign_id": world.campaign.id,
            "client_submission_id": uuid.uuid4(),
            "request_hash": "h",
            "agency_id": world.agency.id,
            "channel": "web",
            "answers": GOOD,
            "received_at": datetime.now(UTC),
            "invitation_id": invitation.id,
        }

    await session.execute(sa.insert(Submission), [row()])
    # The campaign's partition reports its own copy of uq_submissions_invitation_id.
    copy = r'"submissions_of_[0-9a-f]+_campaign_id_invitation_id_key"'
    with pytest.raises(IntegrityError, match=copy):
        async with session.begin_nested():
            await session.execute(sa.insert(Submission), [row()])


# ---- hole 12: bad input never reaches a 500 ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"", 0),
        (b"{}", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "[[[[[[[[[[", "b": "\\"[[["}', 1),  # brackets in strings, an escaped quote
        (b"[[], [], [[]]]", 3),
        (b'["\\\\", ["\\"[[", "]]]"], []]', 2),  # escaped backslash, escaped quote
        (b'[""""[[]]', 3),  # empty strings side by side
        (b"[" * 1000, 1000),  # malformed: as deep as a parser would go before failing
        (b'["]]]]]]]]]]"' + b"[" * 40, 41),  # closers in a string hide nothing
    ],
)
def test_hole_12_nesting_depth_counts_structure_not_text(text: bytes, depth: int) -> None:
    assert nesting_depth(text) == depth


async def test_hole_12_deeply_nested_json_is_refused_before_authentication(
    client: httpx.AsyncClient, world: World
) -> None:
    deep = b"[" * 60_000  # within the test's body limit; 100,000 in the attack run
    for url in (world.url(), "/api/v1/dossiers", f"/api/v1/campaigns/{uuid.uuid4()}"):
        response = await client.post(
            url, content=deep, headers={"Content-Type": "application/json"}
        )
        body = assert_problem(response, 422, "json_too_deep")
        assert body["max_depth"] == 32
        assert error_codes(body) == [("/body", "too_deep")]
    # without a content type the framework would parse it as JSON too
    bare = await client.post(world.url(), content=deep)
    assert_problem(bare, 422, "json_too_deep")
    # at the limit the body goes on to the application (here: no token, 401)
    nested_32 = b"[" * 32 + b"]" * 32
    at_limit = await client.post(
        "/api/v1/dossiers", content=nested_32, headers={"Content-Type": "application/json"}
    )
    assert at_limit.status_code == 401
    over = b"[" * 33 + b"]" * 33
    assert_problem(
        await client.post(world.url(), content=over, headers={"Content-Type": "application/json"}),
        422,
        "json_too_deep",
    )


@pytest.mark.parametrize(
    "instant", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+07:00", "1850-06-01T00:00:00Z"]
)
async def test_hole_12_an_instant_beyond_the_calendar_is_a_422_naming_the_field(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World, instant: str
) -> None:
    dossier = {
        "code": f"HS-{uuid.uuid4().hex[:8]}",
        "procedure_code": world.procedure.code,
        "agency_code": world.agency.code,
        "returned_at": instant,
    }
    response = await client.post("/api/v1/dossiers", json=dossier, headers=world.one_stop)
    body = assert_problem(response, 422, "validation_failed")
    assert error_codes(body) == [("/body/returned_at", "date_out_of_range")]

    single = await client.post(
        world.url(), json=form(world, received_at=instant), headers=world.kiosk
    )
    body = assert_problem(single, 422, "validation_failed")
    assert error_codes(body) == [("/body/received_at", "date_out_of_range")]

    batch = await client.post(
        world.url("/batch"),
        json={"submissions": [form(world, received_at=instant), form(world)]},
        headers=world.kiosk,
    )
    results = batch.json()["results"]
    assert [r["status"] for r in results] == ["error", "created"]
    assert results[0]["errors"][0]["pointer"] == "/body/submissions/0/received_at"

    admin = bearer(settings, await make_user(session, Role.admin))
    for path in ("/api/v1/submissions", "/api/v1/submissions/export", "/api/v1/audit-events"):
        listed = await client.get(path, params={"since": instant}, headers=admin)
        body = assert_problem(listed, 422, "validation_failed")
        assert error_codes(body) == [("/query/since", "date_out_of_range")]


async def test_hole_12_dates_outside_sane_years_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    admin = bearer(settings, await make_user(session, Role.admin))
    response = await client.patch(
        f"/api/v1/campaigns/{world.campaign.id}",
        json={"fieldwork_end": "9999-12-31"},
        headers=admin,
    )
    body = assert_problem(response, 422, "validation_failed")
    assert error_codes(body) == [("/body/fieldwork_end", "date_out_of_range")]
    successor = await make_agency(session, level="province")
    retire = await client.post(
        f"/api/v1/agencies/{world.agency.id}/retire",
        json={
            "valid_to": "9999-12-31",  # its successor's day would be the day after
            "successors": [{"code": successor.code, "kind": "merged_into"}],
        },
        headers=admin,
    )
    body = assert_problem(retire, 422, "validation_failed")
    assert error_codes(body) == [("/body/valid_to", "date_out_of_range")]
    unit = {
        "dossier_code": "HS-1",
        "procedure_code": world.procedure.code,
        "agency_code": world.agency.code,
        "returned_on": "0001-01-01",
    }
    frame = await client.post(
        f"/api/v1/campaigns/{world.campaign.id}/frame", json={"units": [unit]}, headers=admin
    )
    # the frame import checks its dates against the campaign's period itself
    body = assert_problem(frame, 422, frame.json()["code"])
    assert [p for p, _ in error_codes(body)] == ["/units/0/returned_on"]


# ---- hole 13: timestamps within a window of now, and the server's own beside them ----------------


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (timedelta(days=-1), True),
        (timedelta(days=-399), True),
        (timedelta(minutes=2), True),  # a client clock a little ahead
        (timedelta(days=-401), False),
        (timedelta(days=-365 * 2025), False),  # year 0001 in the attack run
        (timedelta(hours=1), False),
    ],
)
async def test_hole_13_received_at_lies_within_a_window_of_now(
    client: httpx.AsyncClient, world: World, offset: timedelta, accepted: bool
) -> None:
    when = (datetime.now(UTC) + offset).isoformat()
    response = await client.post(
        world.url(), json=form(world, received_at=when), headers=world.kiosk
    )
    if accepted:
        assert response.status_code == 201, response.text
    else:
        body = assert_problem(response, 422, response.json()["code"])
        [(pointer, code)] = error_codes(body)
        assert pointer == "/body/received_at"
        assert code in ("out_of_window", "date_out_of_range")


async def test_hole_13_the_server_records_its_own_receipt_time(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    before = datetime.now(UTC)
    three_days_ago = before - timedelta(days=3)
    response = await client.post(
        world.url(), json=form(world, received_at=three_days_ago.isoformat()), headers=world.kiosk
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert datetime.fromisoformat(created["received_at"]) == three_days_ago
    server_time = datetime.fromisoformat(created["server_received_at"])
    # the test's transaction began before `before`; the server's clock is that transaction's
    assert abs(server_time - before) < timedelta(minutes=5)
    row = await stored_form(session, created["id"])
    assert row is not None
    assert row.server_received_at == server_time


async def test_hole_13_returned_at_lies_within_a_window_of_now(
    client: httpx.AsyncClient, world: World
) -> None:
    def dossier(when: datetime) -> dict[str, str]:
        return {
            "code": f"HS-{uuid.uuid4().hex[:8]}",
            "procedure_code": world.procedure.code,
            "agency_code": world.agency.code,
            "returned_at": when.isoformat(),
        }

    now = datetime.now(UTC)
    for when in (now - timedelta(days=3651), now + timedelta(hours=1)):
        response = await client.post("/api/v1/dossiers", json=dossier(when), headers=world.one_stop)
        body = assert_problem(response, 422, "invalid")
        assert error_codes(body) == [("/body/returned_at", "out_of_window")]
    fine = await client.post(
        "/api/v1/dossiers", json=dossier(now - timedelta(days=30)), headers=world.one_stop
    )
    assert fine.status_code == 201, fine.text


async def test_an_invitation_used_through_a_batch_is_marked_used(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    invitation = await make_invitation(session, world.campaign, world.agency, world.procedure)
    token = invitation_token(settings, invitation)
    response = await client.post(
        world.url("/batch"),
        json={"submissions": [form(world, invitation=token)]},
        headers=world.kiosk,
    )
    created = response.json()["results"][0]
    assert created["status"] == "created", created
    used = await session.scalar(
        sa.select(Invitation)
        .where(col(Invitation.id) == invitation.id)
        .execution_options(populate_existing=True)
    )
    assert used is not None
    assert used.used_at is not None
    assert str(used.submission_id) == created["id"]
