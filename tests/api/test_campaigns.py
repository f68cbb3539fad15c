"""Campaign lifecycle, edit rules, strata and targets, and progress against direct counts."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.agency import Agency
from app.models.audit import AuditEvent
from app.models.campaign import Campaign, CampaignState, FrameContact, FrameUnit, Stratum
from app.models.identity import Role
from app.models.questionnaire import Questionnaire
from app.models.submission import Channel, Submission, SubmissionState
from tests.factories import bearer, make_agency, make_campaign, make_questionnaire, make_user
from tests.helpers.problems import assert_problem

S = CampaignState
# Written out by hand: the lifecycle the product asks for.
ALLOWED = {
    (S.draft, S.open),
    (S.open, S.closed),
    (S.closed, S.open),
    (S.closed, S.published),
    (S.published, S.archived),
}


async def test_create_campaign(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    agency = await make_agency(session)
    q = await make_questionnaire(session)
    body = {
        "code": "TQ-SIPAS-2020",
        "name": "SIPAS 2020 tỉnh Tuyên Quang",
        "year": 2020,
        "questionnaire_id": str(q.id),
        "period_start": "2020-01-01",
        "period_end": "2020-10-31",
        "fieldwork_start": "2020-11-01",
        "fieldwork_end": "2020-12-15",
        "agency_ids": [str(agency.id)],
    }
    response = await client.post("/api/v1/campaigns", json=body, headers=admin)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["state"] == "draft"
    assert created["map_date"] == "2020-10-31"
    assert created["agency_ids"] == [str(agency.id)]
    assert created["margin"] == "0.05"
    again = await client.post("/api/v1/campaigns", json=body, headers=admin)
    assert_problem(again, 409, "campaign_code_taken")
    bad = await client.post(
        "/api/v1/campaigns",
        json={
            **body,
            "code": "X-2",
            "fieldwork_end": "2020-10-01",
            "agency_ids": [str(uuid.uuid4())],
        },
        headers=admin,
    )
    problem = assert_problem(bad, 422, "invalid")
    assert problem["errors"] == [
        {"pointer": "/body/agency_ids/0", "code": "unknown", "detail": "no such id"}
    ]


@pytest.mark.parametrize("start", list(S))
@pytest.mark.parametrize("to", list(S))
async def test_every_transition_allowed_or_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: dict[str, str],
    start: CampaignState,
    to: CampaignState,
) -> None:
    campaign = await make_campaign(session, agencies=[await make_agency(session)], state=start)
    response = await client.post(
        f"/api/v1/campaigns/{campaign.id}/transition",
        json={"to": to.value, "reason": "kế hoạch năm"},
        headers=admin,
    )
    if (start, to) in ALLOWED:
        assert response.status_code == 200, response.text
        assert response.json()["state"] == to.value
        event = await session.scalar(
            sa.select(AuditEvent).where(
                col(AuditEvent.action) == "campaign.transition",
                col(AuditEvent.object_id) == str(campaign.id),
            )
        )
        assert event is not None
        assert event.summary == {"from": start.value, "to": to.value, "reason": "kế hoạch năm"}
    else:
        body = assert_problem(response, 409, "transition_not_allowed")
        assert body["from"] == start.value
        assert to.value in str(body["detail"])
        await session.refresh(campaign)
        assert campaign.state == start


async def test_opening_freezes_the_questionnaire(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    q = await make_questionnaire(session)
    campaign = await make_campaign(session, agencies=[await make_agency(session)], questionnaire=q)
    opened = await client.post(
        f"/api/v1/campaigns/{campaign.id}/transition", json={"to": "open"}, headers=admin
    )
    assert opened.status_code == 200, opened.text
    await session.refresh(q)
    assert q.frozen_at is not None
    with pytest.raises(DBAPIError, match="frozen"):
        async with session.begin_nested():
            await session.execute(
                sa.update(Questionnaire)
                .where(col(Questionnaire.id) == q.id)
                .values(definition={"changed": True})
            )
    other = await make_questionnaire(session)
    swap = await client.patch(
        f"/api/v1/campaigns/{campaign.id}",
        json={"questionnaire_id": str(other.id)},
        headers=admin,
    )
    body = assert_problem(swap, 409, "campaign_locked")
    assert body["errors"] == [
        {"pointer": "/body/questionnaire_id", "code": "locked", "detail": "not editable while open"}
    ]


async def test_opening_needs_agencies(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    campaign = await make_campaign(session, agencies=[])
    response = await client.post(
        f"/api/v1/campaigns/{campaign.id}/transition", json={"to": "open"}, headers=admin
    )
    assert_problem(response, 409, "campaign_without_scope")


@pytest.mark.parametrize(
    ("state", "field", "value", "allowed"),
    [
        (S.draft, "period_end", "2020-11-30", True),
        (S.draft, "name", "Tên mới", True),
        (S.open, "fieldwork_end", "2020-12-31", True),
        (S.open, "period_end", "2020-11-30", False),
        (S.open, "agency_ids", [], False),
        (S.closed, "name", "Tên mới", True),
        (S.closed, "fieldwork_end", "2020-12-31", False),
        (S.published, "name", "Tên mới", False),
        (S.archived, "name", "Tên mới", False),
    ],
)
async def test_what_may_change_in_each_state(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: dict[str, str],
    state: CampaignState,
    field: str,
    value: object,
    allowed: bool,
) -> None:
    campaign = await make_campaign(session, agencies=[await make_agency(session)], state=state)
    response = await client.patch(
        f"/api/v1/campaigns/{campaign.id}", json={field: value}, headers=admin
    )
    if allowed:
        assert response.status_code == 200, response.text
        assert response.json()[field] == value
    else:
        assert_problem(response, 409, "campaign_locked")


async def test_archiving_purges_contact_data(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    agency = await make_agency(session)
    campaign = await make_campaign(session, agencies=[agency], state=S.published)
    unit = FrameUnit(
        campaign_id=campaign.id,
        dossier_code="000.00.01.H57-200101-0001",
        agency_id=agency.id,
        returned_on=date(2020, 5, 4),
    )
    session.add(unit)
    await session.flush()
    session.add(FrameContact(frame_unit_id=unit.id, name="Nguyễn Văn A", phone="0912345678"))
    await session.flush()
    response = await client.post(
        f"/api/v1/campaigns/{campaign.id}/transition",
        json={"to": "archived"},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    assert await session.get(FrameContact, unit.id) is None
    assert await session.get(FrameUnit, unit.id) is not None  # the frame itself stays


async def _strata(session: AsyncSession, campaign: Campaign, sizes: list[int]) -> list[Agency]:
    agencies = []
    for n in sizes:
        agency = await make_agency(session)
        agencies.append(agency)
        session.add(Stratum(campaign_id=campaign.id, agency_id=agency.id, frame_size=n))
    return agencies


async def test_allocation_from_the_formula(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    campaign = await make_campaign(session, agencies=[])
    await _strata(session, campaign, [1700, 250, 50])  # N = 2000
    await session.flush()
    response = await client.post(
        f"/api/v1/campaigns/{campaign.id}/strata/allocate", json={}, headers=admin
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["population"] == 2000
    assert body["total"] == 334
    targets = sorted((s["frame_size"], s["target"]) for s in body["strata"])
    assert targets == [(50, 30), (250, 39), (1700, 265)]


async def test_hand_set_targets_are_kept(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    agencies = [await make_agency(session) for _ in range(2)]
    campaign = await make_campaign(session, agencies=agencies)
    put = await client.put(
        f"/api/v1/campaigns/{campaign.id}/strata",
        json={
            "strata": [
                {"agency_id": str(agencies[0].id), "frame_size": 600, "target": 100},
                {"agency_id": str(agencies[1].id), "frame_size": 400},
            ]
        },
        headers=admin,
    )
    assert put.status_code == 200, put.text
    response = await client.post(
        f"/api/v1/campaigns/{campaign.id}/strata/allocate",
        json={"total": 250},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    by_agency = {s["agency_id"]: s for s in response.json()["strata"]}
    assert by_agency[str(agencies[0].id)]["target"] == 100
    assert by_agency[str(agencies[0].id)]["target_is_manual"] is True
    assert by_agency[str(agencies[1].id)]["target"] == 150
    outside = await client.put(
        f"/api/v1/campaigns/{campaign.id}/strata",
        json={"strata": [{"agency_id": str((await make_agency(session)).id)}]},
        headers=admin,
    )
    body = assert_problem(outside, 422, "invalid")
    assert body["errors"][0]["pointer"] == "/body/strata/0/agency_id"  # type: ignore[index]


async def test_progress_equals_direct_counts(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    province = await make_agency(session, level="province")
    a = await make_agency(session, parent=province)
    b = await make_agency(session, parent=province)
    campaign = await make_campaign(session, agencies=[a, b], state=S.open)
    strata = {}
    for agency, target in ((a, 40), (b, 30)):
        stratum = Stratum(
            campaign_id=campaign.id, agency_id=agency.id, frame_size=200, target=target
        )
        session.add(stratum)
        await session.flush()
        strata[agency.id] = stratum
    plan = {
        a.id: ["valid"] * 7 + ["rejected"] * 2 + ["flagged"],
        b.id: ["valid"] * 3 + ["received"],
    }
    for agency_id, states in plan.items():
        for state in states:
            session.add(
                Submission(
                    campaign_id=campaign.id,
                    client_submission_id=uuid.uuid4(),
                    request_hash="x",
                    agency_id=agency_id,
                    stratum_id=strata[agency_id].id,
                    channel=Channel.web,
                    state=SubmissionState(state),
                    answers={},
                    received_at=datetime.now(UTC),
                )
            )
    for i in range(12):
        session.add(
            FrameUnit(
                campaign_id=campaign.id,
                dossier_code=f"HS-{i}",
                agency_id=a.id,
                stratum_id=strata[a.id].id,
                returned_on=date(2020, 3, 1),
                in_sample=i < 10,
            )
        )
    await session.flush()
    manager = await make_user(session, Role.supervisor)
    response = await client.get(
        f"/api/v1/campaigns/{campaign.id}/progress", headers=bearer(settings, manager)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    direct = (
        await session.execute(
            sa.text(
                "SELECT stratum_id, count(*), count(*) FILTER (WHERE state = 'valid'), "
                "count(*) FILTER (WHERE state = 'rejected') FROM submissions "
                "WHERE campaign_id = :c GROUP BY stratum_id"
            ),
            {"c": campaign.id},
        )
    ).all()
    expected = {str(r[0]): (r[1], r[2], r[3]) for r in direct}
    got = {s["stratum_id"]: (s["received"], s["valid"], s["rejected"]) for s in body["strata"]}
    assert got == expected
    row_a = next(s for s in body["strata"] if s["agency_id"] == str(a.id))
    assert row_a["completion_pct"] == 17.5  # 100 · 7 / 40
    assert row_a["sampled"] == 10
    assert row_a["response_rate_pct"] == 100.0  # 10 received of 10 sampled
    row_b = next(s for s in body["strata"] if s["agency_id"] == str(b.id))
    assert row_b["completion_pct"] == 10.0  # 100 · 3 / 30
    assert row_b["response_rate_pct"] is None  # no sample drawn
    assert body["totals"]["valid"] == 10
    assert body["totals"]["completion_pct"] == 14.29  # 100 · 10 / 70 = 14.2857

    scoped = await make_user(session, Role.agency_manager, agency=b)
    mine = await client.get(
        f"/api/v1/campaigns/{campaign.id}/progress", headers=bearer(settings, scoped)
    )
    assert [s["agency_id"] for s in mine.json()["strata"]] == [str(b.id)]


async def test_unknown_campaign_is_404(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    response = await client.get(f"/api/v1/campaigns/{uuid.uuid4()}", headers=admin)
    assert_problem(response, 404, "not_found")
