"""The sampling frame, the stratified sample, surveyor assignments and the worklist."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.agency import Agency
from app.models.audit import AuditEvent
from app.models.campaign import (
    Campaign,
    CampaignSector,
    CampaignState,
    FrameContact,
    FrameUnit,
    Stratum,
)
from app.models.catalogue import Procedure, Sector
from app.models.identity import Role, Scope
from app.services.sampling import draw, stratum_seed
from tests.factories import (
    bearer,
    make_agency,
    make_campaign,
    make_client,
    make_procedure,
    make_sector,
    make_user,
)
from tests.helpers.problems import assert_problem

API = "/api/v1/campaigns"
BOM = b"\xef\xbb\xbf"


@dataclass
class World:
    campaign: Campaign
    a1: Agency
    a2: Agency
    outside: Agency
    sector: Sector
    other_sector: Sector
    p1: Procedure
    p2: Procedure
    p_other: Procedure
    admin: dict[str, str]


@pytest.fixture
async def world(session: AsyncSession, settings: Settings) -> World:
    # Codes chosen so that a2 sorts before a1: the worklist must order by code, not by creation.
    tag = uuid.uuid4().hex[:6].upper()
    a1 = await make_agency(session, code=f"Z-{tag}", name="Sở Tư pháp")
    a2 = await make_agency(session, code=f"B-{tag}", name="UBND xã Thái Long")
    outside = await make_agency(session)
    sector = await make_sector(session, name_vi="Hộ tịch")
    other_sector = await make_sector(session)
    p1 = await make_procedure(session, sector, name="Đăng ký khai sinh")
    p2 = await make_procedure(session, sector)
    p_other = await make_procedure(session, other_sector)
    campaign = await make_campaign(session, agencies=[a1, a2])
    admin = bearer(settings, await make_user(session, Role.admin))
    return World(campaign, a1, a2, outside, sector, other_sector, p1, p2, p_other, admin)


def unit(
    code: str, agency: Agency, procedure: Procedure, returned_on: str = "2020-05-01", **extra: str
) -> dict[str, Any]:
    return {
        "dossier_code": code,
        "procedure_code": procedure.code,
        "agency_code": agency.code,
        "returned_on": returned_on,
        **extra,
    }


async def frame_units(session: AsyncSession, campaign: Campaign) -> list[FrameUnit]:
    return list(
        (
            await session.scalars(
                sa.select(FrameUnit)
                .where(col(FrameUnit.campaign_id) == campaign.id)
                .order_by(col(FrameUnit.dossier_code))
                .execution_options(populate_existing=True)
            )
        ).all()
    )


async def strata_sizes(
    session: AsyncSession, campaign: Campaign
) -> dict[tuple[uuid.UUID, uuid.UUID | None], int | None]:
    rows = await session.execute(
        sa.select(col(Stratum.agency_id), col(Stratum.sector_id), col(Stratum.frame_size)).where(
            col(Stratum.campaign_id) == campaign.id
        )
    )
    return {(a, s): n for a, s, n in rows.all()}


async def import_json(
    client: httpx.AsyncClient, world: World, units: list[dict[str, Any]]
) -> httpx.Response:
    return await client.post(
        f"{API}/{world.campaign.id}/frame", json={"units": units}, headers=world.admin
    )


# ---- the frame ----------------------------------------------------------------------------------


async def test_json_import_creates_agency_strata_with_frame_sizes(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    units = [unit(f"HS-{i}", world.a1, world.p1) for i in range(3)] + [
        unit(f"HS-{i}", world.a2, world.p2) for i in range(3, 5)
    ]
    response = await import_json(client, world, units)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["received"], body["created"], body["updated"]) == (5, 5, 0)
    expected = {(world.a1.id, None): 3, (world.a2.id, None): 2}
    assert await strata_sizes(session, world.campaign) == expected
    assert {(uuid.UUID(s["agency_id"]), s["frame_size"]) for s in body["strata"]} == {
        (world.a1.id, 3),
        (world.a2.id, 2),
    }
    stored = await frame_units(session, world.campaign)
    assert [u.dossier_code for u in stored] == [f"HS-{i}" for i in range(5)]
    assert all(u.stratum_id is not None and not u.in_sample for u in stored)
    event = await session.scalar(
        sa.select(AuditEvent).where(
            col(AuditEvent.action) == "campaign.frame_import",
            col(AuditEvent.object_id) == str(world.campaign.id),
        )
    )
    assert event is not None
    assert (event.summary["created"], event.summary["updated"]) == (5, 0)


async def test_sectors_in_scope_make_agency_by_sector_strata(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    session.add(CampaignSector(campaign_id=world.campaign.id, sector_id=world.sector.id))
    await session.flush()
    outside_sector = [unit("HS-X", world.a1, world.p_other)]
    response = await import_json(client, world, [unit("HS-1", world.a1, world.p1), *outside_sector])
    problem = assert_problem(response, 422, "import_rejected")
    assert problem["errors"] == [
        {
            "pointer": "/units/1/procedure_code",
            "code": "out_of_scope",
            "detail": "the procedure's sector is not in the campaign's scope",
        }
    ]
    session.add(CampaignSector(campaign_id=world.campaign.id, sector_id=world.other_sector.id))
    await session.flush()
    units = [
        unit("HS-1", world.a1, world.p1),
        unit("HS-2", world.a1, world.p2),
        unit("HS-3", world.a1, world.p_other),
        unit("HS-4", world.a2, world.p1),
    ]
    response = await import_json(client, world, units)
    assert response.status_code == 201, response.text
    assert await strata_sizes(session, world.campaign) == {
        (world.a1.id, world.sector.id): 2,
        (world.a1.id, world.other_sector.id): 1,
        (world.a2.id, world.sector.id): 1,
    }


Mutation = Callable[[list[dict[str, Any]], World], None]


def _set(field: str, value: Callable[[World], str]) -> Mutation:
    def mutate(units: list[dict[str, Any]], world: World) -> None:
        units[1][field] = value(world)

    return mutate


def _drop(field: str) -> Mutation:
    def mutate(units: list[dict[str, Any]], world: World) -> None:
        del units[1][field]

    return mutate


BAD_ROWS: list[tuple[str, Mutation, str, str]] = [
    ("unknown agency", _set("agency_code", lambda w: "NO-SUCH-AGENCY"), "agency_code", "unknown"),
    (
        "agency outside scope",
        _set("agency_code", lambda w: w.outside.code),
        "agency_code",
        "out_of_scope",
    ),
    (
        "unknown procedure",
        _set("procedure_code", lambda w: "0.000000"),
        "procedure_code",
        "unknown",
    ),
    (
        "date after the period",
        _set("returned_on", lambda w: "2020-11-01"),
        "returned_on",
        "out_of_period",
    ),
    (
        "date before the period",
        _set("returned_on", lambda w: "2019-12-31"),
        "returned_on",
        "out_of_period",
    ),
    ("not a date", _set("returned_on", lambda w: "01/05/2020"), "returned_on", "bad_date"),
    (
        "duplicate dossier code",
        _set("dossier_code", lambda w: "HS-0"),
        "dossier_code",
        "duplicate_dossier",
    ),
    ("missing returned_on", _drop("returned_on"), "returned_on", "missing"),
    ("missing dossier_code", _drop("dossier_code"), "dossier_code", "missing"),
]


@pytest.mark.parametrize(
    ("case", "mutate", "field", "code"), BAD_ROWS, ids=[b[0] for b in BAD_ROWS]
)
async def test_one_bad_json_unit_rejects_the_import(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    case: str,
    mutate: Mutation,
    field: str,
    code: str,
) -> None:
    units = [unit(f"HS-{i}", world.a1, world.p1, contact_phone="0912000000") for i in range(3)]
    mutate(units, world)
    problem = assert_problem(await import_json(client, world, units), 422, "import_rejected")
    errors = problem["errors"]
    assert isinstance(errors, list)
    assert len(errors) == 1, errors
    assert errors[0]["pointer"] == f"/units/1/{field}"
    assert errors[0]["code"] == code
    assert await frame_units(session, world.campaign) == []
    assert await strata_sizes(session, world.campaign) == {}
    contacts = await session.scalar(
        sa.select(sa.func.count())
        .select_from(FrameContact)
        .join(FrameUnit, col(FrameUnit.id) == col(FrameContact.frame_unit_id))
        .where(col(FrameUnit.campaign_id) == world.campaign.id)
    )
    assert contacts == 0


def csv_bytes(rows: list[dict[str, Any]], columns: list[str], *, bom: bool = True) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return (BOM if bom else b"") + out.getvalue().encode("utf-8")


COLUMNS = [
    "dossier_code",
    "procedure_code",
    "agency_code",
    "returned_on",
    "contact_name",
    "contact_phone",
    "contact_address",
]


async def test_bad_csv_row_is_named_by_row_number(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    rows = [unit("HS-1", world.a1, world.p1), unit("HS-2", world.outside, world.p1)]
    data = csv_bytes(rows, COLUMNS, bom=False)
    response = await client.post(
        f"{API}/{world.campaign.id}/frame",
        files={"file": ("frame.csv", data, "text/csv")},
        headers=world.admin,
    )
    problem = assert_problem(response, 422, "import_rejected")
    assert problem["errors"] == [
        {
            "pointer": "/rows/3/agency_code",
            "code": "out_of_scope",
            "detail": "the agency is not in the campaign's scope",
        }
    ]
    assert await frame_units(session, world.campaign) == []


async def test_reimport_upserts_by_dossier_code(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    first = [
        unit("HS-1", world.a1, world.p1, contact_name="Lê Văn Một"),
        unit("HS-2", world.a1, world.p1, contact_name="Trần Thị Hai"),
    ]
    assert (await import_json(client, world, first)).status_code == 201
    moved = [
        unit("HS-2", world.a2, world.p2, "2020-06-02", contact_name="Trần Thị Hai Mới"),
        unit("HS-3", world.a2, world.p1),
    ]
    response = await import_json(client, world, moved)
    assert response.status_code == 201, response.text
    assert {k: response.json()[k] for k in ("received", "created", "updated")} == {
        "received": 2,
        "created": 1,
        "updated": 1,
    }
    assert await strata_sizes(session, world.campaign) == {
        (world.a1.id, None): 1,
        (world.a2.id, None): 2,
    }
    stored = {u.dossier_code: u for u in await frame_units(session, world.campaign)}
    assert sorted(stored) == ["HS-1", "HS-2", "HS-3"]
    assert stored["HS-2"].agency_id == world.a2.id
    assert stored["HS-2"].procedure_id == world.p2.id
    assert stored["HS-2"].returned_on.isoformat() == "2020-06-02"
    names = dict(
        (
            await session.execute(
                sa.select(col(FrameUnit.dossier_code), col(FrameContact.name))
                .join(FrameContact, col(FrameContact.frame_unit_id) == col(FrameUnit.id))
                .where(col(FrameUnit.campaign_id) == world.campaign.id)
                .execution_options(populate_existing=True)
            )
        ).all()
    )
    assert names == {"HS-1": "Lê Văn Một", "HS-2": "Trần Thị Hai Mới"}
    again = await import_json(client, world, moved)
    assert again.status_code == 200, again.text
    assert (again.json()["created"], again.json()["updated"]) == (0, 2)


async def test_frame_import_refused_once_closed(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    world.campaign.state = CampaignState.closed
    await session.flush()
    response = await import_json(client, world, [unit("HS-1", world.a1, world.p1)])
    assert_problem(response, 409, "campaign_locked")


async def test_one_stop_client_imports_with_frame_write(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    one_stop, _ = await make_client(session, [Scope.frame_write])
    response = await client.post(
        f"{API}/{world.campaign.id}/frame",
        json={"units": [unit("HS-1", world.a1, world.p1)]},
        headers=bearer(settings, one_stop),
    )
    assert response.status_code == 201, response.text


# ---- the sample ---------------------------------------------------------------------------------


async def _set_targets(
    session: AsyncSession, campaign: Campaign, targets: dict[uuid.UUID, int]
) -> None:
    for agency_id, target in targets.items():
        await session.execute(
            sa.update(Stratum)
            .where(col(Stratum.campaign_id) == campaign.id, col(Stratum.agency_id) == agency_id)
            .values(target=target)
        )


async def _sampled(session: AsyncSession, campaign: Campaign) -> set[str]:
    return {u.dossier_code for u in await frame_units(session, campaign) if u.in_sample}


async def test_sample_is_repeatable_by_seed_and_sized_by_target(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    units = [unit(f"A-{i:03}", world.a1, world.p1) for i in range(40)]
    units += [unit(f"B-{i:03}", world.a2, world.p1) for i in range(3)]
    assert (await import_json(client, world, units)).status_code == 201
    await _set_targets(session, world.campaign, {world.a1.id: 10, world.a2.id: 5})
    url = f"{API}/{world.campaign.id}/sample"

    first = await client.post(url, json={"seed": "tq-2020"}, headers=world.admin)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["seed"] == "tq-2020"
    drawn = {uuid.UUID(s["agency_id"]): s["drawn"] for s in body["strata"]}
    assert drawn == {world.a1.id: 10, world.a2.id: 3}  # a2 has 3 units < its target 5: all
    assert body["drawn"] == 13
    sample_one = await _sampled(session, world.campaign)
    assert len(sample_one) == 13
    assert {c for c in sample_one if c.startswith("B-")} == {"B-000", "B-001", "B-002"}
    stratum_a1 = next(s for s in body["strata"] if s["agency_id"] == str(world.a1.id))
    expected_a1 = draw(
        [u["dossier_code"] for u in units[:40]],
        10,
        stratum_seed("tq-2020", stratum_a1["stratum_id"]),
    )
    assert sorted(c for c in sample_one if c.startswith("A-")) == expected_a1

    other = await client.post(url, json={"seed": "another-seed"}, headers=world.admin)
    assert other.status_code == 200
    sample_two = await _sampled(session, world.campaign)
    assert len(sample_two) == 13
    assert sample_two != sample_one

    again = await client.post(url, json={"seed": "tq-2020"}, headers=world.admin)
    assert again.status_code == 200
    assert await _sampled(session, world.campaign) == sample_one
    await session.refresh(world.campaign)
    assert world.campaign.sample_seed == "tq-2020"

    fresh = await client.post(url, json={}, headers=world.admin)
    assert fresh.status_code == 200
    seed = fresh.json()["seed"]
    assert len(seed) == 16
    assert int(seed, 16) >= 0
    await session.refresh(world.campaign)
    assert world.campaign.sample_seed == seed
    event = await session.scalar(
        sa.select(AuditEvent)
        .where(col(AuditEvent.action) == "campaign.sample")
        .order_by(col(AuditEvent.id).desc())
    )
    assert event is not None
    assert event.summary["seed"] == seed
    assert event.summary["drawn"] == 13


async def test_sample_refused_without_targets_or_when_closed(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    url = f"{API}/{world.campaign.id}/sample"
    assert_problem(await client.post(url, json={}, headers=world.admin), 409, "targets_missing")
    units = [unit("A-1", world.a1, world.p1), unit("B-1", world.a2, world.p1)]
    assert (await import_json(client, world, units)).status_code == 201
    await _set_targets(session, world.campaign, {world.a1.id: 1})
    response = await client.post(url, json={"seed": "x"}, headers=world.admin)
    assert_problem(response, 409, "targets_missing")
    assert await _sampled(session, world.campaign) == set()
    await _set_targets(session, world.campaign, {world.a2.id: 1})
    world.campaign.state = CampaignState.closed
    await session.flush()
    response = await client.post(url, json={"seed": "x"}, headers=world.admin)
    assert_problem(response, 409, "campaign_locked")


# ---- surveyors and the worklist -----------------------------------------------------------------


async def test_surveyor_assignments_are_checked_and_listed(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    surveyor = await make_user(session, Role.surveyor)
    analyst = await make_user(session, Role.analyst)
    url = f"{API}/{world.campaign.id}/surveyors"
    bad = {
        "assignments": [
            {"user_id": str(analyst.id)},
            {"user_id": str(uuid.uuid4())},
            {"user_id": str(surveyor.id), "agency_id": str(world.outside.id)},
        ]
    }
    problem = assert_problem(await client.put(url, json=bad, headers=world.admin), 422, "invalid")
    errors = problem["errors"]
    assert isinstance(errors, list)
    assert [(e["pointer"], e["code"]) for e in errors] == [
        ("/body/assignments/0/user_id", "not_surveyor"),
        ("/body/assignments/1/user_id", "unknown"),
        ("/body/assignments/2/agency_id", "out_of_scope"),
    ]
    good = {
        "assignments": [
            {"user_id": str(surveyor.id), "agency_id": str(world.a1.id)},
            {"user_id": str(surveyor.id), "agency_id": str(world.a2.id)},
        ]
    }
    response = await client.put(url, json=good, headers=world.admin)
    assert response.status_code == 200, response.text
    listed = (await client.get(url, headers=world.admin)).json()
    assert sorted((a["user_id"], a["agency_code"]) for a in listed) == sorted(
        [(str(surveyor.id), world.a1.code), (str(surveyor.id), world.a2.code)]
    )


async def _sampled_world(
    client: httpx.AsyncClient, session: AsyncSession, world: World, units: list[dict[str, Any]]
) -> None:
    assert (await import_json(client, world, units)).status_code == 201
    await session.execute(
        sa.update(Stratum)
        .where(col(Stratum.campaign_id) == world.campaign.id)
        .values(target=col(Stratum.frame_size))
    )
    response = await client.post(
        f"{API}/{world.campaign.id}/sample", json={"seed": "s"}, headers=world.admin
    )
    assert response.status_code == 200, response.text


async def test_csv_import_round_trips_into_the_worklist(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    rows = [
        unit(
            "HS-02",
            world.a1,
            world.p1,
            contact_name="Nguyễn Thị Hoà",
            contact_phone="0912345678",
            contact_address="Tổ 5, phường Minh Xuân",
        ),
        unit("HS-01", world.a1, world.p1, contact_name="Đặng Văn Ấn"),
        unit("HS-03", world.a2, world.p1, contact_address='Xóm Đồng Bèn, "Thái Long"; Tuyên Quang'),
    ]
    response = await client.post(
        f"{API}/{world.campaign.id}/frame",
        files={"file": ("khung mẫu.csv", csv_bytes(rows, COLUMNS), "text/csv")},
        headers=world.admin,
    )
    assert response.status_code == 201, response.text
    assert response.json()["created"] == 3
    await session.execute(
        sa.update(Stratum)
        .where(col(Stratum.campaign_id) == world.campaign.id)
        .values(target=col(Stratum.frame_size))
    )
    sample = await client.post(f"{API}/{world.campaign.id}/sample", json={}, headers=world.admin)
    assert sample.status_code == 200

    # Contact data lives only in frame_contacts.
    raw = (
        await session.execute(
            sa.text("SELECT * FROM frame_units WHERE campaign_id = :c"),
            {"c": world.campaign.id},
        )
    ).all()
    flat = " ".join(str(v) for row in raw for v in row)
    for needle in ("Hoà", "0912345678", "Minh Xuân", "Ấn", "Bèn"):
        assert needle not in flat

    url = f"{API}/{world.campaign.id}/worklist"
    items = (await client.get(url, headers=world.admin)).json()
    # a2's code sorts first; within an agency, by dossier code.
    assert [i["dossier_code"] for i in items] == ["HS-03", "HS-01", "HS-02"]
    by_code = {i["dossier_code"]: i for i in items}
    assert by_code["HS-02"]["contact_name"] == "Nguyễn Thị Hoà"
    assert by_code["HS-02"]["contact_phone"] == "0912345678"
    assert by_code["HS-01"]["contact_name"] == "Đặng Văn Ấn"
    assert by_code["HS-01"]["contact_phone"] is None
    assert by_code["HS-03"]["contact_address"] == 'Xóm Đồng Bèn, "Thái Long"; Tuyên Quang'
    assert by_code["HS-02"]["procedure_code"] == world.p1.code
    assert by_code["HS-02"]["procedure_name"] == "Đăng ký khai sinh"
    assert by_code["HS-02"]["agency_name"] == "Sở Tư pháp"
    assert set(by_code["HS-02"]) == {
        "frame_unit_id",
        "dossier_code",
        "procedure_code",
        "procedure_name",
        "agency_code",
        "agency_name",
        "returned_on",
        "contact_name",
        "contact_phone",
        "contact_address",
    }

    exported = await client.get(url, params={"format": "csv"}, headers=world.admin)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.content.startswith(BOM)
    parsed = list(csv.DictReader(io.StringIO(exported.content[3:].decode("utf-8"))))
    assert list(parsed[0]) == list(by_code["HS-02"])
    assert [r["dossier_code"] for r in parsed] == ["HS-03", "HS-01", "HS-02"]
    assert parsed[2]["contact_name"] == "Nguyễn Thị Hoà"
    assert parsed[2]["contact_address"] == "Tổ 5, phường Minh Xuân"
    assert parsed[0]["contact_address"] == 'Xóm Đồng Bèn, "Thái Long"; Tuyên Quang'
    assert parsed[1]["contact_phone"] == ""


async def test_worklist_is_limited_to_the_surveyors_agencies(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> None:
    units = [unit(f"A-{i}", world.a1, world.p1) for i in range(3)]
    units += [unit(f"B-{i}", world.a2, world.p1) for i in range(2)]
    await _sampled_world(client, session, world, units)
    one_agency = await make_user(session, Role.surveyor)
    whole = await make_user(session, Role.surveyor)
    unassigned = await make_user(session, Role.surveyor)
    supervisor = await make_user(session, Role.supervisor)
    assignments = {
        "assignments": [
            {"user_id": str(one_agency.id), "agency_id": str(world.a1.id)},
            {"user_id": str(whole.id), "agency_id": None},
        ]
    }
    put = await client.put(
        f"{API}/{world.campaign.id}/surveyors", json=assignments, headers=world.admin
    )
    assert put.status_code == 200, put.text
    url = f"{API}/{world.campaign.id}/worklist"

    async def codes(user_headers: dict[str, str], **params: str) -> list[str]:
        response = await client.get(url, params=params, headers=user_headers)
        assert response.status_code == 200, response.text
        return [i["dossier_code"] for i in response.json()]

    all_codes = ["B-0", "B-1", "A-0", "A-1", "A-2"]
    assert await codes(bearer(settings, one_agency)) == ["A-0", "A-1", "A-2"]
    assert await codes(bearer(settings, one_agency), agency_id=str(world.a2.id)) == []
    assert await codes(bearer(settings, whole)) == all_codes
    assert await codes(world.admin) == all_codes
    assert await codes(world.admin, agency_id=str(world.a2.id)) == ["B-0", "B-1"]
    assert_problem(await client.get(url, headers=bearer(settings, unassigned)), 404, "not_found")
    assert_problem(await client.get(url, headers=bearer(settings, supervisor)), 403, "forbidden")


async def test_worklist_after_archiving_has_no_contacts(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    units = [unit("A-1", world.a1, world.p1, contact_name="Hà Thị Xuân", contact_phone="0987")]
    await _sampled_world(client, session, world, units)
    url = f"{API}/{world.campaign.id}/worklist"
    before = (await client.get(url, headers=world.admin)).json()
    assert before[0]["contact_name"] == "Hà Thị Xuân"
    for state in ("open", "closed", "published", "archived"):
        moved = await client.post(
            f"{API}/{world.campaign.id}/transition", json={"to": state}, headers=world.admin
        )
        assert moved.status_code == 200, moved.text
    after = (await client.get(url, headers=world.admin)).json()
    assert [i["dossier_code"] for i in after] == ["A-1"]
    assert (after[0]["contact_name"], after[0]["contact_phone"], after[0]["contact_address"]) == (
        None,
        None,
        None,
    )


async def test_every_fieldwork_route_needs_a_token(client: httpx.AsyncClient, world: World) -> None:
    base = f"{API}/{world.campaign.id}"
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", f"{base}/frame", {"units": []}),
        ("POST", f"{base}/sample", {}),
        ("PUT", f"{base}/surveyors", {"assignments": []}),
        ("GET", f"{base}/surveyors", None),
        ("GET", f"{base}/worklist", None),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
