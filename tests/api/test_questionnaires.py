"""Questionnaire versions: built-ins, validation on create, the freeze once a campaign opens."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.campaign import CampaignState
from app.models.identity import Role
from app.models.questionnaire import Questionnaire
from app.services.instrument.parsing import PARSED
from app.services.questionnaires import ensure_builtins
from tests.factories import TEST_DEFINITION, bearer, make_agency, make_campaign, make_user, unique
from tests.helpers.problems import assert_problem


def definition(code: str, **changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(TEST_DEFINITION)
    d["code"] = code
    d.update(changes)
    return d


async def test_builtins_are_installed_once_and_render_completely(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    first = await ensure_builtins(session)
    assert await ensure_builtins(session) == []
    rows = (
        await session.scalars(sa.select(Questionnaire).where(col(Questionnaire.is_builtin)))
    ).all()
    assert {r.code for r in rows} >= {"sipas-2017", "sipas-2023", "dossier-rating-2018"}
    assert set(first) <= {"sipas-2017", "sipas-2023", "dossier-rating-2018"}
    sipas = next(r for r in rows if r.code == "sipas-2017")
    surveyor = bearer(settings, await make_user(session, Role.surveyor))
    response = await client.get(f"/api/v1/questionnaires/{sipas.id}", headers=surveyor)
    assert response.status_code == 200, response.text
    body = response.json()
    items = [i for s in body["definition"]["sections"] for i in s["items"]]
    criteria = [i for i in items if i["role"] == "criterion"]
    assert len(criteria) == 22
    assert next(i for i in criteria if i["id"] == "E1.C1")["label_vi"] == "Chỗ ngồi chờ"
    assert {e["id"] for e in body["definition"]["elements"]} == {"E1", "E2", "E3", "E4", "E5"}
    again = await client.get(
        f"/api/v1/questionnaires/{sipas.id}",
        headers={**surveyor, "If-None-Match": response.headers["etag"]},
    )
    assert again.status_code == 304


async def test_create_assigns_versions_and_validates(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    code = unique("custom-")
    first = await client.post(
        "/api/v1/questionnaires", json={"definition": definition(code)}, headers=admin
    )
    assert first.status_code == 201, first.text
    assert (first.json()["code"], first.json()["version"]) == (code, 1)
    second = await client.post(
        "/api/v1/questionnaires", json={"definition": definition(code)}, headers=admin
    )
    assert second.json()["version"] == 2
    listed = await client.get("/api/v1/questionnaires", params={"code": code}, headers=admin)
    assert [q["version"] for q in listed.json()["items"]] == [1, 2]


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        (
            {
                "elements": [
                    {"id": "E1", "label_vi": "A", "weight": 0.5},
                    {"id": "E2", "label_vi": "B", "weight": 0.4},
                ]
            },
            "/body/definition/elements",
        ),
        ({"sections": []}, "/body/definition"),
        ({"title_vi": ""}, "/body/definition/title_vi"),
    ],
)
async def test_invalid_definitions_are_422_with_pointers(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: dict[str, str],
    change: dict[str, Any],
    pointer: str,
) -> None:
    code = unique("bad-")
    response = await client.post(
        "/api/v1/questionnaires", json={"definition": definition(code, **change)}, headers=admin
    )
    body = assert_problem(response, 422, "invalid")
    errors = body["errors"]
    assert isinstance(errors, list)
    assert any(e["pointer"].startswith(pointer) for e in errors), errors
    stored = await session.scalar(
        sa.select(sa.func.count()).select_from(Questionnaire).where(col(Questionnaire.code) == code)
    )
    assert stored == 0


async def test_a_version_cannot_change_once_a_campaign_opened_on_it(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    created = await client.post(
        "/api/v1/questionnaires", json={"definition": definition(unique("q-"))}, headers=admin
    )
    qid = created.json()["id"]
    renamed = definition(created.json()["code"], title_vi="Phiếu sửa đổi")
    ok = await client.put(
        f"/api/v1/questionnaires/{qid}", json={"definition": renamed}, headers=admin
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["title_vi"] == "Phiếu sửa đổi"
    q = await session.get(Questionnaire, ok.json()["id"])
    assert q is not None
    campaign = await make_campaign(session, agencies=[await make_agency(session)], questionnaire=q)
    opened = await client.post(
        f"/api/v1/campaigns/{campaign.id}/transition", json={"to": "open"}, headers=admin
    )
    assert opened.json()["state"] == CampaignState.open
    frozen = await client.put(
        f"/api/v1/questionnaires/{qid}", json={"definition": renamed}, headers=admin
    )
    assert_problem(frozen, 409, "questionnaire_frozen")


async def test_a_draft_reads_as_replaced_and_a_frozen_version_as_it_froze(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    """A draft's parse is never kept (its definition can change); a frozen one's is."""
    created = await client.post(
        "/api/v1/questionnaires", json={"definition": definition(unique("q-"))}, headers=admin
    )
    qid = created.json()["id"]
    shown = await client.get(f"/api/v1/questionnaires/{qid}", headers=admin)
    assert shown.json()["definition"]["title_vi"] == TEST_DEFINITION["title_vi"]
    renamed = definition(created.json()["code"], title_vi="Phiếu sửa đổi")
    replaced = await client.put(
        f"/api/v1/questionnaires/{qid}", json={"definition": renamed}, headers=admin
    )
    assert replaced.status_code == 200, replaced.text
    shown = await client.get(f"/api/v1/questionnaires/{qid}", headers=admin)
    assert shown.json()["definition"]["title_vi"] == "Phiếu sửa đổi"
    q = await session.get(Questionnaire, qid)
    assert q is not None
    campaign = await make_campaign(session, agencies=[await make_agency(session)], questionnaire=q)
    opened = await client.post(
        f"/api/v1/campaigns/{campaign.id}/transition", json={"to": "open"}, headers=admin
    )
    assert opened.json()["state"] == CampaignState.open
    before = PARSED.stats()
    frozen = [await client.get(f"/api/v1/questionnaires/{qid}", headers=admin) for _ in "ab"]
    assert [r.json()["definition"]["title_vi"] for r in frozen] == ["Phiếu sửa đổi"] * 2
    assert PARSED.stats().hits - before.hits >= 1
    assert [key for key in PARSED if key[0] == "frozen" and key[1] == q.id]


async def test_builtins_cannot_be_replaced(
    client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str]
) -> None:
    await ensure_builtins(session)
    builtin = await session.scalar(
        sa.select(Questionnaire).where(col(Questionnaire.code) == "sipas-2017")
    )
    assert builtin is not None
    response = await client.put(
        f"/api/v1/questionnaires/{builtin.id}",
        json={"definition": definition("sipas-2017")},
        headers=admin,
    )
    assert_problem(response, 409, "questionnaire_frozen")


# The 5-level scale as the method writes it (1 = worst), with the English of the API.
SATISFACTION5 = [
    {"code": 1, "label_vi": "Rất không hài lòng", "label_en": "Very dissatisfied"},
    {"code": 2, "label_vi": "Không hài lòng", "label_en": "Dissatisfied"},
    {"code": 3, "label_vi": "Bình thường", "label_en": "Neutral"},
    {"code": 4, "label_vi": "Hài lòng", "label_en": "Satisfied"},
    {"code": 5, "label_vi": "Rất hài lòng", "label_en": "Very satisfied"},
]
WITHOUT_OPTIONS = {"free_text", "integer", "reference"}


@pytest.mark.parametrize("code", ["sipas-2017", "sipas-2023", "dossier-rating-2018"])
async def test_every_item_carries_its_labelled_options(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, code: str
) -> None:
    await ensure_builtins(session)
    row = await session.scalar(
        sa.select(Questionnaire).where(
            col(Questionnaire.code) == code, col(Questionnaire.is_builtin)
        )
    )
    assert row is not None
    surveyor = bearer(settings, await make_user(session, Role.surveyor))
    response = await client.get(f"/api/v1/questionnaires/{row.id}", headers=surveyor)
    assert response.status_code == 200, response.text
    items = [i for s in response.json()["definition"]["sections"] for i in s["items"]]
    for item in items:
        options = item["options"]
        if item["type"] in WITHOUT_OPTIONS:
            assert options == [], item["id"]
            continue
        assert options, item["id"]
        for option in options:
            assert option["label_vi"], (item["id"], option)
            assert option["label_en"], (item["id"], option)
        if item["type"] == "satisfaction5":
            assert [{k: o[k] for k in ("code", "label_vi", "label_en")} for o in options] == (
                SATISFACTION5
            )
    # The stored definition is untouched: the scales stay implicit there.
    stored = [i for s in row.definition["sections"] for i in s["items"]]
    if code != "dossier-rating-2018":  # its score012 options are written out with their points
        assert any(i["type"] == "satisfaction5" and not i.get("options") for i in stored)


async def test_a_new_version_shows_its_scale_options_and_keeps_its_own(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    d = definition(unique("opts-"))
    items = [i for s in d["sections"] for i in s["items"]]
    scale_item = next(i for i in items if i["type"] == "satisfaction5")
    scale_item.pop("options", None)
    yes_no = {
        "id": "N.OWN",
        "type": "yes_no",
        "role": "perception",
        "label_vi": "Có phải đi lại nhiều lần không?",
        "options": [
            {"code": "yes", "label_vi": "Có, nhiều lần"},
            {"code": "no", "label_vi": "Không", "label_en": "Only once"},
        ],
    }
    d["sections"][-1]["items"].append(yes_no)
    created = await client.post("/api/v1/questionnaires", json={"definition": d}, headers=admin)
    assert created.status_code == 201, created.text
    shown = {i["id"]: i for s in created.json()["definition"]["sections"] for i in s["items"]}
    assert [o["label_en"] for o in shown[scale_item["id"]]["options"]] == [
        o["label_en"] for o in SATISFACTION5
    ]
    # its own Vietnamese wording is kept; a missing English label is the scale's
    assert [(o["label_vi"], o["label_en"]) for o in shown["N.OWN"]["options"]] == [
        ("Có, nhiều lần", "Yes"),
        ("Không", "Only once"),
    ]
