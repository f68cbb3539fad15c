"""The index for the dossier-rating instrument, and the sector and respondent-type breakdowns."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.campaign import CampaignState
from app.models.identity import Role
from app.models.questionnaire import Questionnaire
from app.models.submission import Channel, Submission, SubmissionState
from app.services.questionnaires import ensure_builtins
from tests.factories import (
    bearer,
    make_agency,
    make_campaign,
    make_procedure,
    make_sector,
    make_user,
)

INDICATORS = [f"D{i}" for i in range(1, 10)]


def row(
    campaign_id: uuid.UUID,
    agency_id: uuid.UUID,
    answers: dict[str, object],
    sector_id: uuid.UUID | None = None,
    respondent_type: str | None = None,
) -> Submission:
    return Submission(
        campaign_id=campaign_id,
        client_submission_id=uuid.uuid4(),
        request_hash="x",
        agency_id=agency_id,
        channel=Channel.one_stop,
        state=SubmissionState.valid,
        answers=answers,
        received_at=datetime.now(UTC),
        sector_id=sector_id,
        respondent_type=respondent_type,
    )


async def test_dossier_rating_scores_and_bands(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await ensure_builtins(session)
    q = await session.scalar(
        sa.select(Questionnaire).where(col(Questionnaire.code) == "dossier-rating-2018")
    )
    assert q is not None
    agency = await make_agency(session)
    campaign = await make_campaign(
        session, agencies=[agency], questionnaire=q, state=CampaignState.closed
    )
    # Five dossiers with totals 18, 18, 12, 9 and 4.
    totals = [18, 18, 12, 9, 4]
    for total in totals:
        answers: dict[str, object] = {}
        left = total
        for item in INDICATORS:
            score = min(2, left)
            answers[item] = score
            left -= score
        session.add(row(campaign.id, agency.id, answers))
    await session.flush()
    headers = bearer(settings, await make_user(session, Role.analyst))
    response = await client.get(f"/api/v1/campaigns/{campaign.id}/index", headers=headers)
    assert response.status_code == 200, response.text
    dossier = response.json()["total"]["dossier"]
    assert dossier["rated"] == 5
    assert dossier["mean_total_display"] == "12.20"  # (18 + 18 + 12 + 9 + 4) / 5 = 61 / 5
    assert dossier["mean_total"] == pytest.approx(12.2)
    assert dossier["bands"] == {"xuat_sac": 2, "tot": 1, "kha": 1, "trung_binh": 0, "yeu": 1}
    # Points fill D1, D2, ... two at a time: every total here is at least 2, so D1 is always 2
    assert dossier["indicators"]["D1"] == 2.0
    assert dossier["indicators_display"]["D1"] == "2.00"
    # D9 is 2 only where the total is 18: (2 + 2 + 0 + 0 + 0) / 5 = 0.8
    assert dossier["indicators"]["D9"] == pytest.approx(0.8)
    assert dossier["indicators_display"]["D9"] == "0.80"
    assert response.json()["total"]["index"] is None  # this instrument has no SIPAS index


async def test_sector_and_respondent_type_breakdowns(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    agency = await make_agency(session)
    land, civil = (
        await make_sector(session, name_vi="Đất đai"),
        await make_sector(session, name_vi="Hộ tịch"),
    )
    await make_procedure(session, land)
    campaign = await make_campaign(session, agencies=[agency], state=CampaignState.closed)
    plan = [
        (land, "individual", 5),
        (land, "organisation", 2),
        (civil, "individual", 4),
        (civil, "individual", 3),
    ]
    for sector, kind, value in plan:
        session.add(
            row(
                campaign.id,
                agency.id,
                {"E1.C1": value, "R.GENDER": "nam"},
                sector_id=sector.id,
                respondent_type=kind,
            )
        )
    await session.flush()
    headers = bearer(settings, await make_user(session, Role.analyst))
    url = f"/api/v1/campaigns/{campaign.id}/index"

    def criterion(cell: dict[str, object]) -> str | None:
        index = cell["index"]
        assert isinstance(index, dict)
        e1 = index["children"][0]
        return e1["children"][0]["exact"]  # type: ignore[no-any-return]

    by_sector = (await client.get(url, params={"group_by": "sector"}, headers=headers)).json()
    cells = {c["label"]: c for c in by_sector["groups"]}
    assert set(cells) == {"Đất đai", "Hộ tịch"}
    # Below 5 respondents every value is suppressed; the counts of respondents stay.
    assert cells["Đất đai"]["n_respondents"] == 2
    assert cells["Đất đai"]["suppressed"] is True
    assert criterion(cells["Đất đai"]) is None
    by_type = (
        await client.get(url, params={"group_by": "respondent_type"}, headers=headers)
    ).json()
    assert {c["key"]: c["n_respondents"] for c in by_type["groups"]} == {
        "individual": 3,
        "organisation": 1,
    }
