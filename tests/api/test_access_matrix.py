"""Who sees and changes which rows: a matrix of principals × lists, exports, aggregates and writes.

One province tree and one campaign with forms, strata and a sampled frame in every agency;
each principal's answers are checked by counting what comes back (what it must see and what it
must not), not only by status codes. The `test_hole_*` tests reproduce holes an attack run
found (issue "[1/7] Trust"); each failed before its fix.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.agency import Agency
from app.models.campaign import (
    Campaign,
    CampaignState,
    CampaignSurveyor,
    FrameContact,
    FrameUnit,
    Stratum,
)
from app.models.catalogue import Procedure
from app.models.identity import CLIENT_SCOPES, ROLE_SCOPES, Role, Scope
from app.models.report import Report
from app.models.submission import Channel, Submission, SubmissionState
from app.services import campaigns
from app.services.auth import user_principal
from app.services.index import rollups
from tests.factories import (
    bearer,
    make_agency,
    make_campaign,
    make_client,
    make_procedure,
    make_sector,
    make_user,
)
from tests.helpers.problems import assert_problem, error_codes

API = "/api/v1"
GOOD = {"E1.C1": 5, "E1.C2": 4, "E2.C1": 3, "P.TRIPS": "1", "R.GENDER": "nu"}
# Valid forms per agency entered by the kiosk (no surveyor).
KIOSK_FORMS = {"P": 1, "D": 2, "C": 3, "D2": 4, "O": 0, "OD": 5}
# Sampled frame units per agency.
SAMPLED = {"P": 0, "D": 2, "C": 1, "D2": 1, "O": 0, "OD": 2}


@dataclass
class World:
    """P (province) ⊃ D (district) ⊃ C (commune), P ⊃ D2; O (another province) ⊃ OD.

    The campaign covers P and O. Surveyor s1 is assigned to D and entered 2 forms there; s2 is
    assigned to D and entered 1; s1 also entered 1 form in `old`, a campaign they are no
    longer assigned to."""

    agencies: dict[str, Agency]
    procedure: Procedure
    campaign: Campaign
    old: Campaign
    s1_forms: list[uuid.UUID]
    s2_form: uuid.UUID
    old_form: uuid.UUID
    forms: dict[str, list[uuid.UUID]]  # kiosk forms by agency key
    admin: dict[str, str]
    manager: dict[str, str]  # agency manager of D
    machine: dict[str, str]  # machine client bound to D
    s1: dict[str, str]
    s2: dict[str, str]
    supervisor: dict[str, str]
    analyst: dict[str, str]

    def ids(self, *keys: str) -> set[str]:
        return {str(self.agencies[k].id) for k in keys}

    def key_of(self, agency_id: str) -> str | None:
        for key, agency in self.agencies.items():
            if str(agency.id) == agency_id:
                return key
        return None


def _form(
    campaign: Campaign,
    agency: Agency,
    stratum: Stratum | None = None,
    *,
    surveyor: uuid.UUID | None = None,
) -> Submission:
    return Submission(
        campaign_id=campaign.id,
        stratum_id=stratum.id if stratum else None,
        client_submission_id=uuid.uuid4(),
        request_hash="x",
        agency_id=agency.id,
        surveyor_id=surveyor,
        channel=Channel.post_office if surveyor else Channel.kiosk,
        state=SubmissionState.valid,
        answers=dict(GOOD),
        received_at=datetime.now(UTC),
    )


async def _add(session: AsyncSession, rows: list[Submission]) -> list[uuid.UUID]:
    session.add_all(rows)
    await session.flush()
    return [r.id for r in rows]


@pytest.fixture
async def world(session: AsyncSession, settings: Settings) -> World:
    p = await make_agency(session, level="province", name="UBND tỉnh thử")
    d = await make_agency(session, parent=p, level="district", name="UBND huyện Sơn Dương")
    c = await make_agency(session, parent=d, level="commune", name="UBND xã Thái Long")
    d2 = await make_agency(session, parent=p, level="district")
    o = await make_agency(session, level="province")
    od = await make_agency(session, parent=o, level="district")
    agencies = {"P": p, "D": d, "C": c, "D2": d2, "O": o, "OD": od}
    sector = await make_sector(session)
    procedure = await make_procedure(session, sector)
    # Every agency in scope: a frame unit's agency must be one of the campaign's own.
    campaign = await make_campaign(
        session, agencies=list(agencies.values()), state=CampaignState.open
    )
    old = await make_campaign(session, agencies=[p], state=CampaignState.open)
    strata: dict[str, Stratum] = {}
    for key, agency in agencies.items():
        stratum = Stratum(campaign_id=campaign.id, agency_id=agency.id, frame_size=100, target=10)
        session.add(stratum)
        await session.flush()
        strata[key] = stratum
        for i in range(SAMPLED[key]):
            session.add(
                FrameUnit(
                    campaign_id=campaign.id,
                    dossier_code=f"{key}-{i}",
                    procedure_id=procedure.id,
                    agency_id=agency.id,
                    stratum_id=stratum.id,
                    returned_on=campaign.period_start,
                    in_sample=True,
                )
            )
    await session.flush()

    forms = {
        key: await _add(session, [_form(campaign, agencies[key], strata[key]) for _ in range(n)])
        for key, n in KIOSK_FORMS.items()
    }
    s1 = await make_user(session, Role.surveyor)
    s2 = await make_user(session, Role.surveyor)
    session.add(CampaignSurveyor(campaign_id=campaign.id, user_id=s1.id, agency_id=d.id))
    session.add(CampaignSurveyor(campaign_id=campaign.id, user_id=s2.id, agency_id=d.id))
    s1_forms = await _add(
        session, [_form(campaign, d, strata["D"], surveyor=s1.id) for _ in range(2)]
    )
    (s2_form,) = await _add(session, [_form(campaign, d, strata["D"], surveyor=s2.id)])
    (old_form,) = await _add(session, [_form(old, d, surveyor=s1.id)])

    machine, _ = await make_client(
        session,
        [
            Scope.agencies_read,
            Scope.campaigns_read,
            Scope.progress_read,
            Scope.submissions_write,
            Scope.frame_write,
            Scope.dossiers_write,
            Scope.reports_read,
        ],
        agency=d,
    )
    return World(
        agencies=agencies,
        procedure=procedure,
        campaign=campaign,
        old=old,
        s1_forms=s1_forms,
        s2_form=s2_form,
        old_form=old_form,
        forms=forms,
        admin=bearer(settings, await make_user(session, Role.admin)),
        manager=bearer(settings, await make_user(session, Role.agency_manager, agency=d)),
        machine=bearer(settings, machine),
        s1=bearer(settings, s1),
        s2=bearer(settings, s2),
        supervisor=bearer(settings, await make_user(session, Role.supervisor)),
        analyst=bearer(settings, await make_user(session, Role.analyst)),
    )


# Forms of the campaign per agency, all entries included.
IN_CAMPAIGN = {**KIOSK_FORMS, "D": KIOSK_FORMS["D"] + 3}
ALL_FORMS = sum(IN_CAMPAIGN.values())  # 18
D_SUBTREE_FORMS = IN_CAMPAIGN["D"] + IN_CAMPAIGN["C"]  # 8


async def _json(client: httpx.AsyncClient, url: str, headers: dict[str, str], **params: Any) -> Any:
    response = await client.get(url, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def _form_ids(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    body = await _json(client, f"{API}/submissions", headers, limit=200, **params)
    assert body["next_cursor"] is None or len(body["items"]) < 200
    return [item["id"] for item in body["items"]]


async def _exported(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[dict[str, str]]:
    response = await client.get(f"{API}/submissions/export", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


# ---- lists ---------------------------------------------------------------------------------------


async def test_agency_lists_by_principal(client: httpx.AsyncClient, world: World) -> None:
    def listed(body: dict[str, Any]) -> set[str]:
        return {a["id"] for a in body["items"]}

    mine = world.ids(*world.agencies)
    admin = listed(await _json(client, f"{API}/agencies", world.admin, limit=500))
    assert mine <= admin
    for headers in (world.manager, world.machine):
        seen = listed(await _json(client, f"{API}/agencies", headers, limit=500))
        assert seen == world.ids("D", "C")
    for headers in (world.s1, world.supervisor):  # no agency on the account: the whole tree
        assert mine <= listed(await _json(client, f"{API}/agencies", headers, limit=500))
    # another agency's object: 404, not 403
    other = world.agencies["OD"].id
    for headers in (world.manager, world.machine):
        response = await client.get(f"{API}/agencies/{other}", headers=headers)
        assert_problem(response, 404, "not_found")


async def test_form_lists_and_exports_by_principal(client: httpx.AsyncClient, world: World) -> None:
    campaign = str(world.campaign.id)
    assert len(await _form_ids(client, world.admin, campaign_id=campaign)) == ALL_FORMS
    assert len(await _exported(client, world.admin, campaign_id=campaign)) == ALL_FORMS

    managed = await _form_ids(client, world.manager, campaign_id=campaign)
    assert len(managed) == D_SUBTREE_FORMS
    exported = await _exported(client, world.manager, campaign_id=campaign)
    assert len(exported) == D_SUBTREE_FORMS
    assert {row["agency_code"] for row in exported} == {world.agencies[k].code for k in ("D", "C")}
    outside = world.forms["OD"][0]
    assert_problem(
        await client.get(f"{API}/submissions/{outside}", headers=world.manager), 404, "not_found"
    )
    assert_problem(
        await client.get(f"{API}/submissions/{outside}/versions", headers=world.manager),
        404,
        "not_found",
    )

    # The surveyor sees the two forms they entered in the campaign they are assigned to.
    assert sorted(await _form_ids(client, world.s1)) == sorted(map(str, world.s1_forms))
    assert len(await _exported(client, world.s1)) == 2

    # Supervisors and machine clients never read raw forms.
    for headers in (world.supervisor, world.machine):
        response = await client.get(f"{API}/submissions", headers=headers)
        assert_problem(response, 403, "forbidden")


async def test_progress_and_strata_by_principal(client: httpx.AsyncClient, world: World) -> None:
    url = f"{API}/campaigns/{world.campaign.id}"
    everyone = world.ids(*world.agencies)
    for headers in (world.admin, world.supervisor):
        progress = await _json(client, f"{url}/progress", headers)
        assert {r["agency_id"] for r in progress["strata"]} == everyone
        assert progress["totals"]["received"] == ALL_FORMS
        assert progress["totals"]["sampled"] == sum(SAMPLED.values())
    for headers in (world.manager, world.machine):
        progress = await _json(client, f"{url}/progress", headers)
        assert {r["agency_id"] for r in progress["strata"]} == world.ids("D", "C")
        assert progress["totals"]["received"] == D_SUBTREE_FORMS
        assert progress["totals"]["frame_size"] == 200
        assert progress["totals"]["sampled"] == SAMPLED["D"] + SAMPLED["C"]
    assert_problem(await client.get(f"{url}/progress", headers=world.s1), 403, "forbidden")

    strata = await _json(client, f"{url}/strata", world.admin)
    assert {s["agency_id"] for s in strata} == everyone


async def test_quality_flags_by_principal(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    """Screening flags follow the forms' rule: the Department and an unbound supervisor count
    every flagged form, a supervisor bound to D only D's subtree; callers without
    `quality:read` (agency manager, agency-bound client, surveyor) are refused."""
    await session.execute(
        sa.update(Submission)
        .where(col(Submission.campaign_id) == world.campaign.id)
        .values(flags={"straight_lining": {"items": 22, "answer": 4}})
    )
    url = f"{API}/campaigns/{world.campaign.id}/flags"

    def flagged(counts: dict[str, dict[str, int]]) -> int:
        return sum(counts.get("straight_lining", {}).values())

    bound = bearer(settings, await make_user(session, Role.supervisor, agency=world.agencies["D"]))
    expected = [
        (world.admin, ALL_FORMS),
        (world.supervisor, ALL_FORMS),
        (bound, D_SUBTREE_FORMS),
    ]
    for headers, forms in expected:
        assert flagged(await _json(client, url, headers)) == forms
    for headers in (world.manager, world.machine, world.s1):
        assert_problem(await client.get(url, headers=headers), 403, "forbidden")


# ---- aggregates ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rolled_up", [False, True], ids=["sql", "rollups"])
async def test_index_and_rankings_by_principal(
    client: httpx.AsyncClient, session: AsyncSession, world: World, rolled_up: bool
) -> None:
    if rolled_up:  # the same answers when the counts come from the roll-ups
        assert await rollups.install(session, world.campaign.id)
        assert await rollups.version(session, world.campaign.id) is not None
    url = f"{API}/campaigns/{world.campaign.id}"
    total = await _json(client, f"{url}/index", world.admin)
    assert total["total"]["n_respondents"] == ALL_FORMS
    managed = await _json(client, f"{url}/index", world.manager, group_by="agency")
    assert managed["total"]["n_respondents"] == D_SUBTREE_FORMS
    assert {g["key"] for g in managed["groups"]} == world.ids("D", "C")
    # A filter outside the subtree finds nothing rather than another agency's forms.
    elsewhere = await _json(
        client, f"{url}/index", world.manager, agency_id=str(world.agencies["OD"].id)
    )
    assert elsewhere["total"]["n_respondents"] == 0

    ranked = await _json(client, f"{url}/rankings", world.admin, level="district")
    assert {r["agency_id"] for r in ranked["rows"]} == world.ids("D", "D2", "OD")
    ranked = await _json(client, f"{url}/rankings", world.manager, level="district")
    assert {r["agency_id"] for r in ranked["rows"]} == world.ids("D")

    for headers in (world.s1, world.supervisor, world.machine):
        assert_problem(await client.get(f"{url}/index", headers=headers), 403, "forbidden")


async def test_worklist_by_principal(client: httpx.AsyncClient, world: World) -> None:
    url = f"{API}/campaigns/{world.campaign.id}/worklist"
    everything = await _json(client, url, world.admin)
    assert len(everything) == sum(SAMPLED.values())
    # s1 is assigned to D only: not C below it, not anything elsewhere.
    mine = await _json(client, url, world.s1)
    assert sorted(u["dossier_code"] for u in mine) == ["D-0", "D-1"]
    stranger = await _json(client, f"{API}/campaigns/{world.old.id}/worklist", world.admin)
    assert stranger == []
    assert_problem(
        await client.get(f"{API}/campaigns/{world.old.id}/worklist", headers=world.s1),
        404,
        "not_found",
    )
    for headers in (world.manager, world.supervisor):
        assert_problem(await client.get(url, headers=headers), 403, "forbidden")


async def test_surveyor_assignments_by_principal(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    elsewhere = await make_user(session, Role.surveyor)
    everywhere = await make_user(session, Role.surveyor)
    session.add(
        CampaignSurveyor(
            campaign_id=world.campaign.id, user_id=elsewhere.id, agency_id=world.agencies["OD"].id
        )
    )
    session.add(CampaignSurveyor(campaign_id=world.campaign.id, user_id=everywhere.id))
    await session.flush()
    url = f"{API}/campaigns/{world.campaign.id}/surveyors"
    assert len(await _json(client, url, world.admin)) == 4
    for headers in (world.manager, world.machine):
        listed = await _json(client, url, headers)
        # s1 and s2 (assigned to D) and the one covering the whole campaign; not OD's
        assert len(listed) == 3
        assert str(elsewhere.id) not in {a["user_id"] for a in listed}


async def test_reports_by_principal(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    url = f"{API}/campaigns/{world.campaign.id}"
    closed = await client.post(f"{url}/transition", json={"to": "closed"}, headers=world.admin)
    assert closed.status_code == 200, closed.text
    published = await client.post(
        f"{url}/transition", json={"to": "published"}, headers=world.admin
    )
    assert published.status_code == 200, published.text
    for headers in (world.supervisor, world.machine, world.manager, world.analyst):
        body = await _json(client, f"{url}/reports", headers)
        assert len(body["items"]) == 1
    # A client registered for another campaign finds neither the campaign nor its report.
    bound, _ = await make_client(session, [Scope.reports_read])
    bound.campaign_id = world.old.id
    await session.flush()
    headers = bearer(settings, bound)
    report_id = (await _json(client, f"{url}/reports", world.admin))["items"][0]["id"]
    assert_problem(await client.get(f"{url}/reports", headers=headers), 404, "not_found")
    assert_problem(
        await client.get(f"{API}/reports/{report_id}", headers=headers), 404, "not_found"
    )


async def test_what_an_anonymous_caller_sees(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    """No token: nothing under /api/v1; under /public/v1 the public reports only, figures only."""
    campaign_url = f"{API}/campaigns/{world.campaign.id}"
    for url in (
        f"{API}/agencies",
        f"{API}/campaigns",
        f"{API}/submissions",
        f"{campaign_url}/index",
        f"{campaign_url}/reports",
        f"{campaign_url}/progress",
        f"{API}/audit-events",
        f"{API}/plans",
        f"{API}/dissemination-records",
    ):
        assert_problem(await client.get(url), 401, "unauthorized")
    # Nothing is public before publishing (the campaign is open).
    before = (await _json(client, "/public/v1/reports", {}))["items"]
    admin = user_principal(await make_user(session, Role.admin))
    await campaigns.transition(session, admin, world.campaign.id, CampaignState.closed)
    report = await campaigns.publish(session, admin, world.campaign.id, "Công bố")
    # The campaign covers the whole province P: public by default.
    after = (await _json(client, "/public/v1/reports", {}))["items"]
    assert {r["id"] for r in after} - {r["id"] for r in before} == {str(report.id)}
    assert not any(r["campaign"]["id"] == str(world.old.id) for r in after)
    public = await client.get(f"/public/v1/reports/{report.id}")
    assert public.status_code == 200
    shown = public.text
    # Figures only: no form, no sampled dossier, no surveyor, no contact.
    every_form = [*world.s1_forms, world.s2_form, *(f for fs in world.forms.values() for f in fs)]
    assert not any(str(f) in shown for f in every_form)
    assert "D-0" not in shown
    assert '"items"' not in shown
    assert world.ids(*world.agencies) >= {c["key"] for c in public.json()["breakdowns"]["agency"]}
    # The staff API still wants a token for the same report.
    assert_problem(await client.get(f"{API}/reports/{report.id}"), 401, "unauthorized")
    assert_problem(
        await client.post(f"{API}/reports/{report.id}/publicity", json={"is_public": False}),
        401,
        "unauthorized",
    )
    # Made private: gone from every public read.
    hidden = await client.post(
        f"{API}/reports/{report.id}/publicity", json={"is_public": False}, headers=world.admin
    )
    assert hidden.status_code == 200, hidden.text
    for suffix in ("", "/export.csv", "/export.xlsx", "/agencies"):
        assert_problem(
            await client.get(f"/public/v1/reports/{report.id}{suffix}"), 404, "not_found"
        )
    assert str(report.id) not in {
        r["id"] for r in (await _json(client, "/public/v1/reports", {}))["items"]
    }


# ---- writes --------------------------------------------------------------------------------------


def _submission(agency: Agency, procedure: Procedure) -> dict[str, Any]:
    return {
        "submission_id": str(uuid.uuid4()),
        "agency_code": agency.code,
        "procedure_code": procedure.code,
        "channel": "kiosk",
        "answers": dict(GOOD),
    }


async def test_writes_by_an_agency_bound_client(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    url = f"{API}/campaigns/{world.campaign.id}/submissions"
    inside = await client.post(
        url, json=_submission(world.agencies["C"], world.procedure), headers=world.machine
    )
    assert inside.status_code == 201, inside.text
    outside = await client.post(
        url, json=_submission(world.agencies["OD"], world.procedure), headers=world.machine
    )
    assert error_codes(assert_problem(outside, 422, "invalid")) == [
        ("/body/agency_code", "out_of_scope")
    ]
    stored = await session.scalar(
        sa.select(sa.func.count())
        .select_from(Submission)
        .where(
            col(Submission.campaign_id) == world.campaign.id,
            col(Submission.agency_id) == world.agencies["OD"].id,
        )
    )
    assert stored == KIOSK_FORMS["OD"]

    event = {"procedure_code": world.procedure.code, "returned_at": "2020-05-01T08:00:00+07:00"}
    own = await client.post(
        f"{API}/dossiers",
        json={**event, "code": "HS-C-1", "agency_code": world.agencies["C"].code},
        headers=world.machine,
    )
    assert own.status_code == 201, own.text
    foreign = await client.post(
        f"{API}/dossiers",
        json={**event, "code": "HS-OD-1", "agency_code": world.agencies["OD"].code},
        headers=world.machine,
    )
    assert [p for p, _ in error_codes(assert_problem(foreign, 422, "invalid"))] == [
        "/body/agency_code"
    ]
    assert (await client.get(f"{API}/dossiers/HS-C-1", headers=world.machine)).status_code == 200
    missing = await client.get(f"{API}/dossiers/HS-OD-1", headers=world.admin)
    assert_problem(missing, 404, "not_found")


async def test_writes_by_a_surveyor(client: httpx.AsyncClient, world: World) -> None:
    url = f"{API}/campaigns/{world.campaign.id}/submissions"
    assigned = _submission(world.agencies["D"], world.procedure)
    created = await client.post(url, json=assigned, headers=world.s1)
    assert created.status_code == 201, created.text
    assert len(await _form_ids(client, world.s1)) == 3  # the new one is theirs to read
    # C lies below D, but the assignment names D itself.
    for key in ("C", "OD"):
        refused = await client.post(
            url, json=_submission(world.agencies[key], world.procedure), headers=world.s1
        )
        assert error_codes(assert_problem(refused, 422, "invalid")) == [
            ("/body/agency_code", "out_of_scope")
        ]
    # another surveyor's form cannot be corrected, nor one of a campaign they left
    for other in (world.s2_form, world.old_form):
        response = await client.put(
            f"{API}/submissions/{other}", json={"answers": dict(GOOD)}, headers=world.s1
        )
        assert_problem(response, 404, "not_found")
    elsewhere = await client.post(
        f"{API}/campaigns/{world.old.id}/submissions", json=assigned, headers=world.s1
    )
    assert_problem(elsewhere, 404, "not_found")


async def test_managers_and_supervisors_do_not_write(
    client: httpx.AsyncClient, world: World
) -> None:
    url = f"{API}/campaigns/{world.campaign.id}"
    for headers in (world.manager, world.supervisor):
        for method, path, body in (
            ("PUT", f"{url}/strata", {"strata": []}),
            ("POST", f"{url}/frame", {"units": []}),
            ("POST", f"{url}/submissions", _submission(world.agencies["D"], world.procedure)),
            ("POST", f"{url}/transition", {"to": "closed"}),
        ):
            response = await client.request(method, path, json=body, headers=headers)
            assert_problem(response, 403, "forbidden")


# ---- the holes -----------------------------------------------------------------------------------


def _unit(code: str, agency: Agency, procedure: Procedure, **extra: str) -> dict[str, str]:
    return {
        "dossier_code": code,
        "procedure_code": procedure.code,
        "agency_code": agency.code,
        "returned_on": "2020-05-01",
        **extra,
    }


async def test_hole_2_frame_import_across_agencies_is_refused_per_unit(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    url = f"{API}/campaigns/{world.campaign.id}/frame"
    od, c = world.agencies["OD"], world.agencies["C"]
    # The other agency's unit, with its contact, as its own agency imported it.
    seeded = await client.post(
        url,
        json={"units": [_unit("HS-OD-9", od, world.procedure, contact_phone="0912000000")]},
        headers=world.admin,
    )
    assert seeded.status_code == 201, seeded.text

    response = await client.post(
        url,
        json={
            "units": [
                _unit("HS-C-1", c, world.procedure),
                _unit("HS-NEW-OD", od, world.procedure),  # a new unit for another agency
                # another agency's unit moved into the client's own, its contact overwritten
                _unit("HS-OD-9", c, world.procedure, contact_phone="0987654321"),
            ]
        },
        headers=world.machine,
    )
    assert set(error_codes(assert_problem(response, 422, "import_rejected"))) == {
        ("/units/1/agency_code", "out_of_scope"),
        ("/units/2/dossier_code", "out_of_scope"),
    }
    unit = await session.scalar(
        sa.select(FrameUnit)
        .where(
            col(FrameUnit.campaign_id) == world.campaign.id,
            col(FrameUnit.dossier_code) == "HS-OD-9",
        )
        .execution_options(populate_existing=True)
    )
    assert unit is not None
    assert unit.agency_id == od.id
    phone = await session.scalar(
        sa.select(col(FrameContact.phone)).where(col(FrameContact.frame_unit_id) == unit.id)
    )
    assert phone == "0912000000"
    created = await session.scalar(
        sa.select(sa.func.count())
        .select_from(FrameUnit)
        .where(
            col(FrameUnit.campaign_id) == world.campaign.id,
            col(FrameUnit.dossier_code).in_(["HS-C-1", "HS-NEW-OD"]),
        )
    )
    assert created == 0


async def test_hole_2_frame_import_lists_only_the_clients_strata(
    client: httpx.AsyncClient, world: World
) -> None:
    url = f"{API}/campaigns/{world.campaign.id}/frame"
    c = world.agencies["C"]
    response = await client.post(
        url, json={"units": [_unit("HS-C-1", c, world.procedure)]}, headers=world.machine
    )
    assert response.status_code == 201, response.text
    summary = response.json()
    assert summary["created"] == 1
    assert {s["agency_id"] for s in summary["strata"]} == world.ids("D", "C")
    # the admin's answer to the same import lists every agency's strata
    again = await client.post(
        url, json={"units": [_unit("HS-C-1", c, world.procedure)]}, headers=world.admin
    )
    assert {s["agency_id"] for s in again.json()["strata"]} == world.ids(*world.agencies)


async def test_hole_3_strata_are_limited_to_the_callers_subtree(
    client: httpx.AsyncClient, world: World
) -> None:
    url = f"{API}/campaigns/{world.campaign.id}/strata"
    for headers in (world.manager, world.machine):
        strata = await _json(client, url, headers)
        assert {s["agency_id"] for s in strata} == world.ids("D", "C")
        assert sum(s["frame_size"] for s in strata) == 200
    for headers in (world.admin, world.supervisor, world.s1):
        strata = await _json(client, url, headers)
        assert {s["agency_id"] for s in strata} == world.ids(*world.agencies)


@pytest.mark.parametrize(("key", "expected"), [("D", D_SUBTREE_FORMS), ("C", 3), ("OD", 0)])
async def test_hole_4_submissions_filtered_by_own_district_or_commune(
    client: httpx.AsyncClient, world: World, key: str, expected: int
) -> None:
    params = {"agency_id": str(world.agencies[key].id), "campaign_id": str(world.campaign.id)}
    listed = await _form_ids(client, world.manager, **params)
    assert len(listed) == expected
    exported = await _exported(client, world.manager, **params)
    assert len(exported) == expected
    inside = {"D": ("D", "C"), "C": ("C",), "OD": ()}[key]
    assert {row["agency_code"] for row in exported} == {world.agencies[k].code for k in inside}


async def test_hole_5_surveyor_reads_and_lists_only_their_own_forms(
    client: httpx.AsyncClient, world: World
) -> None:
    listed = await _form_ids(client, world.s1, campaign_id=str(world.campaign.id))
    assert sorted(listed) == sorted(map(str, world.s1_forms))
    for form_id in world.s1_forms:
        got = await _json(client, f"{API}/submissions/{form_id}", world.s1)
        assert got["surveyor_id"] is not None
        versions = await _json(client, f"{API}/submissions/{form_id}/versions", world.s1)
        assert versions == []
    # Not another surveyor's form, not a kiosk form, not a form of a campaign they left.
    for other in (world.s2_form, world.forms["D"][0], world.old_form):
        response = await client.get(f"{API}/submissions/{other}", headers=world.s1)
        assert_problem(response, 404, "not_found")
    assert await _form_ids(client, world.s1, campaign_id=str(world.old.id)) == []
    assert {r["id"] for r in await _exported(client, world.s1)} == set(map(str, world.s1_forms))
    assert await _form_ids(client, world.s2) == [str(world.s2_form)]
    # Reading is not reviewing.
    response = await client.post(
        f"{API}/submissions/{world.s1_forms[0]}/review",
        json={"state": "valid"},
        headers=world.s1,
    )
    assert_problem(response, 403, "forbidden")


async def test_hole_6_analysts_read_the_audit_log_and_review_forms(
    client: httpx.AsyncClient, world: World
) -> None:
    form_id = world.forms["C"][0]
    flagged = await client.post(
        f"{API}/submissions/{form_id}/review",
        json={"state": "flagged", "reason": "Trả lời mâu thuẫn"},
        headers=world.analyst,
    )
    assert flagged.status_code == 200, flagged.text
    assert flagged.json()["state"] == "flagged"
    log = await _json(
        client, f"{API}/audit-events", world.analyst, object_id=str(form_id), limit=10
    )
    assert [e["action"] for e in log["items"]] == ["submission.review"]
    assert log["items"][0]["summary"]["reason"] == "Trả lời mâu thuẫn"
    for headers in (world.manager, world.supervisor, world.s1):
        assert_problem(await client.get(f"{API}/audit-events", headers=headers), 403, "forbidden")
    # Administration stays with admins.
    assert_problem(await client.get(f"{API}/users", headers=world.analyst), 403, "forbidden")


# ---- publishing ----------------------------------------------------------------------------------


async def test_publishing_in_the_campaigns_service_takes_the_snapshot(
    session: AsyncSession, world: World
) -> None:
    admin = user_principal(await make_user(session, Role.admin))
    await campaigns.transition(session, admin, world.campaign.id, CampaignState.closed)
    published = await campaigns.transition(
        session, admin, world.campaign.id, CampaignState.published, "Công bố"
    )
    assert published.state == CampaignState.published
    reports = (
        await session.scalars(sa.select(Report).where(col(Report.campaign_id) == world.campaign.id))
    ).all()
    assert [(r.version, r.forms_counted) for r in reports] == [(1, ALL_FORMS)]


# ---- the README's matrix -------------------------------------------------------------------------


def test_the_readme_matrix_is_the_role_scope_map() -> None:
    """The "Roles and scopes" table in the README says exactly what ROLE_SCOPES grants."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Roles and scopes", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    header = next(line for line in section.splitlines() if line.startswith("| scope |"))
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    assert columns == [r.value for r in Role] + ["machine client"]
    documented: dict[str, set[str]] = {c: set() for c in columns}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        scope = cells[0].strip("`")
        for column, cell in zip(columns, cells[1:], strict=True):
            if cell:
                documented[column].add(scope)
    for role in Role:
        assert documented[role.value] == {s.value for s in ROLE_SCOPES[role]}, role
    assert documented["machine client"] == {s.value for s in CLIENT_SCOPES}
    assert {cells.split("|")[1].strip().strip("`") for cells in rows} == {s.value for s in Scope}
