"""One source of truth for a form's agency and respondent type: the answers S.AGENCY and R.TYPE
and the fields agency_code and respondent_type are said once, or agree."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models.agency import Agency
from app.models.campaign import Campaign, CampaignState
from app.models.catalogue import Procedure
from app.models.identity import Scope
from app.models.submission import Submission
from tests.factories import (
    bearer,
    invitation_token,
    make_agency,
    make_builtin_questionnaire,
    make_campaign,
    make_client,
    make_invitation,
    make_procedure,
    make_sector,
    stored_form,
)
from tests.helpers.problems import assert_problem, error_codes


@dataclass
class World:
    province: Agency
    district: Agency
    procedure: Procedure
    campaign: Campaign
    kiosk: dict[str, str]

    def url(self, suffix: str = "") -> str:
        return f"/api/v1/campaigns/{self.campaign.id}/submissions{suffix}"


@pytest.fixture
async def world(session: AsyncSession, settings: Settings) -> World:
    """A campaign on the SIPAS 2017 questionnaire, which asks S.AGENCY and R.TYPE."""
    questionnaire = await make_builtin_questionnaire(session, "sipas-2017")
    province = await make_agency(session, level="province")
    district = await make_agency(session, parent=province, level="district")
    procedure = await make_procedure(session, await make_sector(session))
    campaign = await make_campaign(
        session, agencies=[province], state=CampaignState.open, questionnaire=questionnaire
    )
    kiosk, _ = await make_client(session, [Scope.submissions_write])
    return World(province, district, procedure, campaign, bearer(settings, kiosk))


def form(w: World, answers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "submission_id": str(uuid.uuid4()),
        "channel": "kiosk",
        "answers": {"E1.C1": 5, **answers},
        **fields,
    }


async def stored(session: AsyncSession, response: httpx.Response) -> Submission:
    assert response.status_code == 201, response.text
    row = await stored_form(session, response.json()["id"])
    assert row is not None
    return row


async def test_the_field_is_taken_from_the_answer_when_only_the_answer_is_given(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    body = form(world, {"S.AGENCY": world.district.code, "R.TYPE": "organisation"})
    row = await stored(session, await client.post(world.url(), json=body, headers=world.kiosk))
    assert row.agency_id == world.district.id
    assert row.respondent_type == "organisation"
    assert row.answers["S.AGENCY"] == world.district.code


async def test_the_answer_is_taken_from_the_field_when_only_the_field_is_given(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    body = form(
        world, {"R.TYPE": None}, agency_code=world.district.code, respondent_type="individual"
    )
    row = await stored(session, await client.post(world.url(), json=body, headers=world.kiosk))
    assert row.agency_id == world.district.id
    assert (row.answers["S.AGENCY"], row.answers["R.TYPE"]) == (world.district.code, "individual")
    assert row.respondent_type == "individual"
    # a retry of the same body is the same form, though the stored answers were filled in
    again = await client.post(world.url(), json=body, headers=world.kiosk)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"


async def test_a_field_and_an_answer_that_disagree_are_both_named(
    client: httpx.AsyncClient, world: World
) -> None:
    body = form(
        world,
        {"S.AGENCY": world.province.code, "R.TYPE": "organisation"},
        agency_code=world.district.code,
        respondent_type="individual",
    )
    response = await client.post(world.url(), json=body, headers=world.kiosk)
    problem = assert_problem(response, 422, "invalid")
    assert sorted(error_codes(problem)) == [
        ("/body/agency_code", "mismatch"),
        ("/body/answers/R.TYPE", "mismatch"),
        ("/body/answers/S.AGENCY", "mismatch"),
        ("/body/respondent_type", "mismatch"),
    ]


async def test_in_a_batch_the_disagreement_is_the_item_s_own_error(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    good = form(world, {"S.AGENCY": world.district.code})
    bad = form(world, {"R.TYPE": "organisation"}, respondent_type="individual")
    bad["agency_code"] = world.district.code
    response = await client.post(
        world.url("/batch"), json={"submissions": [bad, good]}, headers=world.kiosk
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["error", "created"]
    assert sorted((e["pointer"], e["code"]) for e in results[0]["errors"]) == [
        ("/body/submissions/0/answers/R.TYPE", "mismatch"),
        ("/body/submissions/0/respondent_type", "mismatch"),
    ]


async def test_an_unknown_agency_in_the_answer_is_named_at_the_answer(
    client: httpx.AsyncClient, world: World
) -> None:
    body = form(world, {"S.AGENCY": "NO.SUCH"})
    response = await client.post(world.url(), json=body, headers=world.kiosk)
    problem = assert_problem(response, 422, "invalid")
    assert error_codes(problem) == [("/body/answers/S.AGENCY", "unknown")]


async def test_with_an_invitation_the_answer_must_name_the_invited_agency(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    invitation = await make_invitation(session, world.campaign, world.district, world.procedure)
    token = invitation_token(settings, invitation)
    wrong = form(world, {"S.AGENCY": world.province.code}, invitation=token)
    problem = assert_problem(
        await client.post(world.url(), json=wrong, headers=world.kiosk), 422, "invalid"
    )
    assert sorted(error_codes(problem)) == [
        ("/body/answers/S.AGENCY", "mismatch"),
        ("/body/invitation", "mismatch"),
    ]
    right = form(world, {}, invitation=token)
    row = await stored(session, await client.post(world.url(), json=right, headers=world.kiosk))
    assert row.answers["S.AGENCY"] == world.district.code  # filled in from the invitation


@pytest.mark.parametrize(
    "answers",
    [
        {"S.AGENCY": 7, "R.TYPE": ["individual"]},
        {"S.AGENCY": ["X"], "R.TYPE": {"a": 1}},
        {"S.AGENCY": None, "R.TYPE": 3},
    ],
)
async def test_answers_of_the_wrong_type_are_errors_on_them_not_500s(
    client: httpx.AsyncClient, world: World, answers: dict[str, Any]
) -> None:
    response = await client.post(world.url(), json=form(world, answers), headers=world.kiosk)
    problem = assert_problem(response, 422, "invalid")
    pointers = {pointer for pointer, _ in error_codes(problem)}
    assert pointers & {"/body/answers/S.AGENCY", "/body/answers/R.TYPE"}
