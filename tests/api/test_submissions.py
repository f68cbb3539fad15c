"""Forms from every channel: validation, idempotency, batches, invitations, review, corrections."""

from __future__ import annotations

import json
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
from app.models.campaign import Campaign, CampaignSector, CampaignState, CampaignSurveyor
from app.models.catalogue import Procedure, Sector
from app.models.dossier import Dossier, Invitation
from app.models.identity import Role, Scope
from app.models.submission import Submission, SubmissionIn, SubmissionVersion
from app.security import sign_invitation
from app.services.submissions.common import legacy_request_hash
from tests.conftest import PeerClient
from tests.factories import (
    bearer,
    make_agency,
    make_campaign,
    make_client,
    make_procedure,
    make_sector,
    make_user,
    stored_form,
)
from tests.helpers.problems import assert_problem, error_codes

GOOD = {"E1.C1": 5, "E1.C2": 4, "E2.C1": 3, "P.TRIPS": "1", "R.GENDER": "nu"}


@dataclass
class World:
    province: Agency
    district: Agency
    outside: Agency
    sector: Sector
    procedure: Procedure
    campaign: Campaign
    kiosk: dict[str, str]

    def url(self, suffix: str = "") -> str:
        return f"/api/v1/campaigns/{self.campaign.id}/submissions{suffix}"


@pytest.fixture
async def world(session: AsyncSession, settings: Settings) -> World:
    province = await make_agency(session, level="province")
    district = await make_agency(session, parent=province, level="district")
    outside = await make_agency(session, level="province")
    sector = await make_sector(session)
    procedure = await make_procedure(session, sector)
    campaign = await make_campaign(session, agencies=[province], state=CampaignState.open)
    session.add(CampaignSector(campaign_id=campaign.id, sector_id=sector.id))
    kiosk, _ = await make_client(session, [Scope.submissions_write])
    await session.flush()
    return World(province, district, outside, sector, procedure, campaign, bearer(settings, kiosk))


def form(w: World, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "submission_id": str(uuid.uuid4()),
        "agency_code": w.district.code,
        "procedure_code": w.procedure.code,
        "channel": "kiosk",
        "device_id": "kiosk-07",
        "answers": dict(GOOD),
    }
    body.update(changes)
    return body


async def count(session: AsyncSession, campaign: Campaign) -> int:
    return int(
        await session.scalar(
            sa.select(sa.func.count())
            .select_from(Submission)
            .where(col(Submission.campaign_id) == campaign.id)
        )
        or 0
    )


async def test_a_valid_form_is_stored_raw_with_provenance(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    body = form(world, answers={**GOOD, "E2.C1": None, "C.NOTE": "Cán bộ nhiệt tình"})
    response = await client.post(world.url(), json=body, headers=world.kiosk)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["submission_id"] == body["submission_id"]
    row = await stored_form(session, created["id"])
    assert row is not None
    assert row.answers == body["answers"]  # raw values, "no answer" kept as null
    assert "E2.C1" in row.answers
    assert row.answers["E2.C1"] is None
    assert row.agency_id == world.district.id
    assert row.sector_id == world.sector.id  # from the procedure
    assert (row.channel, row.device_id, row.state) == ("kiosk", "kiosk-07", "received")
    assert row.client_id is not None
    assert row.surveyor_id is None


@pytest.mark.parametrize(
    ("changes", "pointer", "code"),
    [
        ({"answers": {**GOOD, "E9.C9": 5}}, "/body/answers/E9.C9", "unknown_item"),
        ({"answers": {**GOOD, "E1.C1": "rất tốt"}}, "/body/answers/E1.C1", "wrong_type"),
        ({"answers": {**GOOD, "E1.C1": 6}}, "/body/answers/E1.C1", "out_of_range"),
        (
            {"answers": {**GOOD, "X.IMPROVE": ["a", "b", "c"]}},
            "/body/answers/X.IMPROVE",
            "too_many_choices",
        ),
        (
            {"answers": {k: v for k, v in GOOD.items() if k != "R.GENDER"}},
            "/body/answers/R.GENDER",
            "missing",
        ),
        ({"agency_code": "__outside__"}, "/body/agency_code", "out_of_scope"),
        ({"agency_code": "NO.SUCH"}, "/body/agency_code", "unknown"),
        ({"procedure_code": "__other_sector__"}, "/body/sector_code", "out_of_scope"),
    ],
)
async def test_each_validation_error_is_422_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    changes: dict[str, Any],
    pointer: str,
    code: str,
) -> None:
    if changes.get("agency_code") == "__outside__":
        changes = {"agency_code": world.outside.code}
    if changes.get("procedure_code") == "__other_sector__":
        other = await make_procedure(session, await make_sector(session))
        changes = {"procedure_code": other.code}
    response = await client.post(world.url(), json=form(world, **changes), headers=world.kiosk)
    body = assert_problem(response, 422, "invalid")
    errors = body["errors"]
    assert isinstance(errors, list)
    assert {"pointer": pointer, "code": code} in [
        {"pointer": e["pointer"], "code": e["code"]} for e in errors
    ]
    assert await count(session, world.campaign) == 0


