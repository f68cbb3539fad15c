"""Field quality through the API: window rules, the auto review policy and the index, bulk
review, the review queue, re-checks and the publication gate, schedule and supervision."""

from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.agency import Agency
from app.models.audit import AuditEvent
from app.models.campaign import Campaign, CampaignState, CampaignSurveyor, FrameUnit, Stratum
from app.models.event import Event
from app.models.identity import Role, Scope
from app.models.submission import Channel, Submission
from app.services.index import rollups
from tests.factories import bearer, make_agency, make_campaign, make_client, make_user, stored_form
from tests.helpers.events import REVIEWED_FIELDS
from tests.helpers.problems import assert_problem

CLEAN = {"E1.C1": 5, "E1.C2": 4, "E2.C1": 3, "P.TRIPS": "1", "R.GENDER": "nu"}
STRAIGHT = {"E1.C1": 5, "E1.C2": 5, "E2.C1": 5, "R.GENDER": "nu"}
# The test questionnaire has three criteria: straight-lining counts from three.
LOOSE = {"straight_lining_min_items": 3}


@dataclass
class World:
    province: Agency
    district: Agency
    other: Agency
    campaign: Campaign
    admin: dict[str, str]
    kiosk: dict[str, str]

    def url(self, suffix: str = "") -> str:
        return f"/api/v1/campaigns/{self.campaign.id}{suffix}"


@pytest.fixture
async def world(session: AsyncSession, settings: Settings) -> World:
    province = await make_agency(session, level="province")
    district = await make_agency(session, parent=province, level="district")
    other = await make_agency(session, level="province")
    campaign = await make_campaign(session, agencies=[province, other], state=CampaignState.open)
    assert await rollups.install(session, campaign.id)
    kiosk, _ = await make_client(session, [Scope.submissions_write])
    admin = await make_user(session, Role.admin)
    await session.flush()
    return World(
        province,
        district,
        other,
        campaign,
        bearer(settings, admin),
        bearer(settings, kiosk),
    )


def form(w: World, answers: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "submission_id": str(uuid.uuid4()),
        "agency_code": w.district.code,
        "channel": "web",
        "answers": dict(answers or CLEAN),
    }
    body.update(changes)
    return body


async def configure(client: httpx.AsyncClient, w: World, **config: Any) -> None:
    response = await client.put(w.url("/quality"), json=config, headers=w.admin)
    assert response.status_code == 200, response.text


