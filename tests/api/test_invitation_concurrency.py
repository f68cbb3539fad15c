"""Hole 1 under real concurrency: one invitation makes one form whatever races (concurrent
batches, a single form against batches, the invitation as the only credential), each request
in its own transaction on its own connection. These tests commit, then clean up."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import Database
from app.models.campaign import CampaignState
from app.models.identity import Scope
from tests.factories import (
    bearer,
    invitation_token,
    make_agency,
    make_campaign,
    make_client,
    make_invitation,
    make_procedure,
    make_sector,
)
from tests.helpers.apps import real_client

ANSWERS = {"E1.C1": 5, "E1.C2": 4, "E2.C1": 4, "R.GENDER": "nam"}


@dataclass
class Committed:
    campaign_id: uuid.UUID
    agency_code: str
    tokens: list[str]
    kiosk: dict[str, str]
    db: Database


@pytest.fixture
async def committed(db: Database, settings: Settings) -> AsyncIterator[Committed]:
    async with AsyncSession(db.engine, expire_on_commit=False) as s:
        agency = await make_agency(s)
        sector = await make_sector(s)
        procedure = await make_procedure(s, sector)
        campaign = await make_campaign(s, agencies=[agency], state=CampaignState.open)
        invitations = [await make_invitation(s, campaign, agency, procedure) for _ in range(4)]
        kiosk, _ = await make_client(s, [Scope.submissions_write])
        await s.commit()
    yield Committed(
        campaign.id,
        agency.code,
        [invitation_token(settings, i) for i in invitations],
        bearer(settings, kiosk),
        db,
    )
    async with db.engine.begin() as conn:
        params = {"c": campaign.id}
        dossiers = sa.text("SELECT dossier_id FROM invitations WHERE campaign_id = :c")
        dossier_ids = list((await conn.execute(dossiers, params)).scalars())
        for statement in (
            "DELETE FROM submissions WHERE campaign_id = :c",
            "DELETE FROM invitations WHERE campaign_id = :c",
            "DELETE FROM strata WHERE campaign_id = :c",
            "DELETE FROM campaign_agencies WHERE campaign_id = :c",
            "DELETE FROM campaigns WHERE id = :c",
        ):
            await conn.execute(sa.text(statement), params)
        await conn.execute(sa.text("DELETE FROM dossiers WHERE id = ANY(:d)"), {"d": dossier_ids})
        for statement, value in (
            ("DELETE FROM questionnaires WHERE id = :v", campaign.questionnaire_id),
            ("DELETE FROM clients WHERE id = :v", kiosk.id),
            ("DELETE FROM procedures WHERE id = :v", procedure.id),
            ("DELETE FROM sectors WHERE id = :v", sector.id),
            ("DELETE FROM agencies WHERE id = :v", agency.id),
        ):
            await conn.execute(sa.text(statement), {"v": value})


def body(w: Committed, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "submission_id": str(uuid.uuid4()),
        "agency_code": w.agency_code,
        "channel": "web",
        "answers": ANSWERS,
    }
    data.update(changes)
    return data


async def forms_per_invitation(db: Database, campaign_id: uuid.UUID) -> dict[str | None, int]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT invitation_id::text, count(*) FROM submissions"
                " WHERE campaign_id = :c GROUP BY 1"
            ),
            {"c": campaign_id},
        )
        return {key: int(n) for key, n in rows.all()}


def _source() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


async def test_hole_1_concurrent_batches_make_one_form_per_invitation(
    committed: Committed, settings: Settings
) -> None:
    """Eight batches race, each naming all four invitations (in different orders, twice each)
    beside a plain form: every invitation makes exactly one form, the plain forms are all kept,
    and no batch deadlocks or fails as a whole."""
    w = committed
    url = f"/api/v1/campaigns/{w.campaign_id}/submissions/batch"
    batches = []
    for n in range(8):
        tokens = w.tokens[n % 4 :] + w.tokens[: n % 4]
        if n % 2:
            tokens.reverse()
        items = [body(w, invitation=t) for t in tokens + tokens] + [body(w)]
        batches.append({"submissions": items})
    async with real_client(settings, w.db, _source()) as c:
        answers = await asyncio.gather(*(c.post(url, json=b, headers=w.kiosk) for b in batches))
    assert [a.status_code for a in answers] == [200] * 8, [a.text[:300] for a in answers]
    created_invited = sum(
        r["status"] == "created"
        for a in answers
        for r in a.json()["results"][:8]  # the invited items
    )
    refused = [
        r["errors"][0]["code"]
        for a in answers
        for r in a.json()["results"][:8]
        if r["status"] == "error"
    ]
    assert created_invited == 4
    assert set(refused) == {"invitation_used"}
    assert len(refused) == 8 * 8 - 4
    counts = await forms_per_invitation(w.db, w.campaign_id)
    assert counts.pop(None) == 8  # every plain form is kept
    assert sorted(counts.values()) == [1, 1, 1, 1]


async def test_hole_1_single_forms_racing_batches_make_one_form(
    committed: Committed, settings: Settings
) -> None:
    """Single forms (with a bearer token and with the invitation alone) race batches that name
    the same invitation: one form, every other request answered invitation_used."""
    w = committed
    token = w.tokens[0]
    single = f"/api/v1/campaigns/{w.campaign_id}/submissions"
    async with real_client(settings, w.db, _source()) as c:
        calls = []
        for _ in range(6):
            calls.append(c.post(single, json=body(w, invitation=token), headers=w.kiosk))
            calls.append(c.post(single, json=body(w, invitation=token, agency_code=None)))
            calls.append(
                c.post(
                    single + "/batch",
                    json={"submissions": [body(w, invitation=token), body(w)]},
                    headers=w.kiosk,
                )
            )
        answers = await asyncio.gather(*calls)
    made = 0
    for answer in answers:
        if answer.request.url.path.endswith("/batch"):
            assert answer.status_code == 200, answer.text
            first = answer.json()["results"][0]
            if first["status"] == "created":
                made += 1
            else:
                assert first["errors"][0]["code"] == "invitation_used"
        elif answer.status_code == 201:
            made += 1
        else:
            assert answer.status_code == 409, answer.text
            assert answer.json()["code"] == "invitation_used"
    assert made == 1
    counts = await forms_per_invitation(w.db, w.campaign_id)
    assert counts.pop(None) == 6
    assert list(counts.values()) == [1]