async def test_every_error_of_a_form_is_listed_at_once(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    answers = {"E1.C1": 0, "E1.C2": "x", "NOPE": 1}
    response = await client.post(
        world.url(), json=form(world, answers=answers), headers=world.kiosk
    )
    body = assert_problem(response, 422, "invalid")
    pointers = {e["pointer"] for e in body["errors"]}  # type: ignore[attr-defined]
    assert pointers == {
        "/body/answers/E1.C1",
        "/body/answers/E1.C2",
        "/body/answers/NOPE",
        "/body/answers/R.GENDER",
    }


async def test_forms_only_while_the_campaign_is_open(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    world.campaign.state = CampaignState.closed
    await session.flush()
    response = await client.post(world.url(), json=form(world), headers=world.kiosk)
    assert_problem(response, 409, "campaign_not_open")


async def test_identical_retry_replays_and_another_body_conflicts(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    body = form(world)
    first = await client.post(world.url(), json=body, headers=world.kiosk)
    retry = await client.post(world.url(), json=body, headers=world.kiosk)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    changed = await client.post(
        world.url(), json={**body, "answers": {**GOOD, "E1.C1": 1}}, headers=world.kiosk
    )
    assert_problem(changed, 409, "idempotency_conflict")
    assert await count(session, world.campaign) == 1


async def test_a_form_stored_with_the_legacy_hash_still_replays(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    """Forms stored before the hash's orjson spelling carry the standard library's: their
    retries, single or in a batch, still replay, and another body still conflicts."""
    body = form(world)
    first = await client.post(world.url(), json=body, headers=world.kiosk)
    assert first.status_code == 201
    legacy = legacy_request_hash(SubmissionIn.model_validate(body))
    stored = await session.scalar(sa.select(col(Submission.request_hash)))
    assert stored != legacy  # a new form carries today's spelling
    await session.execute(sa.update(Submission).values(request_hash=legacy))
    retry = await client.post(world.url(), json=body, headers=world.kiosk)
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == first.json()
    batch = await client.post(
        world.url("/batch"), json={"submissions": [body, form(world)]}, headers=world.kiosk
    )
    assert batch.status_code == 200
    assert [r["status"] for r in batch.json()["results"]] == ["duplicate", "created"]
    changed = {**body, "answers": {**GOOD, "E1.C1": 1}}
    assert_problem(
        await client.post(world.url(), json=changed, headers=world.kiosk),
        409,
        "idempotency_conflict",
    )
    assert await count(session, world.campaign) == 2


async def test_a_reused_id_with_another_body_conflicts_even_when_that_body_is_invalid(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    body = form(world)
    assert (await client.post(world.url(), json=body, headers=world.kiosk)).status_code == 201
    invalid = {**body, "answers": {**GOOD, "E1.C1": 6}}
    assert_problem(
        await client.post(world.url(), json=invalid, headers=world.kiosk),
        409,
        "idempotency_conflict",
    )
    assert await count(session, world.campaign) == 1


async def test_a_created_form_is_audited_as_audit_record_would(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    """The form and its audit event are written by one statement; the event carries every
    field that audit.record writes, and a replay writes none."""
    kiosk, _ = await make_client(session, [Scope.submissions_write])
    headers = {**bearer(settings, kiosk), "X-Action-Reason": "ng%C3%A0y%20h%E1%BB%99i"}
    body = form(world)
    response = await client.post(world.url(), json=body, headers=headers)
    assert response.status_code == 201, response.text
    created = response.json()
    replay = await client.post(world.url(), json=body, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"

    events = (
        await session.scalars(
            sa.select(AuditEvent).where(col(AuditEvent.object_id) == created["id"])
        )
    ).all()
    assert len(events) == 1
    event = events[0]
    assert (event.actor_type, event.actor_id, event.actor_name, event.client_id) == (
        "client",
        kiosk.id,
        kiosk.name,
        kiosk.client_id,
    )
    assert (event.action, event.object_type) == ("submission.create", "submission")
    assert event.summary == {
        "campaign_id": str(world.campaign.id),
        "agency_id": str(world.district.id),
        "channel": "kiosk",
    }
    assert event.request_id == response.headers["x-request-id"]
    assert (event.reason, event.ip) == ("ngày hội", "127.0.0.1")
    assert event.occurred_at.tzinfo is not None


async def test_idempotency_key_header_instead_of_an_id(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    body = form(world)
    del body["submission_id"]
    headers = {**world.kiosk, "Idempotency-Key": "form-2020-11-27-0001"}
    first = await client.post(world.url(), json=body, headers=headers)
    again = await client.post(world.url(), json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert again.json()["id"] == first.json()["id"]
    missing = await client.post(world.url(), json=body, headers=world.kiosk)
    problem = assert_problem(missing, 422, "invalid")
    assert problem["errors"][0]["pointer"] == "/body/submission_id"  # type: ignore[index]


async def test_batch_mixes_created_duplicate_and_invalid(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    earlier = form(world)
    await client.post(world.url(), json=earlier, headers=world.kiosk)
    fresh = form(world)
    items = [
        fresh,
        earlier,  # already stored: duplicate
        form(world, answers={**GOOD, "E1.C1": 9}),  # invalid answer
        {"channel": "kiosk"},  # not even a form
        fresh,  # the same form twice in one batch
        form(world, submission_id=earlier["submission_id"], answers={**GOOD, "E1.C1": 1}),
        form(world),
    ]
    response = await client.post(
        world.url("/batch"), json={"submissions": items}, headers=world.kiosk
    )
    assert response.status_code == 200, response.text
    body = response.json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["created", "duplicate", "error", "error", "duplicate", "error", "created"]
    assert body["results"][2]["errors"][0]["pointer"] == "/body/submissions/2/answers/E1.C1"
    assert body["results"][5]["errors"][0]["code"] == "conflict"
    assert body["results"][4]["id"] == body["results"][0]["id"]
    assert (body["created"], body["duplicates"], body["errors"]) == (2, 2, 3)
    assert await count(session, world.campaign) == 3


async def test_batch_is_limited_to_1000(client: httpx.AsyncClient, world: World) -> None:
    items = [{"channel": "kiosk"}] * 1001
    response = await client.post(
        world.url("/batch"), json={"submissions": items}, headers=world.kiosk
    )
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["pointer"] == "/body/submissions"  # type: ignore[index]


async def test_a_deployment_may_allow_smaller_batches(
    peer_client: PeerClient, session: AsyncSession, world: World
) -> None:
    """MAX_BATCH_ITEMS below the schema's 1000: a longer batch is one 422 naming the list, and
    nothing of it is stored."""
    small = peer_client(max_batch_items=2)
    items = [{"channel": "kiosk"}] * 3
    response = await small.post(
        world.url("/batch"), json={"submissions": items}, headers=world.kiosk
    )
    body = assert_problem(response, 422, "invalid")
    assert body["errors"] == [
        {"pointer": "/body/submissions", "detail": "more than 2 items", "code": "too_many_items"}
    ]
    assert await count(session, world.campaign) == 0


async def _invitation(session: AsyncSession, settings: Settings, w: World, **changes: Any) -> str:
    dossier = Dossier(
        code=f"HS-{uuid.uuid4().hex[:8]}",
        procedure_id=w.procedure.id,
        agency_id=w.district.id,
        returned_at=datetime.now(UTC),
        request_hash="h",
    )
    session.add(dossier)
    await session.flush()
    invitation = Invitation(
        dossier_id=dossier.id,
        campaign_id=w.campaign.id,
        agency_id=w.district.id,
        procedure_id=w.procedure.id,
        expires_at=datetime.now(UTC) + timedelta(days=3),
    )
    for key, value in changes.items():
        setattr(invitation, key, value)
    session.add(invitation)
    await session.flush()
    return sign_invitation(invitation.id, settings.secret_key.get_secret_value())


async def test_invitation_decides_agency_and_is_used_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    token = await _invitation(session, settings, world)
    spoof = form(world, invitation=token, agency_code=world.outside.code, procedure_code=None)
    response = await client.post(world.url(), json=spoof, headers=world.kiosk)
    assert response.status_code == 201, response.text
    row = await stored_form(session, response.json()["id"])
    assert row is not None
    assert row.agency_id == world.district.id  # the dossier's agency, not the one sent
    assert row.procedure_id == world.procedure.id
    invitation = await session.scalar(
        sa.select(Invitation).where(col(Invitation.submission_id) == row.id)
    )
    assert invitation is not None
    assert invitation.used_at is not None
    assert (
        await client.post(world.url(), json=spoof, headers=world.kiosk)
    ).status_code == 201  # replay
    reuse = await client.post(world.url(), json=form(world, invitation=token), headers=world.kiosk)
    assert_problem(reuse, 409, "invitation_used")
    assert await count(session, world.campaign) == 1


async def test_expired_or_forged_invitation_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    expired = await _invitation(
        session, settings, world, expires_at=datetime.now(UTC) - timedelta(minutes=1)
    )
    assert_problem(
        await client.post(world.url(), json=form(world, invitation=expired), headers=world.kiosk),
        410,
        "invitation_expired",
    )
    forged = expired[:-2] + ("AA" if not expired.endswith("AA") else "BB")
    assert_problem(
        await client.post(world.url(), json=form(world, invitation=forged), headers=world.kiosk),
        422,
        "invitation_invalid",
    )
    assert await count(session, world.campaign) == 0


async def test_a_client_cannot_file_forms_for_another_agency(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    scoped, _ = await make_client(session, [Scope.submissions_write], agency=world.outside)
    response = await client.post(world.url(), json=form(world), headers=bearer(settings, scoped))
    body = assert_problem(response, 422, "invalid")
    assert body["errors"][0]["pointer"] == "/body/agency_code"  # type: ignore[index]


async def _surveyor_form(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, w: World
) -> tuple[dict[str, str], str]:
    surveyor = await make_user(session, Role.surveyor)
    session.add(
        CampaignSurveyor(campaign_id=w.campaign.id, user_id=surveyor.id, agency_id=w.district.id)
    )
    await session.flush()
    headers = bearer(settings, surveyor)
    response = await client.post(w.url(), json=form(w, channel="post_office"), headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["surveyor_id"] == str(surveyor.id)
    return headers, response.json()["id"]


async def test_surveyor_corrects_before_review_and_keeps_history(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    headers, form_id = await _surveyor_form(client, session, settings, world)
    corrected = await client.put(
        f"/api/v1/submissions/{form_id}",
        json={"answers": {**GOOD, "E1.C1": 2}},
        headers=headers,
    )
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["version"] == 2
    assert corrected.json()["answers"]["E1.C1"] == 2
    history = await session.scalars(
        sa.select(SubmissionVersion).where(
            col(SubmissionVersion.submission_id) == uuid.UUID(form_id)
        )
    )
    [old] = history.all()
    assert (old.version, old.answers["E1.C1"]) == (1, 5)

    admin = bearer(settings, await make_user(session, Role.admin))
    reviewed = await client.post(
        f"/api/v1/submissions/{form_id}/review", json={"state": "valid"}, headers=admin
    )
    assert reviewed.status_code == 200, reviewed.text
    late = await client.put(
        f"/api/v1/submissions/{form_id}", json={"answers": GOOD}, headers=headers
    )
    assert_problem(late, 409, "already_reviewed")
    versions = await client.get(f"/api/v1/submissions/{form_id}/versions", headers=admin)
    assert [v["version"] for v in versions.json()] == [1]


async def test_a_surveyor_cannot_touch_someone_elses_form(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    _, form_id = await _surveyor_form(client, session, settings, world)
    other = await make_user(session, Role.surveyor)
    session.add(CampaignSurveyor(campaign_id=world.campaign.id, user_id=other.id))
    await session.flush()
    response = await client.put(
        f"/api/v1/submissions/{form_id}", json={"answers": GOOD}, headers=bearer(settings, other)
    )
    assert_problem(response, 404, "not_found")


async def test_unassigned_surveyor_does_not_see_the_campaign(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    stranger = bearer(settings, await make_user(session, Role.surveyor))
    assert_problem(
        await client.post(world.url(), json=form(world), headers=stranger), 404, "not_found"
    )


async def test_review_needs_a_reason_to_reject_and_is_audited(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    created = await client.post(world.url(), json=form(world), headers=world.kiosk)
    form_id = created.json()["id"]
    admin = bearer(settings, await make_user(session, Role.admin))
    no_reason = await client.post(
        f"/api/v1/submissions/{form_id}/review", json={"state": "rejected"}, headers=admin
    )
    assert_problem(no_reason, 422, "invalid")
    rejected = await client.post(
        f"/api/v1/submissions/{form_id}/review",
        json={"state": "rejected", "reason": "Phiếu trùng lặp"},
        headers=admin,
    )
    assert rejected.status_code == 200
    assert rejected.json()["review_reason"] == "Phiếu trùng lặp"
    # Analysts review as admins do (hole 6); an agency manager may not.
    manager = bearer(settings, await make_user(session, Role.agency_manager, agency=world.province))
    forbidden = await client.post(
        f"/api/v1/submissions/{form_id}/review", json={"state": "valid"}, headers=manager
    )
    assert_problem(forbidden, 403, "forbidden")


async def test_reading_is_scoped_and_carries_no_contact_data(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    for _ in range(3):
        await client.post(world.url(), json=form(world), headers=world.kiosk)
    manager = bearer(settings, await make_user(session, Role.agency_manager, agency=world.outside))
    theirs = await client.get(
        "/api/v1/submissions", params={"campaign_id": str(world.campaign.id)}, headers=manager
    )
    assert theirs.json()["items"] == []
    admin = bearer(settings, await make_user(session, Role.admin))
    page = await client.get(
        "/api/v1/submissions", params={"campaign_id": str(world.campaign.id)}, headers=admin
    )
    assert len(page.json()["items"]) == 3
    assert "contact" not in page.text
    export = await client.get(
        "/api/v1/submissions/export", params={"campaign_id": str(world.campaign.id)}, headers=admin
    )
    assert export.status_code == 200
    text = export.content.decode("utf-8")
    assert text.startswith("\ufeff")
    assert len(text.strip().splitlines()) == 4
    assert "contact" not in text
    supervisor = bearer(settings, await make_user(session, Role.supervisor))
    assert_problem(await client.get("/api/v1/submissions", headers=supervisor), 403, "forbidden")


async def test_recheck_list_is_repeatable(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    for _ in range(20):
        await client.post(world.url(), json=form(world), headers=world.kiosk)
    admin = bearer(settings, await make_user(session, Role.admin))
    url = f"/api/v1/campaigns/{world.campaign.id}/recheck"
    a = await client.get(url, params={"share": 0.2, "seed": "phuc-tra-1"}, headers=admin)
    b = await client.get(url, params={"share": 0.2, "seed": "phuc-tra-1"}, headers=admin)
    c = await client.get(url, params={"share": 0.2, "seed": "phuc-tra-2"}, headers=admin)
    ids = [f["id"] for f in a.json()]
    assert len(ids) == 4
    assert ids == [f["id"] for f in b.json()]
    assert ids != [f["id"] for f in c.json()]
    bigger = await client.get(url, params={"share": 0.5, "seed": "phuc-tra-1"}, headers=admin)
    assert set(ids) <= {f["id"] for f in bigger.json()}


def _raw(body: object, headers: dict[str, str]) -> dict[str, Any]:
    """The request as JSON text spelled by `json.dumps`, which escapes a lone surrogate as
    `\\udXXX` (httpx's own encoder would refuse it)."""
    return {"content": json.dumps(body), "headers": {**headers, "content-type": "application/json"}}


@pytest.mark.parametrize(
    ("changes", "pointer", "code"),
    [
        ({"respondent_type": "company"}, "/respondent_type", "literal_error"),
        ({"device_id": "kiosk\x0007"}, "/device_id", "value_error"),
        ({"agency_code": "A\x00B"}, "/agency_code", "value_error"),
        ({"answers": {**GOOD, "C.NOTE": "tốt\x00"}}, "/answers/C.NOTE", "nul_character"),
    ],
)
async def test_a_value_the_table_cannot_hold_is_an_error_on_its_field(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    changes: dict[str, Any],
    pointer: str,
    code: str,
) -> None:
    """A respondent type outside the check constraint, or NUL in text, used to reach the INSERT:
    a 409 or a 422 that named no field, and in a batch it failed the valid forms too."""
    bad = form(world, **changes)
    single = await client.post(world.url(), json=bad, headers=world.kiosk)
    assert single.status_code == 422, single.text
    assert [(e["pointer"], e["code"]) for e in single.json()["errors"]] == [
        ("/body" + pointer, code)
    ]
    good = form(world)
    batch = await client.post(
        world.url("/batch"), json={"submissions": [bad, good]}, headers=world.kiosk
    )
    assert batch.status_code == 200, batch.text
    first, second = batch.json()["results"]
    assert first["status"] == "error"
    assert [(e["pointer"], e["code"]) for e in first["errors"]] == [
        ("/body/submissions/0" + pointer, code)
    ]
    assert second["status"] == "created"
    assert await count(session, world.campaign) == 1


@pytest.mark.parametrize(
    ("changes", "pointer"),
    [
        ({"answers": {**GOOD, "C.NOTE": "x\ud800y"}}, "/answers/C.NOTE"),
        ({"answers": {**GOOD, "E1.C1\udfff": 5}}, "/answers/E1.C1\ufffd"),
        ({"device_id": "\udc00"}, "/device_id"),
    ],
)
async def test_a_lone_surrogate_is_refused_with_its_pointer(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    changes: dict[str, Any],
    pointer: str,
) -> None:
    """JSON can spell half of a UTF-16 pair; it is not text, and it used to give a 500 where the
    form was hashed or the error echoed. The whole request is refused, like invalid UTF-8."""
    bad = form(world, **changes)
    single = await client.post(world.url(), **_raw(bad, world.kiosk))
    body = assert_problem(single, 422, "invalid")
    assert error_codes(body) == [("/body" + pointer, "not_unicode")]
    batch = await client.post(
        world.url("/batch"), **_raw({"submissions": [form(world), bad]}, world.kiosk)
    )
    body = assert_problem(batch, 422, "invalid")
    assert body["errors"][0]["pointer"] == "/body/submissions/1" + pointer  # type: ignore[index]
    assert await count(session, world.campaign) == 0


async def test_a_surrogate_pair_is_text_and_round_trips(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    note = "Rất hài lòng 😀 – cảm ơn"
    body = form(world, answers={**GOOD, "C.NOTE": note})
    sent = json.dumps(body)
    assert "\\ud83d\\ude00" in sent  # spelled as an escaped pair
    response = await client.post(world.url(), **_raw(body, world.kiosk))
    assert response.status_code == 201, response.text
    assert response.json()["answers"]["C.NOTE"] == note
    row = await stored_form(session, response.json()["id"])
    assert row is not None
    assert row.answers["C.NOTE"] == note


async def test_a_correction_with_an_unknown_respondent_type_names_the_field(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    headers, form_id = await _surveyor_form(client, session, settings, world)
    response = await client.put(
        f"/api/v1/submissions/{form_id}",
        json={"answers": GOOD, "respondent_type": "company"},
        headers=headers,
    )
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["pointer"] == "/body/respondent_type"  # type: ignore[index]


async def test_a_correction_lists_type_and_answer_errors_together(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    headers, form_id = await _surveyor_form(client, session, settings, world)
    response = await client.put(
        f"/api/v1/submissions/{form_id}",
        json={"answers": {**GOOD, "E1.C1": 9}, "respondent_type": "company"},
        headers=headers,
    )
    body = assert_problem(response, 422, "validation_failed")
    assert sorted(error_codes(body)) == [
        ("/body/answers/E1.C1", "out_of_range"),
        ("/body/respondent_type", "literal_error"),
    ]


async def test_a_batch_retry_of_a_stored_form_that_would_not_pass_today_is_a_duplicate(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    """The batch looks nothing up before inserting: a stored form sent again is found through
    the INSERT doing nothing, or, when its checks fail now (its invitation is used, by itself),
    among the refused keys. Either way it answers as a duplicate, and another body under its
    id is a conflict."""
    token = await _invitation(session, settings, world)
    invited = form(world, invitation=token, procedure_code=None)
    plain = form(world)
    for body in (invited, plain):
        first = await client.post(world.url(), json=body, headers=world.kiosk)
        assert first.status_code == 201, first.text
    ids: dict[str, str] = {}
    rows = await session.scalars(
        sa.select(Submission).where(col(Submission.campaign_id) == world.campaign.id)
    )
    for row in rows:
        ids[str(row.client_submission_id)] = str(row.id)

    changed = form(world, submission_id=plain["submission_id"], answers={**GOOD, "E1.C1": 9})
    batch = await client.post(
        world.url("/batch"),
        json={"submissions": [invited, plain, changed, form(world)]},
        headers=world.kiosk,
    )
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["status"] for r in results] == ["duplicate", "duplicate", "error", "created"]
    assert results[0]["id"] == ids[invited["submission_id"]]
    assert results[1]["id"] == ids[plain["submission_id"]]
    assert results[2]["errors"][0]["code"] == "conflict"
    assert await count(session, world.campaign) == 3
