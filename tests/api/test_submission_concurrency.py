"""What needs real, separate transactions: concurrent duplicates, late commits under a cursor,
the shared rate limit, and "201 means committed". These tests commit, then clean up."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import Database, create_database
from app.models.campaign import CampaignState
from app.models.identity import Role, Scope
from app.models.submission import Submission
from tests.conftest import make_settings
from tests.factories import bearer, make_agency, make_campaign, make_client, make_user
from tests.helpers.apps import real_client
from tests.helpers.horizon import settled

ANSWERS = {"E1.C1": 5, "E1.C2": 4, "E2.C1": 4, "R.GENDER": "nam"}


@dataclass
class Committed:
    campaign_id: uuid.UUID
    agency_code: str
    agency_id: uuid.UUID
    kiosk: dict[str, str]
    admin: dict[str, str]
    db: Database


@pytest.fixture
async def committed(db: Database, settings: Settings) -> AsyncIterator[Committed]:
    async with AsyncSession(db.engine, expire_on_commit=False) as s:
        agency = await make_agency(s)
        campaign = await make_campaign(s, agencies=[agency], state=CampaignState.open)
        kiosk, _ = await make_client(s, [Scope.submissions_write])
        admin = await make_user(s, Role.admin)
        await s.commit()
    yield Committed(
        campaign.id, agency.code, agency.id, bearer(settings, kiosk), bearer(settings, admin), db
    )
    async with db.engine.begin() as conn:
        for statement in (
            "DELETE FROM submissions WHERE campaign_id = :c",
            "DELETE FROM strata WHERE campaign_id = :c",
            "DELETE FROM campaign_agencies WHERE campaign_id = :c",
        ):
            await conn.execute(sa.text(statement), {"c": campaign.id})
        await conn.execute(sa.text("DELETE FROM campaigns WHERE id = :c"), {"c": campaign.id})
        await conn.execute(
            sa.text("DELETE FROM questionnaires WHERE id = :q"), {"q": campaign.questionnaire_id}
        )
        await conn.execute(sa.text("DELETE FROM clients WHERE id = :k"), {"k": kiosk.id})
        await conn.execute(sa.text("DELETE FROM users WHERE id = :u"), {"u": admin.id})
        await conn.execute(sa.text("DELETE FROM agencies WHERE id = :a"), {"a": agency.id})


def body(w: Committed, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "submission_id": str(uuid.uuid4()),
        "agency_code": w.agency_code,
        "channel": "web",
        "answers": ANSWERS,
    }
    data.update(changes)
    return data


async def rows(db: Database, campaign_id: uuid.UUID) -> int:
    async with db.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    sa.text("SELECT count(*) FROM submissions WHERE campaign_id = :c"),
                    {"c": campaign_id},
                )
            ).scalar_one()
        )


async def test_concurrent_identical_requests_make_one_row(
    committed: Committed, settings: Settings
) -> None:
    url = f"/api/v1/campaigns/{committed.campaign_id}/submissions"
    form = body(committed)
    async with real_client(settings, committed.db) as c:
        answers = await asyncio.gather(
            *(c.post(url, json=form, headers=committed.kiosk) for _ in range(8))
        )
    assert [r.status_code for r in answers] == [201] * 8, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 7
    assert await rows(committed.db, committed.campaign_id) == 1


async def test_a_201_is_committed_when_it_arrives(committed: Committed, settings: Settings) -> None:
    url = f"/api/v1/campaigns/{committed.campaign_id}/submissions"
    async with real_client(settings, committed.db) as c:
        response = await c.post(url, json=body(committed), headers=committed.kiosk)
    assert response.status_code == 201
    async with committed.db.engine.connect() as conn:  # another connection sees it at once
        found = await conn.execute(
            sa.text("SELECT 1 FROM submissions WHERE id = :i"), {"i": response.json()["id"]}
        )
        assert found.scalar() == 1


async def test_cursor_never_skips_a_form_committed_late(
    committed: Committed, settings: Settings
) -> None:
    """A form whose transaction began first but commits last must still be listed."""

    def row(minute: int) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "campaign_id": committed.campaign_id,
            "client_submission_id": uuid.uuid4(),
            "request_hash": "x",
            "agency_id": committed.agency_id,
            "channel": "web",
            "state": "received",
            "answers": ANSWERS,
            "received_at": datetime(2020, 11, 2, 8, minute, tzinfo=UTC),
        }

    listing: dict[str, str] = {"campaign_id": str(committed.campaign_id), "limit": "100"}
    async with real_client(settings, committed.db) as c, committed.db.engine.connect() as slow:
        slow_tx = await slow.begin()
        await slow.execute(sa.insert(Submission), [row(0)])  # begins first, commits last
        async with committed.db.engine.begin() as fast:
            await fast.execute(sa.insert(Submission), [row(1), row(2)])
        first = await c.get("/api/v1/submissions", params=listing, headers=committed.admin)
        seen = [s["id"] for s in first.json()["items"]]
        cursor = first.json()["next_cursor"]
        assert seen == []  # nothing is settled while an older transaction is still running
        await slow_tx.commit()
        # the listing's horizon is the server's: another xdist worker's open transaction holds it
        await settled(committed.db.engine)
        params = {**listing, "cursor": cursor} if cursor else listing
        second = await c.get("/api/v1/submissions", params=params, headers=committed.admin)
        seen += [s["id"] for s in second.json()["items"]]
        third = await c.get(
            "/api/v1/submissions",
            params={**listing, "cursor": second.json()["next_cursor"]},
            headers=committed.admin,
        )
    assert len(seen) == 3
    assert len(set(seen)) == 3
    assert third.json()["items"] == []


async def test_rate_limit_is_shared_and_answers_429(
    committed: Committed, database_url: str
) -> None:
    tight = make_settings(database_url, client_requests_per_minute=3)
    url = f"/api/v1/campaigns/{committed.campaign_id}/submissions"
    second = datetime.now(UTC).second
    if second >= 50:  # start in a fresh minute window, so all requests count in one window
        await asyncio.sleep(61 - second)
    # Two app instances stand for two worker processes: they share the count in PostgreSQL.
    async with real_client(tight, committed.db) as one, real_client(tight, committed.db) as two:
        statuses = []
        for c in (one, two, one, two, one):
            statuses.append(
                (await c.post(url, json=body(committed), headers=committed.kiosk)).status_code
            )
            if statuses[-1] == 429:
                break
        limited = await two.post(url, json=body(committed), headers=committed.kiosk)
    assert statuses == [201, 201, 201, 429]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["code"] == "rate_limited"


async def test_concurrent_forms_do_not_deadlock_a_small_pool(
    committed: Committed, database_url: str
) -> None:
    """Each form also writes a rate counter beside its own transaction. With both on one pool,
    requests holding every connection while waiting for a second one starved until the pool
    timeout (503s under load); the counter now has a pool of its own."""
    small = make_settings(database_url, db_pool_size=2, db_max_overflow=0, db_pool_timeout=3.0)
    db = create_database(database_url, small)
    url = f"/api/v1/campaigns/{committed.campaign_id}/submissions"
    try:
        async with real_client(small, db) as c:
            answers = await asyncio.gather(
                *(c.post(url, json=body(committed), headers=committed.kiosk) for _ in range(8))
            )
    finally:
        await db.dispose()
    assert [r.status_code for r in answers] == [201] * 8, [r.text[:200] for r in answers]