async def submit(client: httpx.AsyncClient, w: World, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(w.url("/submissions"), json=body, headers=w.kiosk)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def batch(client: httpx.AsyncClient, w: World, bodies: list[dict[str, Any]]) -> list[str]:
    response = await client.post(
        w.url("/submissions/batch"), json={"submissions": bodies}, headers=w.kiosk
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert all(r["status"] == "created" for r in results), results
    return [r["id"] for r in results]


async def stored(session: AsyncSession, form_id: str) -> Submission:
    row = await stored_form(session, form_id)
    assert row is not None
    return row


# ---- config ------------------------------------------------------------------------------------


async def test_config_defaults_to_manual_and_is_audited(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    got = await client.get(world.url("/quality"), headers=world.admin)
    assert got.status_code == 200
    assert got.json()["review_policy"] == "manual"
    assert got.json()["contradictions"] is None
    await configure(client, world, review_policy="auto", burst_max_forms=3)
    again = (await client.get(world.url("/quality"), headers=world.admin)).json()
    assert again["review_policy"] == "auto"
    assert again["burst_max_forms"] == 3
    audited = await session.scalar(
        sa.select(sa.func.count()).where(
            col(AuditEvent.action) == "campaign.quality",
            col(AuditEvent.object_id) == str(world.campaign.id),
        )
    )
    assert audited == 1
    bad = await client.put(
        world.url("/quality"), json={"timezone": "Mars/Base"}, headers=world.admin
    )
    assert_problem(bad, 422, "validation_failed")
    assert any(e["pointer"] == "/body/timezone" for e in bad.json()["errors"])


async def test_config_needs_campaigns_write(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    assert (await client.put(world.url("/quality"), json={})).status_code == 401
    analyst = bearer(settings, await make_user(session, Role.analyst))
    assert (await client.put(world.url("/quality"), json={}, headers=analyst)).status_code == 403
    missing = f"/api/v1/campaigns/{uuid.uuid4()}/quality"
    assert (await client.get(missing, headers=world.admin)).status_code == 404


# ---- per-form flags through the API and the auto policy ---------------------------------------


async def test_manual_policy_keeps_every_form_received_with_its_flags(
    client: httpx.AsyncClient, world: World
) -> None:
    await configure(client, world, **LOOSE)
    clean = await submit(client, world, form(world))
    flagged = await submit(client, world, form(world, STRAIGHT))
    assert clean["state"] == flagged["state"] == "received"
    assert clean["flags"] == {}
    assert flagged["flags"] == {"straight_lining": {"value": 5, "items": 3}}


async def test_auto_counts_clean_forms_at_once_and_holds_flagged_ones(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    await configure(client, world, review_policy="auto", **LOOSE)
    started = datetime.now(UTC) - timedelta(minutes=30)
    clean = await submit(client, world, form(world, started_at=started.isoformat()))
    fast = await submit(
        client,
        world,
        form(world, started_at=(datetime.now(UTC) - timedelta(seconds=20)).isoformat()),
    )
    ids = await batch(client, world, [form(world), form(world, STRAIGHT)])
    assert (clean["state"], clean["flags"]) == ("valid", {})
    assert (fast["state"], set(fast["flags"])) == ("received", {"too_fast"})
    assert (await stored(session, ids[0])).state == "valid"
    assert (await stored(session, ids[1])).state == "received"
    # The index (kept by the roll-up triggers) counts the two clean forms, and says what the
    # rules kept out.
    index = await client.get(world.url("/index"), headers=world.admin)
    assert index.status_code == 200, index.text
    assert index.json()["total"]["n_respondents"] == 2
    assert index.json()["excluded"] == {"straight_lining": 1, "too_fast": 1}
    # Reviewing the held form valid lets it count; it leaves the excluded counts.
    reviewed = await client.post(
        f"/api/v1/submissions/{ids[1]}/review", json={"state": "valid"}, headers=world.admin
    )
    assert reviewed.status_code == 200
    after = (await client.get(world.url("/index"), headers=world.admin)).json()
    assert after["total"]["n_respondents"] == 3
    assert after["excluded"] == {"too_fast": 1}


async def test_a_retry_with_started_at_left_out_keeps_its_old_hash(
    client: httpx.AsyncClient, world: World
) -> None:
    body = form(world)
    first = await client.post(world.url("/submissions"), json=body, headers=world.kiosk)
    retry = await client.post(world.url("/submissions"), json=body, headers=world.kiosk)
    assert first.status_code == retry.status_code == 201
    assert retry.headers.get("Idempotent-Replayed") == "true"


# ---- window rules ------------------------------------------------------------------------------


async def test_many_forms_from_one_device_in_a_short_window(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    await configure(client, world, review_policy="auto", burst_max_forms=3, burst_window_minutes=10)
    now = datetime.now(UTC)
    burst = [
        form(world, device_id="tab-1", received_at=(now - timedelta(minutes=i)).isoformat())
        for i in range(4)
    ]
    # Spread over hours: never more than three within ten minutes.
    spread = [
        form(world, device_id="tab-2", received_at=(now - timedelta(hours=i)).isoformat())
        for i in range(4)
    ]
    flagged = await batch(client, world, burst)
    clean = await batch(client, world, spread)
    for form_id in flagged:
        row = await stored(session, form_id)
        assert row.flags["many_from_device"] == {"forms": 4, "window_minutes": 10, "threshold": 3}
        assert row.state == "received"  # auto made it valid; the window rule held it back
    for form_id in clean:
        row = await stored(session, form_id)
        assert (row.flags, row.state) == ({}, "valid")
    # Each form's submission.accepted event says the state the form has after screening.
    told: dict[str, str] = dict(
        (
            await session.execute(
                sa.select(Event.payload["id"].astext, Event.payload["state"].astext).where(
                    col(Event.type) == "submission.accepted",
                    col(Event.campaign_id) == world.campaign.id,
                )
            )
        ).all()
    )
    assert {told[i] for i in flagged} == {"received"}
    assert {told[i] for i in clean} == {"valid"}
    # A single form that makes a fifth in the window is flagged too, and says so.
    fifth = await submit(client, world, form(world, device_id="tab-1"))
    assert fifth["flags"]["many_from_device"]["forms"] == 5
    assert fifth["state"] == "received"


async def test_many_forms_from_one_surveyor_in_a_short_window(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    await configure(client, world, burst_max_forms=2)
    busy = await make_user(session, Role.surveyor)
    calm = await make_user(session, Role.surveyor)
    for user in (busy, calm):
        session.add(
            CampaignSurveyor(campaign_id=world.campaign.id, user_id=user.id, agency_id=None)
        )
    await session.flush()
    now = datetime.now(UTC)
    ids = []
    for user, gap in ((busy, timedelta(minutes=1)), (calm, timedelta(hours=1))):
        for i in range(3):
            body = form(world, channel="one_stop", received_at=(now - gap * i).isoformat())
            response = await client.post(
                world.url("/submissions"), json=body, headers=bearer(settings, user)
            )
            assert response.status_code == 201, response.text
            ids.append((user, response.json()["id"]))
    busy_flags = [(await stored(session, i)).flags for u, i in ids if u is busy]
    calm_flags = [(await stored(session, i)).flags for u, i in ids if u is calm]
    # The third of the busy surveyor's forms makes three within ten minutes.
    assert busy_flags[2]["many_from_surveyor"]["forms"] == 3
    assert all(f == {} for f in calm_flags)


async def test_a_dossier_rated_before_and_an_agency_that_differs_from_the_dossiers(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    unit = FrameUnit(
        campaign_id=world.campaign.id,
        dossier_code="HS-0001",
        agency_id=world.district.id,
        returned_on=date(2020, 10, 1),
    )
    mismatched = FrameUnit(
        campaign_id=world.campaign.id,
        dossier_code="HS-0002",
        agency_id=world.other.id,
        returned_on=date(2020, 10, 1),
    )
    session.add_all([unit, mismatched])
    await session.flush()
    first = await submit(client, world, form(world, dossier_code="HS-0001"))
    second = await submit(client, world, form(world, dossier_code="HS-0001"))
    assert "dossier_rated_before" not in first["flags"]
    assert second["flags"]["dossier_rated_before"] == {"earlier_form": first["id"]}
    assert "agency_mismatch" not in first["flags"]
    wrong = await submit(client, world, form(world, dossier_code="HS-0002"))
    assert wrong["flags"]["agency_mismatch"] == {
        "form_agency_id": str(world.district.id),
        "dossier_agency_id": str(world.other.id),
    }


# ---- bulk review and the queue -----------------------------------------------------------------


async def test_bulk_review_by_filter_is_one_call_with_an_audit_event_per_form(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    await configure(client, world, **LOOSE)
    clean = await batch(client, world, [form(world) for _ in range(5)])
    straight = await batch(client, world, [form(world, STRAIGHT) for _ in range(2)])
    response = await client.post(
        world.url("/submissions/review"),
        json={"filter": {"clean": True}, "state": "valid"},
        headers=world.admin,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["reviewed"], body["skipped"]) == (5, 0)
    assert {i["id"] for i in body["items"]} == set(clean)
    assert all(i["status"] == "reviewed" and i["from"] == "received" for i in body["items"])
    for form_id in clean:
        assert (await stored(session, form_id)).state == "valid"
    for form_id in straight:
        assert (await stored(session, form_id)).state == "received"
    audits = (
        await session.scalars(
            sa.select(AuditEvent).where(
                col(AuditEvent.action) == "submission.review",
                col(AuditEvent.object_id).in_(clean),
            )
        )
    ).all()
    assert len(audits) == 5
    assert audits[0].summary == {"to": "valid", "reason": None, "bulk": True, "from": "received"}
    reviewed_events = await session.scalar(
        sa.select(sa.func.count()).where(
            col(Event.type) == "submission.reviewed",
            col(Event.campaign_id) == world.campaign.id,
        )
    )
    assert reviewed_events == 5
    # a bulk review's events are those of a single review, field for field
    one = await session.scalar(
        sa.select(Event).where(
            col(Event.type) == "submission.reviewed", col(Event.campaign_id) == world.campaign.id
        )
    )
    assert one is not None
    assert set(one.payload) == REVIEWED_FIELDS
    assert (one.payload["campaign_id"], one.payload["agency_id"]) == (
        str(one.campaign_id),
        str(one.agency_id),
    )
    assert (one.payload["from"], one.payload["to"]) == ("received", "valid")
    # by flag: reject the straight-liners, with a reason
    rejected = await client.post(
        world.url("/submissions/review"),
        json={
            "filter": {"flag": "straight_lining"},
            "state": "rejected",
            "reason": "Trả lời giống hệt nhau",
        },
        headers=world.admin,
    )
    assert rejected.json()["reviewed"] == 2
    assert (await stored(session, straight[0])).review_reason == "Trả lời giống hệt nhau"


async def test_bulk_review_by_ids_answers_each_item(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    ids = await batch(client, world, [form(world) for _ in range(3)])
    first = await client.post(
        world.url("/submissions/review"),
        json={"ids": [ids[0]], "state": "valid"},
        headers=world.admin,
    )
    assert first.json()["reviewed"] == 1
    stranger = str(uuid.uuid4())
    response = await client.post(
        world.url("/submissions/review"),
        json={"ids": [ids[0], ids[1], stranger], "state": "valid"},
        headers=world.admin,
    )
    items = {i["id"]: i["status"] for i in response.json()["items"]}
    assert items == {ids[0]: "not_allowed", ids[1]: "reviewed", stranger: "not_found"}
    # Bad requests name the field.
    both = await client.post(
        world.url("/submissions/review"),
        json={"ids": [ids[2]], "filter": {}, "state": "valid"},
        headers=world.admin,
    )
    assert_problem(both, 422, "invalid")
    assert both.json()["errors"][0]["pointer"] == "/body/ids"
    no_reason = await client.post(
        world.url("/submissions/review"),
        json={"ids": [ids[2]], "state": "rejected"},
        headers=world.admin,
    )
    assert no_reason.json()["errors"][0]["pointer"] == "/body/reason"
    # No token 401, a role without review 403, a supervisor may not change forms either.
    url = world.url("/submissions/review")
    assert (await client.post(url, json={"ids": [ids[2]], "state": "valid"})).status_code == 401
    for role in (Role.agency_manager, Role.supervisor, Role.surveyor):
        user = await make_user(session, role, agency=world.province)
        denied = await client.post(
            url, json={"ids": [ids[2]], "state": "valid"}, headers=bearer(settings, user)
        )
        assert denied.status_code == 403, role
    assert (await stored(session, ids[2])).state == "received"


async def test_the_review_queue_puts_the_riskiest_first(
    client: httpx.AsyncClient, world: World
) -> None:
    await configure(client, world, **LOOSE)
    plain = await submit(client, world, form(world))
    one = await submit(client, world, form(world, STRAIGHT))
    started = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    two = await submit(client, world, form(world, STRAIGHT, started_at=started))
    queue = await client.get(world.url("/review-queue"), headers=world.admin)
    assert queue.status_code == 200, queue.text
    order = [(i["id"], i["risk"]) for i in queue.json()["items"]]
    assert order == [(two["id"], 2), (one["id"], 1), (plain["id"], 0)]


# ---- re-checks ---------------------------------------------------------------------------------


async def _surveyed(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, w: World, count: int
) -> tuple[list[uuid.UUID], list[str]]:
    surveyors = [await make_user(session, Role.surveyor) for _ in range(2)]
    for user in surveyors:
        session.add(CampaignSurveyor(campaign_id=w.campaign.id, user_id=user.id, agency_id=None))
    await session.flush()
    ids = []
    for user in surveyors:
        for i in range(count):
            body = form(w, received_at=(datetime.now(UTC) - timedelta(hours=i)).isoformat())
            response = await client.post(
                w.url("/submissions"), json=body, headers=bearer(settings, user)
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
    return [u.id for u in surveyors], ids


def expected_draw(
    rows: list[tuple[uuid.UUID, uuid.UUID | None]], seed: str, share: float
) -> set[uuid.UUID]:
    """The draw recomputed in Python: per surveyor, the first ceil(share · n) by md5(seed‖id)."""
    by_surveyor: dict[uuid.UUID | None, list[uuid.UUID]] = {}
    for form_id, surveyor in rows:
        by_surveyor.setdefault(surveyor, []).append(form_id)
    picked: set[uuid.UUID] = set()
    for forms in by_surveyor.values():
        ordered = sorted(forms, key=lambda f: hashlib.md5((seed + str(f)).encode()).hexdigest())  # noqa: S324
        picked |= set(ordered[: math.ceil(len(forms) * share)])
    return picked


async def test_recheck_sampling_is_reproducible_from_its_seed(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    await configure(client, world, **LOOSE)
    await _surveyed(client, session, settings, world, 7)
    flagged = await submit(client, world, form(world, STRAIGHT))
    rows = [
        (r[0], r[1])
        for r in (
            await session.execute(
                sa.select(col(Submission.id), col(Submission.surveyor_id)).where(
                    col(Submission.campaign_id) == world.campaign.id,
                    col(Submission.flags) == sa.text("'{}'::jsonb"),
                )
            )
        ).all()
    ]
    response = await client.post(
        world.url("/rechecks"), json={"seed": "phuc-tra-2020", "share": 0.3}, headers=world.admin
    )
    assert response.status_code == 201, response.text
    body = response.json()
    sampled = {uuid.UUID(i["submission_id"]) for i in body["items"] if i["reason"] == "sample"}
    assert sampled == expected_draw(rows, "phuc-tra-2020", 0.3)
    assert body["sampled"] == 2 * math.ceil(7 * 0.3)
    # every flagged form is re-checked, whatever the draw
    assert [i["submission_id"] for i in body["items"] if i["reason"] == "flagged"] == [
        flagged["id"]
    ]
    # drawing again with the same seed adds nothing; another seed draws another list
    again = await client.post(
        world.url("/rechecks"), json={"seed": "phuc-tra-2020", "share": 0.3}, headers=world.admin
    )
    assert again.json()["drawn"] == 0
    assert expected_draw(rows, "other", 0.3) != sampled


async def test_recheck_outcomes_confirmation_rates_and_the_publication_gate(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    await configure(client, world, require_recheck_before_publication=True)
    surveyors, _ = await _surveyed(client, session, settings, world, 2)
    worker = await make_user(session, Role.analyst)
    worker_headers = bearer(settings, worker)
    publish = f"/api/v1/campaigns/{world.campaign.id}/reports"
    close = await client.post(world.url("/transition"), json={"to": "closed"}, headers=world.admin)
    assert close.status_code == 200, close.text
    gate = await client.post(publish, json={}, headers=world.admin)
    assert_problem(gate, 409, "recheck_pending")
    drawn = await client.post(
        world.url("/rechecks"),
        json={"seed": "s", "share": 1, "assigned_to": str(worker.id)},
        headers=world.admin,
    )
    items = drawn.json()["items"]
    assert len(items) == 4
    assert_problem(await client.post(publish, json={}, headers=world.admin), 409, "recheck_pending")
    # A surveyor cannot be the worker; a worker records, others assigned elsewhere may not.
    bad = await client.post(
        world.url("/rechecks"),
        json={"seed": "s", "assigned_to": str(surveyors[0])},
        headers=world.admin,
    )
    assert bad.json()["errors"][0]["pointer"] == "/body/assigned_to"
    other_worker = bearer(settings, await make_user(session, Role.analyst))
    taken = await client.put(
        f"/api/v1/rechecks/{items[0]['id']}", json={"outcome": "confirmed"}, headers=other_worker
    )
    assert_problem(taken, 409, "recheck_assigned_elsewhere")
    outcomes = {s: ["confirmed", "confirmed"] for s in surveyors}
    outcomes[surveyors[1]] = ["confirmed", "not_confirmed"]
    for item in items:
        outcome = outcomes[uuid.UUID(item["surveyor_id"])].pop()
        done = await client.put(
            f"/api/v1/rechecks/{item['id']}",
            json={"outcome": outcome, "note": "Đã gọi điện xác nhận"},
            headers=worker_headers,
        )
        assert done.status_code == 200, done.text
        assert done.json()["note"] == "Đã gọi điện xác nhận"
    summary = (await client.get(world.url("/rechecks/summary"), headers=world.admin)).json()
    rates = {s["surveyor_id"]: s["confirmation_rate_pct"] for s in summary["surveyors"]}
    assert rates == {str(surveyors[0]): 100.0, str(surveyors[1]): 50.0}
    assert summary["pending"] == 0
    published = await client.post(publish, json={}, headers=world.admin)
    assert published.status_code in (200, 201), published.text


# ---- schedule and supervision ------------------------------------------------------------------


async def test_schedule_forecasts_and_flags_a_campaign_behind(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    session.add_all(
        [
            Stratum(campaign_id=world.campaign.id, agency_id=world.district.id, target=40),
            Stratum(campaign_id=world.campaign.id, agency_id=world.other.id, target=2),
        ]
    )
    await session.flush()
    await batch(client, world, [form(world) for _ in range(10)])
    await batch(client, world, [form(world, agency_code=world.other.code) for _ in range(2)])
    # Fieldwork runs 1 Nov - 15 Dec 2020; on 10 Nov (day 10) the district has 10 of 40: one a
    # day, so 30 more days: 10 Dec, on time. On 20 Nov (day 20): half a day, 60 more days.
    on_time = await client.get(
        world.url("/schedule"), params={"as_of": "2020-11-10"}, headers=world.admin
    )
    assert on_time.status_code == 200, on_time.text
    lines = {line["key"]: line for line in on_time.json()["agencies"]}
    assert lines[str(world.district.id)]["forecast_completion"] == "2020-12-10"
    assert lines[str(world.district.id)]["behind_schedule"] is False
    assert lines[str(world.other.id)]["forecast_completion"] == "2020-11-10"
    late = (
        await client.get(
            world.url("/schedule"), params={"as_of": "2020-11-20"}, headers=world.admin
        )
    ).json()
    lines = {line["key"]: line for line in late["agencies"]}
    assert lines[str(world.district.id)]["forecast_completion"] == "2021-01-19"
    assert lines[str(world.district.id)]["behind_schedule"] is True
    assert (late["behind_schedule"], late["target"], late["received"]) == (True, 42, 12)


async def test_supervisors_read_quality_and_file_observations_but_change_no_form(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    await configure(client, world, **LOOSE)
    held = await submit(client, world, form(world, STRAIGHT))
    supervisor = bearer(settings, await make_user(session, Role.supervisor))
    flags = await client.get(world.url("/flags"), headers=supervisor)
    assert flags.status_code == 200, flags.text
    assert flags.json() == {"straight_lining": {"received": 1}}
    assert (await client.get(world.url("/schedule"), headers=supervisor)).status_code == 200
    assert (await client.get(world.url("/rechecks"), headers=supervisor)).status_code == 200
    # never the forms themselves, never a change
    assert (
        await client.get(f"/api/v1/submissions/{held['id']}", headers=supervisor)
    ).status_code == 403
    review = await client.post(
        f"/api/v1/submissions/{held['id']}/review", json={"state": "valid"}, headers=supervisor
    )
    assert review.status_code == 403
    correction = await client.put(
        f"/api/v1/submissions/{held['id']}", json={"answers": CLEAN}, headers=supervisor
    )
    assert correction.status_code == 403
    assert (await stored(session, held["id"])).state == "received"
    blank = await client.post(world.url("/observations"), json={"body": "  "}, headers=supervisor)
    assert_problem(blank, 422, "validation_failed")
    assert blank.json()["errors"][0]["pointer"] == "/body/body"
    # an observation, answered once by the Department, both audited
    filed = await client.post(
        world.url("/observations"),
        json={"body": "Điểm phát phiếu ở xã Yên Sơn đóng cửa sớm.", "submission_id": held["id"]},
        headers=supervisor,
    )
    assert filed.status_code == 201, filed.text
    obs = filed.json()
    assert obs["body"] == "Điểm phát phiếu ở xã Yên Sơn đóng cửa sớm."
    open_list = await client.get(
        world.url("/observations"), params={"open": True}, headers=world.admin
    )
    assert [o["id"] for o in open_list.json()] == [obs["id"]]
    answer_url = f"/api/v1/observations/{obs['id']}/answer"
    assert (
        await client.post(answer_url, json={"answer": "x"}, headers=supervisor)
    ).status_code == 403
    answered = await client.post(
        answer_url, json={"answer": "Sở đã yêu cầu Bưu điện mở đúng giờ."}, headers=world.admin
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["answered_at"] is not None
    twice = await client.post(answer_url, json={"answer": "lần hai"}, headers=world.admin)
    assert_problem(twice, 409, "observation_answered")
    actions = (
        await session.scalars(
            sa.select(col(AuditEvent.action)).where(col(AuditEvent.object_id) == obs["id"])
        )
    ).all()
    assert sorted(actions) == ["observation.answer", "observation.file"]
    # An agency manager has no quality:read; another agency's manager would not see the form.
    manager = bearer(settings, await make_user(session, Role.agency_manager, agency=world.other))
    assert (await client.get(world.url("/flags"), headers=manager)).status_code == 403


async def test_a_correction_is_screened_again(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    await configure(client, world, **LOOSE)
    surveyor = await make_user(session, Role.surveyor)
    session.add(CampaignSurveyor(campaign_id=world.campaign.id, user_id=surveyor.id))
    await session.flush()
    headers = bearer(settings, surveyor)
    body = form(world, STRAIGHT, channel="one_stop")
    created = await client.post(world.url("/submissions"), json=body, headers=headers)
    assert created.json()["flags"] == {"straight_lining": {"value": 5, "items": 3}}
    fixed = await client.put(
        f"/api/v1/submissions/{created.json()['id']}", json={"answers": CLEAN}, headers=headers
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["flags"] == {}


async def test_forms_of_another_campaign_are_not_found(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    elsewhere = await make_campaign(session, agencies=[world.other], state=CampaignState.open)
    session.add(
        Submission(
            campaign_id=elsewhere.id,
            client_submission_id=uuid.uuid4(),
            request_hash="x",
            agency_id=world.other.id,
            channel=Channel.web,
            answers=CLEAN,
            received_at=datetime.now(UTC),
        )
    )
    await session.flush()
    other_form = await session.scalar(
        sa.select(col(Submission.id)).where(col(Submission.campaign_id) == elsewhere.id)
    )
    response = await client.post(
        world.url("/submissions/review"),
        json={"ids": [str(other_form)], "state": "valid"},
        headers=world.admin,
    )
    assert response.json()["items"] == [
        {"id": str(other_form), "status": "not_found", "from": None}
    ]
    missing = f"/api/v1/campaigns/{uuid.uuid4()}"
    for path in ("/review-queue", "/flags", "/rechecks", "/schedule", "/observations"):
        assert (await client.get(missing + path, headers=world.admin)).status_code == 404, path


async def test_a_supervisor_bound_to_an_agency_sees_only_its_subtree(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    await configure(client, world, **LOOSE)
    await batch(client, world, [form(world, STRAIGHT) for _ in range(2)])
    await batch(client, world, [form(world, STRAIGHT, agency_code=world.other.code)])
    drawn = await client.post(
        world.url("/rechecks"), json={"seed": "s", "share": 1}, headers=world.admin
    )
    assert drawn.json()["drawn"] == 3
    local = bearer(settings, await make_user(session, Role.supervisor, agency=world.other))
    flags = (await client.get(world.url("/flags"), headers=local)).json()
    assert flags == {"straight_lining": {"received": 1}}
    assert len((await client.get(world.url("/rechecks"), headers=local)).json()) == 1
    schedule = (await client.get(world.url("/schedule"), headers=local)).json()
    assert [line["key"] for line in schedule["agencies"]] == [str(world.other.id)]
    elsewhere = await client.post(
        world.url("/observations"),
        json={"body": "Ngoài phạm vi", "agency_id": str(world.district.id)},
        headers=local,
    )
    assert elsewhere.status_code == 404
    # the province-wide supervisor sees all three
    everyone = bearer(settings, await make_user(session, Role.supervisor))
    assert len((await client.get(world.url("/rechecks"), headers=everyone)).json()) == 3
