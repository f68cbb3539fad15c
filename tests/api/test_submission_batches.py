"""A batch answers each form as the single call would: the agencies it names are read in one
statement, and the columns its forms share are bound once, with the same rows, events and
errors as one form at a time."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.agency import Agency
from app.models.audit import AuditEvent
from app.models.campaign import Campaign, CampaignState, Stratum
from app.models.catalogue import Procedure
from app.models.event import Event
from app.models.identity import Scope
from app.models.submission import Submission
from app.services.submissions import Prepared
from app.services.submissions.writes import _COLUMNS, _batch_params
from tests.factories import (
    bearer,
    make_agency,
    make_builtin_questionnaire,
    make_campaign,
    make_client,
    make_procedure,
    make_sector,
)


@dataclass
class World:
    district: Agency
    town: Agency  # with a stratum for one sector and one for the rest
    outside: Agency
    procedure: Procedure  # in the town's sector stratum's sector
    campaign: Campaign
    town_strata: tuple[uuid.UUID, uuid.UUID]  # (the sector's, the rest's)
    district_stratum: uuid.UUID
    kiosk: dict[str, str]

    def url(self, suffix: str = "") -> str:
        return f"/api/v1/campaigns/{self.campaign.id}/submissions{suffix}"


@pytest.fixture
async def world(session: AsyncSession, settings: Settings) -> World:
    """A campaign on the SIPAS 2017 questionnaire (which asks S.AGENCY), with strata."""
    questionnaire = await make_builtin_questionnaire(session, "sipas-2017")
    province = await make_agency(session, level="province")
    district = await make_agency(session, parent=province, level="district")
    town = await make_agency(session, parent=province, level="district")
    outside = await make_agency(session, level="province")
    sector = await make_sector(session)
    procedure = await make_procedure(session, sector)
    campaign = await make_campaign(
        session, agencies=[province], state=CampaignState.open, questionnaire=questionnaire
    )
    strata = [
        Stratum(campaign_id=campaign.id, agency_id=district.id, frame_size=10),
        Stratum(campaign_id=campaign.id, agency_id=town.id, sector_id=sector.id, frame_size=10),
        Stratum(campaign_id=campaign.id, agency_id=town.id, frame_size=10),
    ]
    session.add_all(strata)
    kiosk, _ = await make_client(session, [Scope.submissions_write])
    await session.flush()
    return World(
        district,
        town,
        outside,
        procedure,
        campaign,
        (strata[1].id, strata[2].id),
        strata[0].id,
        bearer(settings, kiosk),
    )


def form(answers: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "submission_id": str(uuid.uuid4()),
        "channel": "kiosk",
        "answers": {"E1.C1": 5, **(answers or {})},
        **fields,
    }


async def rows(session: AsyncSession, keys: list[str]) -> dict[str, Submission]:
    found = (
        await session.scalars(
            sa.select(Submission).where(
                col(Submission.client_submission_id).in_([uuid.UUID(k) for k in keys])
            )
        )
    ).all()
    return {str(r.client_submission_id): r for r in found}


def rebased(errors: list[dict[str, Any]], index: int) -> list[tuple[str, str]]:
    """A single call's errors as the batch names them for item `index`."""
    item = f"/body/submissions/{index}"
    return [(item + e["pointer"].removeprefix("/body"), e["code"]) for e in errors]


async def test_a_batch_finds_each_agency_it_names_as_single_forms_do(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    forms = [
        form(agency_code=world.district.code),
        # Named only by its answer, with a procedure of the sector that has a stratum of its own.
        form({"S.AGENCY": world.town.code}, procedure_code=world.procedure.code),
        form(agency_code=world.town.code),
        form(agency_code="NO-SUCH-AGENCY"),
        form(agency_code=world.outside.code),
        form({"S.AGENCY": "NO-SUCH-EITHER"}),
        form({"S.AGENCY": world.district.code}, agency_code=world.district.code),
    ]
    batch = await client.post(world.url("/batch"), json={"submissions": forms}, headers=world.kiosk)
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["status"] for r in results] == [
        "created",
        "created",
        "created",
        "error",
        "error",
        "error",
        "created",
    ]
    stored = await rows(session, [f["submission_id"] for f in forms])
    sector_stratum, other_stratum = world.town_strata
    expected = {
        0: (world.district.id, world.district_stratum),
        1: (world.town.id, sector_stratum),
        2: (world.town.id, other_stratum),
        6: (world.district.id, world.district_stratum),
    }
    for i, (agency_id, stratum_id) in expected.items():
        row = stored[forms[i]["submission_id"]]
        assert (row.agency_id, row.stratum_id) == (agency_id, stratum_id), i

    # The same forms one at a time (fresh ids): the same rows, the same errors.
    for i, sent in enumerate(forms):
        again = {**sent, "submission_id": str(uuid.uuid4())}
        single = await client.post(world.url(), json=again, headers=world.kiosk)
        if i in expected:
            assert single.status_code == 201, single.text
            row = (await rows(session, [again["submission_id"]]))[again["submission_id"]]
            assert (row.agency_id, row.stratum_id) == expected[i], i
        else:
            assert single.status_code == 422, single.text
            batch_errors = [(e["pointer"], e["code"]) for e in results[i]["errors"]]
            assert batch_errors == rebased(single.json()["errors"], i), i
    assert [(e["pointer"], e["code"]) for e in results[3]["errors"]] == [
        ("/body/submissions/3/agency_code", "unknown")
    ]
    assert [(e["pointer"], e["code"]) for e in results[5]["errors"]] == [
        ("/body/submissions/5/answers/S.AGENCY", "unknown")
    ]


