"""Sectors, procedures and the sectors each agency handles."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models.identity import Role
from tests.factories import (
    bearer,
    make_agency,
    make_procedure,
    make_sector,
    make_user,
    unique,
)
from tests.helpers.problems import assert_problem

API = "/api/v1"


async def test_sector_and_procedure_crud_and_search(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = bearer(settings, await make_user(session, Role.admin))
    await session.commit()
    code = unique("ho-tich-")
    created = await client.post(
        f"{API}/sectors",
        json={"code": code, "name_vi": "Ho\u0302\u0323 ti\u0323ch", "name_en": "Civil status"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    sector = created.json()
    assert sector["name_vi"] == "Hộ tịch"
    duplicate = await client.post(
        f"{API}/sectors", json={"code": code, "name_vi": "Khác"}, headers=admin
    )
    assert_problem(duplicate, 409, "sector_code_taken")

    proc_code = unique("1.")
    procedure = await client.post(
        f"{API}/procedures",
        json={
            "code": proc_code,
            "name": "Thủ tục đăng ký khai sinh",
            "sector_id": sector["id"],
            "level": "commune",
        },
        headers=admin,
    )
    assert procedure.status_code == 201, procedure.text
    bad_level = await client.post(
        f"{API}/procedures",
        json={"code": unique("1."), "name": "X", "sector_id": sector["id"], "level": "galaxy"},
        headers=admin,
    )
    body = assert_problem(bad_level, 422, "invalid")
    assert body["errors"][0]["pointer"] == "/body/level"  # type: ignore[index]

    found = await client.get(
        f"{API}/procedures",
        params={"q": "dang ky khai sinh", "sector": sector["id"]},
        headers=admin,
    )
    assert [p["code"] for p in found.json()["items"]] == [proc_code]
    other = await client.get(
        f"{API}/procedures", params={"q": "khai tu", "sector": sector["id"]}, headers=admin
    )
    assert other.json()["items"] == []

    patched = await client.patch(
        f"{API}/procedures/{procedure.json()['id']}", json={"level": "district"}, headers=admin
    )
    assert patched.json()["level"] == "district"
    renamed = await client.patch(
        f"{API}/sectors/{sector['id']}", json={"name_vi": "Hộ tịch mới"}, headers=admin
    )
    assert renamed.json()["name_vi"] == "Hộ tịch mới"
    sectors = await client.get(f"{API}/sectors", params={"q": "ho tich moi"}, headers=admin)
    assert [s["id"] for s in sectors.json()["items"]] == [sector["id"]]

    one = await client.get(f"{API}/sectors/{sector['id']}", headers=admin)
    cached = await client.get(
        f"{API}/sectors/{sector['id']}", headers={**admin, "If-None-Match": one.headers["etag"]}
    )
    assert cached.status_code == 304


async def test_replacing_an_agency_s_sectors(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = bearer(settings, await make_user(session, Role.admin))
    agency = await make_agency(session)
    a, b, c = [await make_sector(session) for _ in range(3)]
    agency_id, ids = agency.id, [str(a.id), str(b.id), str(c.id)]
    await session.commit()
    url = f"{API}/agencies/{agency_id}/sectors"

    first = await client.put(url, json={"sector_ids": ids[:2]}, headers=admin)
    assert first.status_code == 200, first.text
    assert {s["id"] for s in first.json()["items"]} == set(ids[:2])
    second = await client.put(url, json={"sector_ids": ids[1:]}, headers=admin)
    assert {s["id"] for s in second.json()["items"]} == set(ids[1:])
    listed = await client.get(url, headers=admin)
    assert {s["id"] for s in listed.json()["items"]} == set(ids[1:])

    unknown = await client.put(
        url, json={"sector_ids": [ids[0], "00000000-0000-0000-0000-000000000009"]}, headers=admin
    )
    body = assert_problem(unknown, 422, "invalid")
    assert body["errors"][0]["pointer"] == "/body/sector_ids/1"  # type: ignore[index]
    emptied = await client.put(url, json={"sector_ids": []}, headers=admin)
    assert emptied.json()["items"] == []


async def test_401_without_token(client: httpx.AsyncClient, session: AsyncSession) -> None:
    sector = await make_sector(session)
    sector_id = sector.id
    await session.commit()
    for method, path in [
        ("GET", f"{API}/sectors"),
        ("GET", f"{API}/sectors/{sector_id}"),
        ("GET", f"{API}/procedures"),
        ("POST", f"{API}/sectors"),
        ("PATCH", f"{API}/sectors/{sector_id}"),
        ("POST", f"{API}/procedures"),
    ]:
        assert_problem(await client.request(method, path, json={}), 401, "unauthorized")


@pytest.mark.parametrize("role", [Role.supervisor, Role.surveyor, Role.agency_manager])
async def test_403_for_roles_without_the_write_scope(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, role: Role
) -> None:
    agency = await make_agency(session)
    headers = bearer(
        settings,
        await make_user(session, role, agency=agency if role is Role.agency_manager else None),
    )
    sector = await make_sector(session)
    procedure = await make_procedure(session, sector)
    sector_id, procedure_id, agency_id = sector.id, procedure.id, agency.id
    await session.commit()
    assert (await client.get(f"{API}/sectors/{sector_id}", headers=headers)).status_code == 200
    for method, path, body in [
        ("POST", f"{API}/sectors", {"code": unique("s-"), "name_vi": "Mới"}),
        ("PATCH", f"{API}/sectors/{sector_id}", {"name_vi": "Đổi"}),
        ("PATCH", f"{API}/procedures/{procedure_id}", {"name": "Đổi"}),
        ("PUT", f"{API}/agencies/{agency_id}/sectors", {"sector_ids": []}),
    ]:
        response = await client.request(method, path, json=body, headers=headers)
        assert_problem(response, 403, "forbidden")


async def test_404_for_another_agency_s_sectors_and_unknown_objects(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    mine = await make_agency(session)
    theirs = await make_agency(session)
    manager = bearer(settings, await make_user(session, Role.agency_manager, agency=mine))
    mine_id, theirs_id = mine.id, theirs.id
    await session.commit()
    assert (
        await client.get(f"{API}/agencies/{mine_id}/sectors", headers=manager)
    ).status_code == 200
    assert_problem(
        await client.get(f"{API}/agencies/{theirs_id}/sectors", headers=manager), 404, "not_found"
    )
    missing = "00000000-0000-0000-0000-00000000beef"
    for path in (f"{API}/sectors/{missing}", f"{API}/procedures/{missing}"):
        assert_problem(await client.get(path, headers=manager), 404, "not_found")
