"""The index cache: repeated reads reuse a result, and any change to what it was computed from
(a new form, a review, an agency renamed) is seen at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models.agency import Agency
from app.models.campaign import Campaign, CampaignState
from app.models.identity import Role
from app.models.submission import Channel, Submission, SubmissionState
from app.services.index import cache
from tests.factories import bearer, make_agency, make_campaign, make_questionnaire, make_user


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    """The results cache is the process's and keeps at most 256 entries: after a worker's
    thousands of index reads (the roll-up tests) it is full, and a new entry evicts one, so
    each test here counts entries from an empty cache."""
    cache.RESULTS.clear()


def form(campaign: Campaign, agency: Agency, level: int) -> Submission:
    return Submission(
        campaign_id=campaign.id,
        client_submission_id=uuid.uuid4(),
        request_hash="x",
        agency_id=agency.id,
        channel=Channel.web,
        state=SubmissionState.valid,
        answers={"E1.C1": level, "R.GENDER": "nam"},
        received_at=datetime.now(UTC),
    )


def criterion(body: dict[str, object]) -> object:
    total = body["total"]
    assert isinstance(total, dict)
    return total["index"]["children"][0]["children"][0]["value_display"]


async def test_cached_reads_never_go_stale(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    agency = await make_agency(session, name="Sở Tư pháp")
    q = await make_questionnaire(session)
    q.frozen_at = datetime.now(UTC)
    campaign = await make_campaign(
        session, agencies=[agency], questionnaire=q, state=CampaignState.closed
    )
    rows = [form(campaign, agency, level) for level in (5, 5, 4, 3) * 2]  # 8: not suppressed
    session.add_all(rows)
    await session.flush()
    admin = bearer(settings, await make_user(session, Role.admin))
    url = f"/api/v1/campaigns/{campaign.id}/index"

    entries = len(cache.RESULTS)
    first = await client.get(url, headers=admin)
    assert criterion(first.json()) == "75.00"  # 6 of 8 satisfied
    assert len(cache.RESULTS) == entries + 1
    again = await client.get(url, headers=admin)
    assert again.content == first.content
    assert len(cache.RESULTS) == entries + 1  # answered from the cache

    session.add(form(campaign, agency, 1))  # a new valid form
    await session.flush()
    assert criterion((await client.get(url, headers=admin)).json()) == "66.67"  # 6 of 9

    reviewed = await client.post(
        f"/api/v1/submissions/{rows[3].id}/review",
        json={"state": "rejected", "reason": "Phiếu trùng"},
        headers=admin,
    )
    assert reviewed.status_code == 200, reviewed.text
    assert criterion((await client.get(url, headers=admin)).json()) == "75.00"  # 6 of 8

    by_agency = await client.get(url, params={"group_by": "agency"}, headers=admin)
    assert [c["label"] for c in by_agency.json()["groups"]] == ["Sở Tư pháp"]
    renamed = await client.patch(
        f"/api/v1/agencies/{agency.id}", json={"name": "Sở Tư pháp tỉnh Tuyên Quang"}, headers=admin
    )
    assert renamed.status_code == 200, renamed.text
    by_agency = await client.get(url, params={"group_by": "agency"}, headers=admin)
    assert [c["label"] for c in by_agency.json()["groups"]] == ["Sở Tư pháp tỉnh Tuyên Quang"]


async def test_drafts_are_not_cached(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    agency = await make_agency(session)
    campaign = await make_campaign(session, agencies=[agency], state=CampaignState.draft)
    admin = bearer(settings, await make_user(session, Role.admin))
    entries = len(cache.RESULTS)
    response = await client.get(f"/api/v1/campaigns/{campaign.id}/index", headers=admin)
    assert response.status_code == 200
    assert len(cache.RESULTS) == entries
