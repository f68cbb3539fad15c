"""The demo shows field quality: auto review, flagged forms, a re-check in progress, and a
campaign behind schedule."""

from __future__ import annotations

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.campaign import Campaign
from app.models.identity import Role
from app.models.submission import Submission
from app.services import instrument
from app.services.demo_campaigns import ensure_demo_campaigns
from app.services.quality.demo import FIELDWORK_CODE
from app.services.seed import load_demo_catalogue
from tests.factories import bearer, make_user


async def test_the_demo_shows_flags_a_recheck_in_progress_and_a_campaign_behind(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await load_demo_catalogue(session)
    created = await ensure_demo_campaigns(session)
    assert created[FIELDWORK_CODE] > 0
    assert await ensure_demo_campaigns(session) == {}  # idempotent
    campaigns = {
        c.code: c
        for c in (
            await session.scalars(
                sa.select(Campaign).where(col(Campaign.code).in_(["TQ-SIPAS-2020", FIELDWORK_CODE]))
            )
        ).all()
    }
    assert campaigns["TQ-SIPAS-2020"].quality == {"review_policy": "auto"}
    fieldwork = campaigns[FIELDWORK_CODE]
    forms = (
        await session.scalars(
            sa.select(Submission).where(col(Submission.campaign_id) == fieldwork.id)
        )
    ).all()
    assert len(forms) == created[FIELDWORK_CODE]
    q = instrument.load_builtin("sipas-2017")
    assert [p for f in forms for p in instrument.validate_answers(q, f.answers)] == []
    flagged = [f for f in forms if f.flags]
    assert flagged, "some forms are flagged"
    assert all(f.state == "received" for f in flagged)
    assert all(f.state == "valid" for f in forms if not f.flags)  # auto review
    rules = {rule for f in flagged for rule in f.flags}
    assert {"straight_lining", "contradiction"} <= rules

    supervisor = bearer(settings, await make_user(session, Role.supervisor))
    base = f"/api/v1/campaigns/{fieldwork.id}"
    summary = (await client.get(f"{base}/rechecks/summary", headers=supervisor)).json()
    assert summary["done"] > 0
    assert summary["pending"] > 0  # in progress
    schedule = (await client.get(f"{base}/schedule", headers=supervisor)).json()
    assert schedule["behind_schedule"] is True
    assert schedule["received"] < schedule["target"]
    flags = (await client.get(f"{base}/flags", headers=supervisor)).json()
    assert sum(by_state.get("received", 0) for by_state in flags.values()) >= len(flagged)
