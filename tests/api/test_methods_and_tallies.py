"""GET /methods documents every number; aggregate tallies that cannot be real are refused."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models.campaign import CampaignState
from app.models.identity import Role
from app.services.index.formulas import display
from app.services.questionnaires import ensure_builtins
from tests.factories import bearer, make_agency, make_campaign, make_user
from tests.helpers.problems import assert_problem


async def test_methods_list_formulas_weights_and_thresholds(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await ensure_builtins(session)
    reader = bearer(settings, await make_user(session, Role.supervisor))
    response = await client.get("/api/v1/methods", headers=reader)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"criterion_index", "intervals", "small_cells", "ranking"} <= set(body["formulas"])
    sipas = next(v for v in body["versions"] if v["code"] == "sipas-2017")
    assert [e["weight"] for e in sipas["elements"]] == [0.2] * 5
    assert sum(len(e["criteria"]) for e in sipas["elements"]) == 22
    assert sipas["positive_sets"]["E1.C1"] == ["4", "5"]
    assert sipas["thresholds"] == {"low_reliability_below": 30, "suppress_below": 5}
    sipas_2023 = next(v for v in body["versions"] if v["code"] == "sipas-2023")
    assert [p["weight"] for p in sipas_2023["pillars"]] == [0.5, 0.5]
    dossier = next(v for v in body["versions"] if v["code"] == "dossier-rating-2018")
    assert {b["code"] for b in dossier["dossier_bands"]} == {
        "xuat_sac",
        "tot",
        "kha",
        "trung_binh",
        "yeu",
    }


@pytest.fixture
async def setup(session: AsyncSession, settings: Settings) -> tuple[str, str, dict[str, str]]:
    agency = await make_agency(session, name="Sở Tài nguyên và Môi trường")
    campaign = await make_campaign(session, agencies=[agency], state=CampaignState.open)
    admin = bearer(settings, await make_user(session, Role.admin))
    return str(campaign.id), agency.code, admin


async def test_the_31_form_tally(
    client: httpx.AsyncClient, setup: tuple[str, str, dict[str, str]]
) -> None:
    campaign_id, agency_code, admin = setup
    response = await client.post(
        f"/api/v1/campaigns/{campaign_id}/tallies",
        json={
            "agency_code": agency_code,
            "forms_returned": 31,
            "counts": {"E1.C1": {"5": 10, "4": 16, "3": 5}},
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    value = response.json()["criteria"]["E1.C1"]
    assert value == pytest.approx(2600 / 31)  # 100 · 26 / 31
    assert str(display(value)) == "83.87"


@pytest.mark.parametrize(
    ("forms", "counts", "pointer", "code"),
    [
        (4215, {"E1.C1": {"5": 2000, "4": 2000, "3": 350}}, "/body/counts/E1.C1", "exceeds_forms"),
        (10, {"E9.C9": {"5": 1}}, "/body/counts/E9.C9", "unknown_item"),
        (10, {"E1.C1": {"7": 1}}, "/body/counts/E1.C1/7", "unknown_option"),
        (10, {"E1.C1": {"5": -1}}, "/body/counts/E1.C1/5", "out_of_range"),
    ],
)
async def test_impossible_tallies_are_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    setup: tuple[str, str, dict[str, str]],
    forms: int,
    counts: dict[str, dict[str, int]],
    pointer: str,
    code: str,
) -> None:
    campaign_id, agency_code, admin = setup
    response = await client.post(
        f"/api/v1/campaigns/{campaign_id}/tallies",
        json={"agency_code": agency_code, "forms_returned": forms, "counts": counts},
        headers=admin,
    )
    body = assert_problem(response, 422, "invalid")
    errors = body["errors"]
    assert isinstance(errors, list)
    assert {"pointer": pointer, "code": code} in [
        {"pointer": e["pointer"], "code": e["code"]} for e in errors
    ]
    stored = await session.scalar(
        sa.text("SELECT count(*) FROM tallies WHERE campaign_id = :c"), {"c": campaign_id}
    )
    assert stored == 0
