"""The demo campaigns: idempotent, synthetic, valid against their questionnaire, on target."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.agency import Agency, AgencyKind
from app.models.campaign import Campaign, CampaignState, Stratum
from app.models.identity import Role, Scope
from app.models.report import Report
from app.models.submission import Submission
from app.services import instrument
from app.services.demo_campaigns import RATING_CODE, ensure_demo_campaigns, synthetic_form
from app.services.seed import load_demo_catalogue
from tests.factories import bearer, make_agency, make_campaign, make_client, make_user


async def test_demo_campaigns_with_the_2019_report_and_an_open_dossier_rating(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await load_demo_catalogue(session)
    created = await ensure_demo_campaigns(session)
    assert set(created) == {"TQ-SIPAS-2019", "TQ-SIPAS-2020", "TQ-DANHGIA-HOSO", "TQ-SIPAS-2021"}
    assert await ensure_demo_campaigns(session) == {}

    campaigns = {
        c.code: c
        for c in (
            await session.scalars(
                sa.select(Campaign).where(
                    col(Campaign.code).in_(["TQ-SIPAS-2019", "TQ-SIPAS-2020"])
                )
            )
        ).all()
    }
    assert campaigns["TQ-SIPAS-2019"].state == "published"
    assert campaigns["TQ-SIPAS-2020"].state == "open"
    q = instrument.load_builtin("sipas-2017")
    for code, campaign in campaigns.items():
        assert campaign.is_synthetic
        forms = (
            await session.scalars(
                sa.select(Submission).where(col(Submission.campaign_id) == campaign.id)
            )
        ).all()
        assert len(forms) == created[code]
        assert all(f.is_synthetic for f in forms)
        problems = [p for f in forms for p in instrument.validate_answers(q, f.answers)]
        assert problems == []
        nulls = sum(v is None for f in forms for k, v in f.answers.items() if k.startswith("E"))
        assert nulls > 0  # some "no answer", as on real paper forms
        per_stratum = dict(
            (
                await session.execute(
                    sa.select(col(Submission.stratum_id), sa.func.count())
                    .where(col(Submission.campaign_id) == campaign.id)
                    .group_by(col(Submission.stratum_id))
                )
            ).all()
        )
        targets = dict(
            (
                await session.execute(
                    sa.select(col(Stratum.id), col(Stratum.target)).where(
                        col(Stratum.campaign_id) == campaign.id
                    )
                )
            ).all()
        )
        assert per_stratum == targets

    analyst = bearer(settings, await make_user(session, Role.analyst))
    progress = await client.get(
        f"/api/v1/campaigns/{campaigns['TQ-SIPAS-2020'].id}/progress", headers=analyst
    )
    assert progress.status_code == 200
    assert progress.json()["totals"]["received"] == created["TQ-SIPAS-2020"]

    # SIPAS 2019 was published through reports.publish: its report is there, once, and a second
    # load publishes nothing more
    latest = await client.get(
        f"/api/v1/campaigns/{campaigns['TQ-SIPAS-2019'].id}/reports/latest", headers=analyst
    )
    assert latest.status_code == 200, latest.text
    assert latest.json()["forms_counted"] > 0
    assert latest.headers["etag"]
    assert await ensure_demo_campaigns(session) == {}
    reports = await session.scalar(
        sa.select(sa.func.count())
        .select_from(Report)
        .where(col(Report.campaign_id) == campaigns["TQ-SIPAS-2019"].id)
    )
    assert reports == 1

    # the open dossier-rating campaign answers a one-stop event with an invitation at once
    rating = await session.scalar(sa.select(Campaign).where(col(Campaign.code) == RATING_CODE))
    assert rating is not None
    assert (rating.state, rating.rates_dossiers) == ("open", True)
    one_stop, _ = await make_client(session, [Scope.dossiers_write])
    event = {
        "code": "000.00.23.H57-201130-0001",
        "procedure_code": "1.001193",
        "agency_code": "TQ.XA.TANTRAO",
        "returned_at": datetime.now(UTC).isoformat(),
    }
    dossier = await client.post("/api/v1/dossiers", json=event, headers=bearer(settings, one_stop))
    assert dossier.status_code == 201, dossier.text
    [invitation] = dossier.json()["invitations"]
    assert invitation["campaign_id"] == str(rating.id)
    assert invitation["token"].startswith("inv_")
    for read in ("progress", "index"):  # a campaign without strata or forms yet reads fine
        answer = await client.get(f"/api/v1/campaigns/{rating.id}/{read}", headers=analyst)
        assert answer.status_code == 200, (read, answer.text)


def test_synthetic_forms_pass_their_questionnaire_and_are_skewed() -> None:
    """The generator behind the demo campaigns and bench.generate draws valid forms of every
    built-in; criteria and dossier indicators lean to the agency's level of satisfaction."""
    agency = Agency(
        code="TQ.STP",
        name="Sở Tư pháp",
        search_name="so tu phap",
        kind=AgencyKind.department,
        level="department",
        valid_from=date(2008, 1, 1),
    )
    rng = random.Random(7)
    scored_roles = {instrument.Role.criterion, instrument.Role.dossier_indicator}
    for code in instrument.BUILTINS:
        q = instrument.load_builtin(code)
        scored_ids = {i.id for _, i in instrument.iter_items(q) if i.role in scored_roles}
        for level in (0.9, 0.4):
            quality = {e.id: level for e in q.elements} or {"*": level}
            forms = [synthetic_form(rng, q, agency, quality) for _ in range(400)]
            assert all(instrument.validate_answers(q, f) == [] for f in forms), code
            scored = [v for f in forms for k, v in f.items() if k in scored_ids and v is not None]
            top = max(scored)
            share = sum(v == top for v in scored) / len(scored)
            # the top answer: 40 % of the satisfied criteria (5), every satisfied indicator (2)
            expected = level * (0.4 if top == 5 else 1)
            assert abs(share - expected) < 0.06, (code, level, share)


async def test_a_demo_campaign_an_older_loader_published_without_its_report_gets_it(
    session: AsyncSession,
) -> None:
    """Data directories loaded before the publish step existed hold SIPAS 2019 `published` with
    no report: the next load publishes it, through the same path, once."""
    agency = await make_agency(session, level="province")
    old = await make_campaign(session, agencies=[agency], state=CampaignState.published)
    old.code = "TQ-SIPAS-2019"
    await session.flush()

    await ensure_demo_campaigns(session)
    await ensure_demo_campaigns(session)

    reports = (
        await session.scalars(sa.select(Report).where(col(Report.campaign_id) == old.id))
    ).all()
    assert [r.version for r in reports] == [1]
    assert reports[0].content["campaign"]["code"] == "TQ-SIPAS-2019"
