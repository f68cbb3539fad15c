"""Improvement plans proposed at publishing, actions by the agency, review by the Department,
and dissemination records; each agency manager writes only for its own subtree."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import date
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.audit import AuditEvent
from app.models.campaign import CampaignState
from app.models.event import Event
from app.models.identity import Role
from app.services.plans import propose_targets
from tests.factories import bearer, make_campaign, make_user
from tests.helpers.problems import assert_problem
from tests.helpers.public_site import Site, build_site

API = "/api/v1"


@pytest.fixture
async def world(session: AsyncSession) -> Site:
    return await build_site(session)


async def _plans(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, dict[str, Any]]:
    got = await client.get(f"{API}/plans", headers=headers, params={"limit": 100, **params})
    assert got.status_code == 200, got.text
    return {f"{p['agency_code']}:{p['campaign_id']}": p for p in got.json()["items"]}


async def test_publishing_proposes_a_plan_per_agency_with_its_targets(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: Site
) -> None:
    analyst = bearer(settings, await make_user(session, Role.analyst))
    c2020 = str(world.r2020.campaign_id)
    listed = await _plans(client, analyst, campaign_id=c2020)
    # Every measured agency below the province with a publishable index; not the small one.
    assert set(listed) == {f"{world.a.code}:{c2020}", f"{world.new.code}:{c2020}"}
    a = (
        await client.get(f"{API}/plans/{listed[f'{world.a.code}:{c2020}']['id']}", headers=analyst)
    ).json()
    assert a["status"] == "no_actions"
    assert a["review_status"] == "pending"
    # A 2020: E1.C1 71.43 (province 77.42), E2.C1 78.57 (67.74), E1.C2 100 (90.32); all three
    # are its lowest (the test instrument has three criteria); only E1.C1 is below the
    # province; nothing fell since 2019 (50.00, 75.00, 100.00).
    assert [(t["criterion_id"], t["value"], t["reasons"]) for t in a["targets"]] == [
        ("E1.C1", "71.43", ["lowest", "below_province"]),
        ("E2.C1", "78.57", ["lowest"]),
        ("E1.C2", "100.00", ["lowest"]),
    ]
    assert a["targets"][0]["province_value"] == "77.42"
    assert a["targets"][0]["previous_value"] == "50.00"
    assert a["targets"][0]["change_points"] == "21.43"
    new = (
        await client.get(
            f"{API}/plans/{listed[f'{world.new.code}:{c2020}']['id']}", headers=analyst
        )
    ).json()
    # NEW is compared with OLD (renamed): E1.C2 fell from 100.00 to 92.86, within the error.
    by_id = {t["criterion_id"]: t for t in new["targets"]}
    assert by_id["E1.C2"]["reasons"] == ["lowest", "fell"]
    assert by_id["E1.C2"]["previous_value"] == "100.00"
    assert by_id["E1.C2"]["change_points"] == "-7.14"
    assert by_id["E1.C2"]["change_significant"] is False
    assert by_id["E2.C1"]["reasons"] == ["lowest", "below_province"]
    # The 2019 plan of OLD shows what happened at the next campaign (through the rename).
    c2019 = str(world.r2019.campaign_id)
    old_plan = (await _plans(client, analyst, campaign_id=c2019))[f"{world.old.code}:{c2019}"]
    old = (await client.get(f"{API}/plans/{old_plan['id']}", headers=analyst)).json()
    outcome = {o["criterion_id"]: o for o in old["outcomes"]}
    assert outcome["E2.C1"]["value"] == "64.29"
    assert outcome["E2.C1"]["change_points"] == "30.96"
    assert outcome["E2.C1"]["report_id"] == str(world.r2020.id)
    assert outcome["E2.C1"]["significant"] is False
    events = (
        await session.scalars(
            sa.select(col(AuditEvent.summary)).where(
                col(AuditEvent.action) == "plan.propose", col(AuditEvent.object_id) == c2020
            )
        )
    ).all()
    assert [e["plans"] for e in events] == [2]


def test_targets_are_the_lowest_the_below_province_and_the_fallen() -> None:
    def node(cid: str, value: str, low: str, high: str) -> dict[str, Any]:
        return {
            "id": cid,
            "kind": "criterion",
            "label_vi": f"Tiêu chí {cid}",
            "value": value,
            "ci_low": low,
            "ci_high": high,
            "suppressed": False,
        }

    def cell(*criteria: dict[str, Any]) -> dict[str, Any]:
        element = {"id": "E1", "kind": "element", "children": list(criteria)}
        return {"index": {"id": "overall", "kind": "overall", "children": [element]}}

    mine = cell(
        node("A", "60.00", "50.00", "70.00"),
        node("B", "80.00", "75.00", "85.00"),
        node("C", "90.00", "85.00", "95.00"),
        node("D", "85.00", "80.00", "90.00"),
    )
    province = cell(
        node("A", "50.00", "48.00", "52.00"),
        node("B", "70.00", "68.00", "72.00"),
        node("C", "95.00", "94.00", "96.00"),
        node("D", "70.00", "68.00", "72.00"),
    )
    before = cell(
        node("A", "55.00", "45.00", "65.00"),
        node("B", "81.00", "76.00", "86.00"),
        node("C", "90.00", "85.00", "95.00"),
        node("D", "99.00", "97.00", "100.00"),
    )
    targets = propose_targets(mine, province, before, lowest=1, fell=1)
    assert [(t.criterion_id, t.reasons) for t in targets] == [
        ("A", ["lowest"]),
        ("D", ["fell"]),
        ("C", ["below_province"]),
    ]
    fallen = targets[1]
    assert str(fallen.change_points) == "-14.00"
    assert fallen.change_significant is True  # 80–90 against 97–100
    assert propose_targets(mine, province, None, lowest=0, fell=0)[0].criterion_id == "C"


async def test_an_agency_manager_writes_only_its_own_plans(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: Site
) -> None:
    c2020 = str(world.r2020.campaign_id)
    admin = bearer(settings, await make_user(session, Role.admin))
    plans = await _plans(client, admin, campaign_id=c2020)
    mine = plans[f"{world.a.code}:{c2020}"]["id"]
    theirs = plans[f"{world.new.code}:{c2020}"]["id"]
    manager = bearer(settings, await make_user(session, Role.agency_manager, agency=world.a))
    supervisor = bearer(settings, await make_user(session, Role.supervisor))
    surveyor = bearer(settings, await make_user(session, Role.surveyor))
    analyst = bearer(settings, await make_user(session, Role.analyst))
    # The manager lists its own agency's plans only (2019 and 2020).
    assert {p["agency_code"] for p in (await _plans(client, manager)).values()} == {world.a.code}
    action = {
        "criterion_id": "E1.C1",
        "what": "Bố trí thêm ghế chờ tại bộ phận một cửa",
        "owner": "Văn phòng HĐND và UBND huyện",
        "due_on": "2021-06-30",
    }
    made = await client.post(f"{API}/plans/{mine}/actions", json=action, headers=manager)
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "planned"
    assert_problem(
        await client.post(f"{API}/plans/{theirs}/actions", json=action, headers=manager),
        404,
        "not_found",
    )
    assert_problem(await client.get(f"{API}/plans/{theirs}", headers=manager), 404, "not_found")
    assert_problem(
        await client.post(f"{API}/plans/{mine}/actions", json=action), 401, "unauthorized"
    )
    for who in (supervisor, surveyor):
        assert_problem(
            await client.post(f"{API}/plans/{mine}/actions", json=action, headers=who),
            403,
            "forbidden",
        )
    assert (await client.get(f"{API}/plans/{mine}", headers=supervisor)).status_code == 200
    assert_problem(await client.get(f"{API}/plans/{mine}", headers=surveyor), 403, "forbidden")
    wrong = await client.post(
        f"{API}/plans/{mine}/actions", json={**action, "criterion_id": "Z.9"}, headers=manager
    )
    assert_problem(wrong, 422, "invalid")
    assert wrong.json()["errors"][0]["pointer"] == "/body/criterion_id"
    missing = await client.post(
        f"{API}/plans/{mine}/actions", json={**action, "due_on": "ngày mai"}, headers=manager
    )
    assert_problem(missing, 422, "validation_failed")
    assert missing.json()["errors"][0]["pointer"] == "/body/due_on"

    action_id = made.json()["id"]
    done = await client.patch(
        f"{API}/plans/{mine}/actions/{action_id}",
        json={"status": "done", "evidence": "Biên bản nghiệm thu số 12/BB-VP"},
        headers=manager,
    )
    assert done.status_code == 200, done.text
    assert done.json()["evidence"] == "Biên bản nghiệm thu số 12/BB-VP"
    assert_problem(
        await client.patch(
            f"{API}/plans/{mine}/actions/{action_id}", json={"status": None}, headers=manager
        ),
        422,
        "invalid",
    )
    # Review is the Department's.
    review = {"status": "approved", "comment": "Đồng ý, đề nghị báo cáo kết quả trước 30/6."}
    assert_problem(
        await client.post(f"{API}/plans/{mine}/review", json=review, headers=manager),
        403,
        "forbidden",
    )
    reviewed = await client.post(f"{API}/plans/{mine}/review", json=review, headers=analyst)
    assert reviewed.status_code == 200, reviewed.text
    plan = reviewed.json()
    assert plan["review_status"] == "approved"
    assert plan["status"] == "completed"
    assert plan["comments"][0]["body"] == review["comment"]
    actions = (
        await session.scalars(
            sa.select(col(AuditEvent.action))
            .where(col(AuditEvent.action).like("plan.%"), col(AuditEvent.action) != "plan.propose")
            .order_by(col(AuditEvent.id))
        )
    ).all()
    assert list(actions) == ["plan.action.create", "plan.action.update", "plan.review"]
    # Each change is an event too, routed to the plan's agency and campaign: subscribers learn
    # of the proposal at publishing, the action, its change and the review, in that order.
    told = (
        await session.scalars(
            sa.select(Event)
            .where(col(Event.type) == "plan.updated", Event.payload["plan_id"].astext == mine)
            .order_by(col(Event.seq))
        )
    ).all()
    assert [e.payload["change"] for e in told] == [
        "proposed",
        "action_added",
        "action_changed",
        "reviewed",
    ]
    assert {(e.agency_id, str(e.campaign_id)) for e in told} == {(world.a.id, c2020)}
    assert [e.payload["action_id"] for e in told] == [None, action_id, action_id, None]
    assert told[-1].payload["review_status"] == "approved"


async def test_dissemination_records_by_agency(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: Site
) -> None:
    manager = bearer(settings, await make_user(session, Role.agency_manager, agency=world.a))
    supervisor = bearer(settings, await make_user(session, Role.supervisor))
    audience = unicodedata.normalize("NFD", "Cán bộ, công chức bộ phận một cửa")
    body = {
        "campaign_id": str(world.r2020.campaign_id),
        "agency_id": str(world.a.id),
        "method": "meeting",
        "held_on": "2021-03-15",
        "audience": audience,
        "participants": 45,
    }
    made = await client.post(f"{API}/dissemination-records", json=body, headers=manager)
    assert made.status_code == 201, made.text
    assert made.json()["audience"] == "Cán bộ, công chức bộ phận một cửa"
    assert unicodedata.is_normalized("NFC", made.json()["audience"])
    assert_problem(
        await client.post(
            f"{API}/dissemination-records",
            json={**body, "agency_id": str(world.new.id)},
            headers=manager,
        ),
        404,
        "not_found",
    )
    assert_problem(
        await client.post(
            f"{API}/dissemination-records", json={**body, "method": "rumour"}, headers=manager
        ),
        422,
        "validation_failed",
    )
    open_campaign = await make_campaign(
        session, agencies=[world.province], state=CampaignState.open
    )
    assert_problem(
        await client.post(
            f"{API}/dissemination-records",
            json={**body, "campaign_id": str(open_campaign.id)},
            headers=manager,
        ),
        409,
        "campaign_not_published",
    )
    assert_problem(
        await client.post(f"{API}/dissemination-records", json=body, headers=supervisor),
        403,
        "forbidden",
    )
    admin = bearer(settings, await make_user(session, Role.admin))
    other = await client.post(
        f"{API}/dissemination-records",
        json={**body, "agency_id": str(world.new.id), "method": "portal", "link": "https://x.vn/a"},
        headers=admin,
    )
    assert other.status_code == 201
    listed = await client.get(f"{API}/dissemination-records", headers=manager)
    assert [r["id"] for r in listed.json()["items"]] == [made.json()["id"]]
    assert (
        len((await client.get(f"{API}/dissemination-records", headers=supervisor)).json()["items"])
        == 2
    )
    assert_problem(
        await client.get(f"{API}/dissemination-records/{other.json()['id']}", headers=manager),
        404,
        "not_found",
    )
    patched = await client.patch(
        f"{API}/dissemination-records/{made.json()['id']}",
        json={"participants": 50},
        headers=manager,
    )
    assert patched.json()["participants"] == 50
    assert patched.json()["method"] == "meeting"
    assert_problem(
        await client.patch(
            f"{API}/dissemination-records/{other.json()['id']}",
            json={"participants": 1},
            headers=manager,
        ),
        404,
        "not_found",
    )
    assert_problem(
        await client.get(f"{API}/dissemination-records/{uuid.uuid4()}", headers=admin),
        404,
        "not_found",
    )
    assert date.fromisoformat(patched.json()["held_on"]) == date(2021, 3, 15)


async def test_plans_page_by_cursor_without_repeats(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: Site
) -> None:
    """One plan a page gives every plan once; a cursor this API did not issue is refused."""
    analyst = bearer(settings, await make_user(session, Role.analyst))
    everything = set(await _plans(client, analyst))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{API}/plans", headers=analyst, params=params)).json()
        seen += [f"{p['agency_code']}:{p['campaign_id']}" for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(everything) > 1
    assert sorted(seen) == sorted(everything)
    bad = await client.get(f"{API}/plans", headers=analyst, params={"cursor": "not-a-cursor"})
    assert_problem(bad, 422, "bad_cursor")
