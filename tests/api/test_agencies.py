"""The agency tree: CRUD, cycles, retirement, dated maps, search, ETags and who sees what."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.agency import Agency, AgencyKind
from app.models.audit import AuditEvent
from app.models.identity import Role
from tests.factories import bearer, make_agency, make_user, role_headers, unique
from tests.helpers.problems import assert_problem

URL = "/api/v1/agencies"


def new_agency(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": unique("T.NEW.").upper(),
        "name": "Sở Tư pháp tỉnh Tuyên Quang",
        "short_name": "Sở Tư pháp",
        "kind": "department",
        "level": "department",
        "valid_from": "2008-01-01",
    }
    body.update(overrides)
    return body


async def test_create_get_and_update_an_agency(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    headers = await role_headers(session, settings)
    parent = await make_agency(session, level="province", kind=AgencyKind.people_committee)
    decomposed = "So\u031b\u0309 Ta\u0300i chi\u0301nh"  # "Sở Tài chính" in NFD
    await session.commit()  # keep the setup when a request fails
    created = await client.post(
        URL,
        json=new_agency(name=decomposed, parent_id=str(parent.id), admin_unit_code=" 08 "),
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "Sở Tài chính"
    assert body["admin_unit_code"] == "08"
    assert body["parent_id"] == str(parent.id)
    stored = await session.get(Agency, body["id"])
    assert stored is not None
    assert stored.search_name == "so tai chinh so tu phap"

    fetched = await client.get(f"{URL}/{body['id']}", headers=headers)
    assert fetched.status_code == 200
    assert fetched.json()["code"] == body["code"]

    patched = await client.patch(
        f"{URL}/{body['id']}", json={"short_name": "Sở Đông"}, headers=headers
    )
    assert patched.status_code == 200, patched.text
    await session.refresh(stored)
    assert stored.search_name == "so tai chinh so dong"
    actions = set(
        (
            await session.scalars(
                sa.select(col(AuditEvent.action)).where(col(AuditEvent.object_id) == body["id"])
            )
        ).all()
    )
    assert actions == {"agency.create", "agency.update"}


async def test_create_refuses_duplicate_code_unknown_level_and_bad_range(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    headers = await role_headers(session, settings)
    existing = await make_agency(session)
    await session.commit()  # keep the setup when a request fails
    assert_problem(
        await client.post(URL, json=new_agency(code=existing.code), headers=headers),
        409,
        "agency_code_taken",
    )
    body = assert_problem(
        await client.post(URL, json=new_agency(level="galaxy"), headers=headers),
        422,
        "invalid",
    )
    assert body["errors"][0]["pointer"] == "/body/level"  # type: ignore[index]
    assert_problem(
        await client.post(
            URL, json=new_agency(valid_from="2020-01-01", valid_to="2019-01-01"), headers=headers
        ),
        422,
        "validation_failed",
    )
    assert_problem(
        await client.post(URL, json=new_agency(name="Sở\x07 lỗi"), headers=headers),
        422,
        "validation_failed",
    )


@pytest.mark.parametrize("target", ["self", "child", "grandchild"])
async def test_patch_refuses_a_cycle(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, target: str
) -> None:
    headers = await role_headers(session, settings)
    root = await make_agency(session)
    child = await make_agency(session, parent=root)
    grandchild = await make_agency(session, parent=child)
    new_parent = {"self": root, "child": child, "grandchild": grandchild}[target]

    await session.commit()  # keep the setup when a request fails
    response = await client.patch(
        f"{URL}/{root.id}", json={"parent_id": str(new_parent.id)}, headers=headers
    )

    body = assert_problem(response, 409, "agency_cycle")
    assert body["errors"] == [
        {
            "pointer": "/body/parent_id",
            "code": "cycle",
            "detail": "would make the agency its own ancestor",
        }
    ]
    await session.refresh(root)
    assert root.parent_id is None


async def test_patch_moves_an_agency_to_another_parent(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    headers = await role_headers(session, settings)
    a = await make_agency(session)
    b = await make_agency(session)
    child = await make_agency(session, parent=a)
    await session.commit()  # keep the setup when a request fails
    moved = await client.patch(f"{URL}/{child.id}", json={"parent_id": str(b.id)}, headers=headers)
    assert moved.status_code == 200, moved.text
    assert moved.json()["parent_id"] == str(b.id)
    ancestors = await client.get(f"{URL}/{child.id}/ancestors", headers=headers)
    assert [x["id"] for x in ancestors.json()] == [str(b.id)]
    unknown = await client.patch(
        f"{URL}/{child.id}",
        json={"parent_id": "00000000-0000-0000-0000-000000000001"},
        headers=headers,
    )
    assert_problem(unknown, 422, "invalid")


async def test_retiring_an_agency_with_active_children_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    headers = await role_headers(session, settings)
    district = await make_agency(session, level="district", kind=AgencyKind.people_committee)
    open_child = await make_agency(session, parent=district, level="commune")
    await make_agency(session, parent=district, level="commune", valid_to=date(2025, 6, 30))
    successor = await make_agency(session, valid_from=date(2025, 7, 1))
    # read now: a refused request rolls the session back and expires loaded objects
    district_id, district_code = district.id, district.code
    open_id, open_code = open_child.id, open_child.code
    successor_id, successor_code = successor.id, successor.code
    await session.commit()  # keep the setup when a request fails

    refused = await client.post(
        f"{URL}/{district_id}/retire", json={"valid_to": "2025-06-30"}, headers=headers
    )
    body = assert_problem(refused, 409, "agency_has_active_children")
    assert body["active_children"] == [open_code]
    await session.refresh(district)
    assert district.valid_to is None

    await client.patch(f"{URL}/{open_id}", json={"valid_to": "2025-06-30"}, headers=headers)
    retired = await client.post(
        f"{URL}/{district_id}/retire",
        json={
            "valid_to": "2025-06-30",
            "reason": "Sáp nhập theo Nghị quyết 1684",
            "successors": [{"code": successor_code, "kind": "merged_into"}],
        },
        headers=headers,
    )
    assert retired.status_code == 200, retired.text
    assert retired.json()["valid_to"] == "2025-06-30"
    links = (await client.get(f"{URL}/{district_id}/successors", headers=headers)).json()
    assert links["predecessors"] == []
    assert [(x["successor_code"], x["kind"], x["effective_on"]) for x in links["successors"]] == [
        (successor_code, "merged_into", "2025-07-01")
    ]
    back = (await client.get(f"{URL}/{successor_id}/successors", headers=headers)).json()
    assert [x["predecessor_code"] for x in back["predecessors"]] == [district_code]


async def test_adding_successor_links(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    headers = await role_headers(session, settings)
    old = await make_agency(session, valid_to=date(2025, 2, 28))
    new = await make_agency(session, valid_from=date(2025, 3, 1))
    await session.commit()  # keep the setup when a request fails
    added = await client.post(
        f"{URL}/{old.id}/successors",
        json={"successors": [{"id": str(new.id), "kind": "renamed_to"}]},
        headers=headers,
    )
    assert added.status_code == 200, added.text
    assert added.json()["successors"][0]["effective_on"] == "2025-03-01"
    to_self = await client.post(
        f"{URL}/{old.id}/successors",
        json={"successors": [{"id": str(old.id), "kind": "renamed_to"}]},
        headers=headers,
    )
    body = assert_problem(to_self, 422, "invalid")
    assert body["errors"][0]["pointer"] == "/body/successors/0"  # type: ignore[index]


async def test_the_map_on_a_date_before_and_after_a_merger(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    headers = await role_headers(session, settings)
    province = await make_agency(session, level="province", kind=AgencyKind.people_committee)
    district = await make_agency(
        session, parent=province, level="district", valid_to=date(2025, 6, 30)
    )
    old_communes = [
        await make_agency(session, parent=district, level="commune", valid_to=date(2025, 6, 30))
        for _ in range(2)
    ]
    merged = await make_agency(
        session, parent=province, level="commune", valid_from=date(2025, 7, 1)
    )

    async def ids_on(day: str) -> set[str]:
        response = await client.get(
            f"{URL}/{province.id}/subtree", params={"valid_on": day}, headers=headers
        )
        assert response.status_code == 200, response.text
        return {a["id"] for a in response.json()}

    assert await ids_on("2020-06-01") == {
        str(province.id),
        str(district.id),
        *(str(c.id) for c in old_communes),
    }
    assert await ids_on("2025-08-01") == {str(province.id), str(merged.id)}
    everything = await client.get(f"{URL}/{province.id}/subtree", headers=headers)
    assert len(everything.json()) == 5

    listed = await client.get(
        URL, params={"parent_id": str(province.id), "valid_on": "2025-06-30"}, headers=headers
    )
    assert [a["id"] for a in listed.json()["items"]] == [str(district.id)]

    ancestors = await client.get(f"{URL}/{old_communes[0].id}/ancestors", headers=headers)
    assert [a["id"] for a in ancestors.json()] == [str(province.id), str(district.id)]


@pytest.mark.parametrize(
    ("query", "hit"),
    [
        ("son duong", True),
        ("SƠN DƯƠNG", True),
        ("dương", True),
        ("dong", False),
        ("so%n", False),
        ("_", False),
    ],
)
async def test_search_ignores_diacritics_and_case(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, query: str, hit: bool
) -> None:
    headers = await role_headers(session, settings)
    parent = await make_agency(session)
    son_duong = await make_agency(session, parent=parent, name="Ủy ban nhân dân huyện Sơn Dương")
    dong = await make_agency(session, parent=parent, name="Ủy ban nhân dân xã Đông Thọ")

    await session.commit()  # keep the setup when a request fails
    response = await client.get(
        URL, params={"q": query, "parent_id": str(parent.id)}, headers=headers
    )
    assert response.status_code == 200, response.text
    found = {a["id"] for a in response.json()["items"]}
    assert (str(son_duong.id) in found) is hit
    if query == "dong":
        assert found == {str(dong.id)}  # "Đông" folds to "dong", "Dương" to "duong"


async def test_list_pages_by_code_without_repeats(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    headers = await role_headers(session, settings)
    parent = await make_agency(session)
    children = [await make_agency(session, parent=parent) for _ in range(5)]
    await session.commit()  # keep the setup when a request fails
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"parent_id": str(parent.id), "limit": "2"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(URL, params=params, headers=headers)).json()
        seen += [a["code"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(c.code for c in children)
    assert_problem(
        await client.get(URL, params={"cursor": "garbage!"}, headers=headers), 422, "bad_cursor"
    )


async def test_reads_carry_an_etag_and_answer_304(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    headers = await role_headers(session, settings)
    agency = await make_agency(session)
    await session.commit()  # keep the setup when a request fails
    first = await client.get(f"{URL}/{agency.id}", headers=headers)
    etag = first.headers["etag"]
    assert etag.startswith('"')

    again = await client.get(f"{URL}/{agency.id}", headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    weak = await client.get(
        f"{URL}/{agency.id}", headers={**headers, "If-None-Match": f'"x", W/{etag}'}
    )
    assert weak.status_code == 304

    await client.patch(f"{URL}/{agency.id}", json={"name": "Sở đổi tên"}, headers=headers)
    changed = await client.get(f"{URL}/{agency.id}", headers={**headers, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag

    listing = await client.get(URL, params={"parent_id": str(agency.id)}, headers=headers)
    cached = await client.get(
        URL,
        params={"parent_id": str(agency.id)},
        headers={**headers, "If-None-Match": listing.headers["etag"]},
    )
    assert cached.status_code == 304


async def test_an_agency_manager_sees_its_subtree_and_nothing_else(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    province = await make_agency(session, level="province")
    district = await make_agency(session, parent=province, level="district")
    commune = await make_agency(session, parent=district, level="commune")
    other = await make_agency(session, parent=province, level="district")
    manager = bearer(settings, await make_user(session, Role.agency_manager, agency=district))
    # ids read now: a refused request rolls the session back and expires loaded objects
    province_id, district_id, commune_id, other_id = (
        str(a.id) for a in (province, district, commune, other)
    )
    await session.commit()  # keep the setup when a request fails

    listed = await client.get(URL, params={"limit": "500"}, headers=manager)
    assert {a["id"] for a in listed.json()["items"]} == {district_id, commune_id}
    searched = await client.get(URL, params={"q": "so thu nghiem"}, headers=manager)
    assert {a["id"] for a in searched.json()["items"]} <= {district_id, commune_id}
    assert (await client.get(f"{URL}/{commune_id}", headers=manager)).status_code == 200
    for outside in (other_id, province_id):
        for suffix in ("", "/subtree", "/ancestors", "/successors"):
            response = await client.get(f"{URL}/{outside}{suffix}", headers=manager)
            assert_problem(response, 404, "not_found")
    ancestors = await client.get(f"{URL}/{commune_id}/ancestors", headers=manager)
    assert [a["id"] for a in ancestors.json()] == [district_id]
    exported = await client.get(f"{URL}/export", headers=manager)
    assert exported.text.count("\r\n") == 3  # the header and two agencies

    assert_problem(await client.post(URL, json=new_agency(), headers=manager), 403, "forbidden")
    for method, path, body in [
        ("PATCH", f"{URL}/{commune_id}", {"name": "Tên khác"}),
        ("POST", f"{URL}/{commune_id}/retire", {"valid_to": "2030-01-01"}),
    ]:
        response = await client.request(method, path, json=body, headers=manager)
        assert_problem(response, 403, "forbidden")


async def test_401_without_token(client: httpx.AsyncClient, session: AsyncSession) -> None:
    agency = await make_agency(session)
    await session.commit()  # keep the setup when a request fails
    for method, path in [
        ("GET", URL),
        ("GET", f"{URL}/{agency.id}"),
        ("GET", f"{URL}/{agency.id}/subtree"),
        ("GET", f"{URL}/export"),
        ("POST", URL),
        ("PATCH", f"{URL}/{agency.id}"),
        ("POST", f"{URL}/{agency.id}/retire"),
    ]:
        response = await client.request(method, path, json={})
        assert_problem(response, 401, "unauthorized")


@pytest.mark.parametrize("role", [Role.supervisor, Role.surveyor, Role.analyst])
async def test_403_for_roles_without_the_write_scope(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, role: Role
) -> None:
    headers = bearer(settings, await make_user(session, role))
    agency = await make_agency(session)
    await session.commit()  # keep the setup when a request fails
    assert (await client.get(f"{URL}/{agency.id}", headers=headers)).status_code == 200
    for method, path, body in [
        ("POST", URL, new_agency()),
        ("PATCH", f"{URL}/{agency.id}", {"name": "Tên khác"}),
        ("POST", f"{URL}/{agency.id}/retire", {"valid_to": "2030-01-01"}),
        ("POST", f"{URL}/{agency.id}/successors", {"successors": []}),
    ]:
        response = await client.request(method, path, json=body, headers=headers)
        assert_problem(response, 403, "forbidden")


async def test_404_for_an_unknown_agency(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    headers = await role_headers(session, settings)
    missing = "00000000-0000-0000-0000-00000000abcd"
    await session.commit()  # keep the setup when a request fails
    for method, path, body in [
        ("GET", f"{URL}/{missing}", None),
        ("GET", f"{URL}/{missing}/ancestors", None),
        ("GET", f"{URL}/{missing}/successors", None),
        ("PATCH", f"{URL}/{missing}", {"name": "x"}),
        ("POST", f"{URL}/{missing}/retire", {"valid_to": "2030-01-01"}),
    ]:
        response = await client.request(method, path, json=body, headers=headers)
        assert_problem(response, 404, "not_found")
