"""Migrations 0011c and 0013f on a database that already holds forms: the campaigns that had
roll-ups get the new ones, counted from their forms; downgrade restores the tables of 0008."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database, create_database, drop_database, ensure_database, session_scope
from app.models.agency import Agency
from app.models.campaign import Campaign, CampaignState
from app.schema import alembic_config
from app.services import instrument
from app.services.index import rollups
from tests.conftest import in_thread, make_settings
from tests.factories import TEST_DEFINITION, make_agency, make_campaign, make_questionnaire
from tests.helpers.horizon import settled
from tests.helpers.rollup_world import forms


@pytest.fixture
async def scratch(database_url: str) -> AsyncIterator[str]:
    name = f"{make_url(database_url).database}_cells"
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    await drop_database(url)
    await ensure_database(url)
    yield url
    await drop_database(url)


async def test_upgrade_recounts_installed_campaigns_and_downgrade_restores(scratch: str) -> None:
    cfg = alembic_config(scratch)
    cfg.attributes["configure_logger"] = False
    in_thread(command.upgrade, cfg, "0010q")
    db = create_database(scratch, make_settings(scratch))
    try:
        async with session_scope(db) as session:
            agency = await make_agency(session)
            q = await make_questionnaire(session)
            campaign = await make_campaign(
                session, agencies=[agency], questionnaire=q, state=CampaignState.open
            )
            campaign_id = campaign.id
            # installed under 0008: a state row (the old triggers count from here on)
            await session.execute(
                text("INSERT INTO index_rollup_states (campaign_id) VALUES (:c)"),
                {"c": campaign_id},
            )
            parsed = instrument.Questionnaire.model_validate(TEST_DEFINITION)
            session.add_all(forms(campaign, parsed, [agency], random.Random(11), 60))
        in_thread(command.upgrade, cfg, "0011c")
        async with session_scope(db) as session:
            valid = await session.scalar(
                text("SELECT count(*) FROM submissions WHERE state = 'valid'")
            )
            counted = await session.scalar(
                text("SELECT sum(n) FROM index_cells WHERE campaign_id = :c AND facet = ''"),
                {"c": campaign_id},
            )
            assert valid
            assert counted == valid
            # the compatibility view shows the per-agency counts as 0008's table did
            assert await _shown(session, campaign_id) == valid
        await _folding_after_commit(db, cfg, campaign_id, parsed, agency)
        in_thread(command.downgrade, cfg, "0010q")
        async with session_scope(db) as session:
            # 0008's table again, and the campaign left for `sipas migrate` to install anew
            assert await session.scalar(text("SELECT count(*) FROM index_rollups")) == 0
            assert await session.scalar(text("SELECT count(*) FROM index_rollup_states")) == 0
        in_thread(command.upgrade, cfg, "head")
    finally:
        await db.dispose()


async def _shown(session: AsyncSession, campaign_id: uuid.UUID) -> object:
    return await session.scalar(
        text("SELECT n FROM index_rollups WHERE campaign_id = :c AND kind = 'respondents'"),
        {"c": campaign_id},
    )


async def _cells(session: AsyncSession, campaign_id: uuid.UUID) -> object:
    return await session.scalar(
        text("SELECT sum(n) FROM index_cells WHERE campaign_id = :c AND facet = ''"),
        {"c": campaign_id},
    )


async def _valid(session: AsyncSession) -> object:
    return await session.scalar(text("SELECT count(*) FROM submissions WHERE state = 'valid'"))


async def _folding_after_commit(
    db: Database,
    cfg: Config,
    campaign_id: uuid.UUID,
    parsed: instrument.Questionnaire,
    agency: Agency,
) -> None:
    """0013f: its upgrade recounts below the horizon, new forms wait in the tail until a fold,
    and its downgrade puts the insert trigger back and recounts."""
    rng = random.Random(12)
    campaign = await db_campaign(db, campaign_id)
    await settled(db.engine)  # every transaction older than the forms has ended
    in_thread(command.upgrade, cfg, "0013f")
    async with session_scope(db) as session:
        valid = await _valid(session)
        assert await _cells(session, campaign_id) == valid  # the recount, below the horizon
        assert await rollups.discrepancies(session, campaign_id) == []
        assert await rollups.load(session, campaign_id, "item:R.GENDER", False) is not None
        session.add_all(forms(campaign, parsed, [agency], rng, 30))
    async with session_scope(db) as session:
        more = await _valid(session)
        assert more != valid
        assert await _cells(session, campaign_id) == valid  # no trigger: the cells wait
        assert await _shown(session, campaign_id) == more  # reads add the tail
        assert await rollups.discrepancies(session, campaign_id) == []
    await settled(db.engine)
    async with session_scope(db) as session:
        assert await rollups.fold_all(session, most=None) == 30
    async with session_scope(db) as session:
        assert await _cells(session, campaign_id) == more
        assert await rollups.discrepancies(session, campaign_id) == []
    in_thread(command.downgrade, cfg, "0012e")
    async with session_scope(db) as session:
        session.add_all(forms(campaign, parsed, [agency], rng, 10))
    async with session_scope(db) as session:
        # the insert trigger counts again, in the writing transaction
        assert await _cells(session, campaign_id) == await _valid(session)
        assert await _shown(session, campaign_id) == await _valid(session)


async def db_campaign(db: Database, campaign_id: uuid.UUID) -> Campaign:
    async with session_scope(db) as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        session.expunge(campaign)
        return campaign
