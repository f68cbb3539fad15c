"""Migration 0011c on a database that already holds forms: the campaigns that had roll-ups get
the new ones, counted from their forms; downgrade restores the tables of 0008."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.db import create_database, drop_database, ensure_database, session_scope
from app.models.campaign import CampaignState
from app.schema import alembic_config
from app.services import instrument
from app.services.index import rollups
from tests.api.test_index_rollups import forms
from tests.conftest import in_thread, make_settings
from tests.factories import TEST_DEFINITION, make_agency, make_campaign, make_questionnaire


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
            assert await rollups.discrepancies(session, campaign_id) == []
            source = await rollups.load(session, campaign_id, "item:R.GENDER", False)
            assert source is not None
            # the compatibility view shows the per-agency counts as 0008's table did
            shown = await session.scalar(
                text("SELECT n FROM index_rollups WHERE campaign_id = :c AND kind = 'respondents'"),
                {"c": campaign_id},
            )
            assert shown == valid
        in_thread(command.downgrade, cfg, "0010q")
        async with session_scope(db) as session:
            # 0008's table again, and the campaign left for `sipas migrate` to install anew
            assert await session.scalar(text("SELECT count(*) FROM index_rollups")) == 0
            assert await session.scalar(text("SELECT count(*) FROM index_rollup_states")) == 0
        in_thread(command.upgrade, cfg, "head")
    finally:
        await db.dispose()
