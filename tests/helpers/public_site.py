"""The public site's world: a province with two districts, SIPAS 2019 and 2020 published, a
renamed agency (shared by the site, plans and reform-report tests)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.models.agency import Agency, AgencySuccessor, SuccessionKind
from app.models.campaign import Campaign, CampaignState
from app.models.identity import Role
from app.models.questionnaire import Questionnaire
from app.models.report import Report
from app.models.submission import Channel, Submission, SubmissionState
from app.services import campaigns
from app.services.auth import user_principal
from tests.factories import make_agency, make_campaign, make_user


def form(campaign: Campaign, agency: Agency, e11: int, e12: int, e21: int) -> Submission:
    return Submission(
        campaign_id=campaign.id,
        client_submission_id=uuid.uuid4(),
        request_hash="x",
        agency_id=agency.id,
        channel=Channel.post_office,
        state=SubmissionState.valid,
        answers={"E1.C1": e11, "E1.C2": e12, "E2.C1": e21, "C.NOTE": "Số nhà 12, ngõ 3"},
        received_at=datetime.now(UTC),
    )


@dataclass
class Site:
    province: Agency
    a: Agency
    old: Agency
    new: Agency
    small: Agency
    r2019: Report
    r2020: Report


async def build_site(session: AsyncSession) -> Site:
    """Two published years of one province; OLD was renamed NEW on 2020-01-01."""
    p = await make_agency(session, level="province", name="UBND tỉnh Tuyên Quang")
    a = await make_agency(session, parent=p, level="district", name="UBND huyện Na Hang")
    old = await make_agency(
        session,
        parent=p,
        level="district",
        name="UBND thị xã Tuyên Quang",
        valid_to=date(2020, 1, 1),
    )
    new = await make_agency(
        session,
        parent=p,
        level="district",
        name="UBND thành phố Tuyên Quang",
        valid_from=date(2020, 1, 1),
    )
    small = await make_agency(session, parent=p, level="district", name="UBND huyện Lâm Bình")
    session.add(
        AgencySuccessor(
            predecessor_id=old.id,
            successor_id=new.id,
            kind=SuccessionKind.renamed_to,
            effective_on=date(2020, 1, 1),
        )
    )
    admin = user_principal(await make_user(session, Role.admin))
    c2019 = await make_campaign(session, agencies=[p], state=CampaignState.closed)
    c2019.year, c2019.name = 2019, "Chỉ số SIPAS năm 2019"
    c2019.period_start, c2019.period_end = date(2019, 1, 1), date(2019, 10, 31)
    c2019.fieldwork_start, c2019.fieldwork_end = date(2019, 11, 1), date(2019, 12, 15)
    c2019.map_date = date(2019, 10, 31)
    for i in range(12):
        session.add(form(c2019, a, 5 if i < 6 else 3, 4, 4 if i < 9 else 2))
        session.add(form(c2019, old, 4 if i < 10 else 2, 5, 5 if i < 4 else 3))
    await session.flush()
    r2019 = await campaigns.publish(session, admin, c2019.id, "Công bố 2019")
    same = await session.get(Questionnaire, c2019.questionnaire_id)
    c2020 = await make_campaign(
        session, agencies=[p], state=CampaignState.closed, questionnaire=same
    )
    c2020.name = "Chỉ số SIPAS năm 2020"
    for i in range(14):
        session.add(form(c2020, a, 5 if i < 10 else 3, 4, 4 if i < 11 else 1))
        session.add(form(c2020, new, 4 if i < 12 else 2, 5 if i < 13 else 3, 5 if i < 9 else 3))
    for e in ((5, 5, 5), (5, 1, 1), (1, 1, 1)):
        session.add(form(c2020, small, *e))
    await session.flush()
    r2020 = await campaigns.publish(session, admin, c2020.id, "Công bố 2020")
    return Site(p, a, old, new, small, r2019, r2020)