async def test_columns_shared_by_a_batch_or_not_are_stored_per_form(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    when = datetime.now(UTC) - timedelta(hours=2)
    shared = [form(agency_code=world.district.code, device_id="kiosk-1") for _ in range(3)]
    mixed = [
        form(agency_code=world.district.code, device_id="a", respondent_type="individual"),
        form(
            {"R.TYPE": "organisation"},
            agency_code=world.town.code,
            channel="web",
            received_at=when.isoformat(),
        ),
        form(agency_code=world.town.code, device_id="b", procedure_code=world.procedure.code),
    ]
    single = [form(agency_code=world.town.code, device_id="alone")]
    for forms in (shared, mixed, single):
        response = await client.post(
            world.url("/batch"), json={"submissions": forms}, headers=world.kiosk
        )
        assert response.status_code == 200, response.text
        assert response.json()["created"] == len(forms)

    sent = shared + mixed + single
    stored = await rows(session, [f["submission_id"] for f in sent])
    assert len(stored) == len(sent)
    for f in sent:
        row = stored[f["submission_id"]]
        assert row.campaign_id == world.campaign.id
        assert row.device_id == f.get("device_id")
        assert row.channel == f["channel"]
        expected_type = f.get("respondent_type") or f["answers"].get("R.TYPE")
        assert row.respondent_type == expected_type
        assert row.answers["E1.C1"] == 5
        assert row.procedure_id == (world.procedure.id if "procedure_code" in f else None)
    assert stored[mixed[1]["submission_id"]].received_at == when
    assert stored[mixed[0]["submission_id"]].received_at > when

    # One submission.accepted event per form, telling its own row.
    events = (
        await session.scalars(
            sa.select(Event).where(
                col(Event.type) == "submission.accepted",
                col(Event.campaign_id) == world.campaign.id,
            )
        )
    ).all()
    told = {e.payload["submission_id"]: e.payload for e in events}
    assert set(told) == {f["submission_id"] for f in sent}
    for f in sent:
        row = stored[f["submission_id"]]
        assert told[f["submission_id"]]["id"] == str(row.id)
        assert told[f["submission_id"]]["channel"] == row.channel
        assert told[f["submission_id"]]["agency_id"] == str(row.agency_id)


async def test_a_batch_writes_one_audit_event_naming_the_forms_it_made(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    """One event per batch that made forms (in the batch's own statement): how many, and their
    row ids in text order."""
    made = [form(agency_code=world.district.code) for _ in range(5)]
    refused = form(agency_code="NO-SUCH-AGENCY")
    response = await client.post(
        world.url("/batch"), json={"submissions": [*made, refused]}, headers=world.kiosk
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 5
    ids = sorted(
        str(r.id) for r in (await rows(session, [f["submission_id"] for f in made])).values()
    )
    events = (
        await session.scalars(
            sa.select(AuditEvent).where(
                col(AuditEvent.action) == "submission.batch",
                col(AuditEvent.object_id) == str(world.campaign.id),
            )
        )
    ).all()
    assert len(events) == 1
    event = events[0]
    assert event.summary == {"created": 5, "ids": ids}
    assert (event.object_type, event.object_id) == ("campaign", str(world.campaign.id))
    assert event.request_id == response.headers["x-request-id"]
    assert event.actor_type == "client"


def _prepared(**values: Any) -> Prepared:
    """A checked form with these columns, every other one null."""
    key = uuid.uuid4()
    row = {name: None for name, _ in _COLUMNS} | {"client_submission_id": key, **values}
    return Prepared(key, "h", row, None)


def test_only_values_every_form_shares_are_bound_once() -> None:
    campaign, agencies = uuid.uuid4(), [uuid.uuid4(), uuid.uuid4()]
    forms = [
        _prepared(campaign_id=campaign, agency_id=agencies[i % 2], state="valid") for i in range(4)
    ]
    statement, params = _batch_params(forms)
    assert params["campaign_id"] == campaign
    assert params["device_id"] is None
    assert params["state"] == "valid"
    assert params["agency_id"] == [agencies[0], agencies[1], agencies[0], agencies[1]]
    assert params["client_submission_id"] == [p.key for p in forms]
    assert "CAST(:campaign_id AS uuid)" in statement.text
    assert "CAST(:agency_id AS uuid[])" in statement.text

    # One form: every column but its key is one value; the key stays an array to unnest.
    statement, params = _batch_params(forms[:1])
    assert params["client_submission_id"] == [forms[0].key]
    assert params["agency_id"] == agencies[0]
    assert "CAST(:client_submission_id AS uuid[])" in statement.text
