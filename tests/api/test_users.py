"""Staff users: admin-only CRUD, Argon2 hashes, token revocation on sensitive changes."""

from __future__ import annotations

import logging
import unicodedata
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.audit import AuditEvent
from app.models.identity import Role, User
from tests.factories import bearer, make_agency, make_user, unique
from tests.helpers.problems import assert_problem


async def test_admin_creates_a_user_with_a_hashed_password(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = await make_user(session, Role.admin)
    password = "mật khẩu rất dài 2026"
    name_nfd = unicodedata.normalize("NFD", "Trần Thị Hương")
    caplog.set_level(logging.DEBUG)
    response = await client.post(
        "/api/v1/users",
        json={
            "username": " Tran.Huong ",
            "display_name": name_nfd,
            "role": "analyst",
            "password": password,
        },
        headers=bearer(settings, admin),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["username"] == "tran.huong"
    assert body["display_name"] == unicodedata.normalize("NFC", "Trần Thị Hương")
    assert "password" not in response.text
    assert "hash" not in response.text
    stored = await session.scalar(sa.select(User).where(col(User.username) == "tran.huong"))
    assert stored is not None
    assert stored.password_hash.startswith("$argon2id$")
    assert password not in stored.password_hash
    assert all(password not in record.getMessage() for record in caplog.records)
    event = await session.scalar(
        sa.select(AuditEvent).where(
            col(AuditEvent.action) == "user.create", col(AuditEvent.object_id) == str(stored.id)
        )
    )
    assert event is not None
    assert event.actor_id == admin.id
    assert password not in str(event.summary)
    login = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": "tran.huong", "password": password},
    )
    assert login.status_code == 200


async def test_duplicate_username_is_409(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin)
    existing = await make_user(session, Role.analyst)
    response = await client.post(
        "/api/v1/users",
        json={
            "username": existing.username,
            "display_name": "X",
            "role": "analyst",
            "password": "long enough password",
        },
        headers=bearer(settings, admin),
    )
    assert_problem(response, 409, "username_taken")


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"role": "agency_manager"}, "/body/agency_id"),
        ({"role": "emperor"}, "/body/role"),
        ({"password": "short"}, "/body/password"),
        ({"username": "a b"}, "/body/username"),
    ],
)
async def test_invalid_user_is_422_naming_the_field(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    body: dict[str, str],
    pointer: str,
) -> None:
    admin = await make_user(session, Role.admin)
    payload = {
        "username": unique("u"),
        "display_name": "Người dùng",
        "role": "analyst",
        "password": "long enough password",
        **body,
    }
    response = await client.post("/api/v1/users", json=payload, headers=bearer(settings, admin))
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert pointer in {e["pointer"] for e in errors}
    count = await session.scalar(
        sa.select(sa.func.count()).select_from(User).where(col(User.display_name) == "Người dùng")
    )
    assert count == 0


async def test_agency_manager_needs_an_existing_agency(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin)
    agency = await make_agency(session)
    base = {"display_name": "Quản lý", "role": "agency_manager", "password": "long enough pw"}
    ok = await client.post(
        "/api/v1/users",
        json={**base, "username": unique("m"), "agency_id": str(agency.id)},
        headers=bearer(settings, admin),
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["agency_id"] == str(agency.id)
    missing = await client.post(
        "/api/v1/users",
        json={**base, "username": unique("m"), "agency_id": "00000000-0000-4000-8000-000000000000"},
        headers=bearer(settings, admin),
    )
    body = assert_problem(missing, 422, "invalid")
    assert body["errors"] == [
        {"pointer": "/body/agency_id", "code": "unknown_agency", "detail": "no agency with this id"}
    ]


async def test_role_change_revokes_tokens_and_is_audited_with_reason(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin)
    user = await make_user(session, Role.analyst)
    user_headers = bearer(settings, user)
    response = await client.patch(
        f"/api/v1/users/{user.id}",
        json={"role": "supervisor"},
        headers={**bearer(settings, admin), "X-Action-Reason": quote("chuyển công tác")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "supervisor"
    assert_problem(await client.get("/api/v1/me", headers=user_headers), 401, "unauthorized")
    event = await session.scalar(
        sa.select(AuditEvent).where(
            col(AuditEvent.action) == "user.update", col(AuditEvent.object_id) == str(user.id)
        )
    )
    assert event is not None
    assert event.summary == {"before": {"role": "analyst"}, "after": {"role": "supervisor"}}
    assert event.reason == "chuyển công tác"


async def test_display_name_change_keeps_tokens(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin)
    user = await make_user(session, Role.analyst)
    user_headers = bearer(settings, user)
    response = await client.patch(
        f"/api/v1/users/{user.id}",
        json={"display_name": "Tên mới"},
        headers=bearer(settings, admin),
    )
    assert response.status_code == 200
    assert (await client.get("/api/v1/me", headers=user_headers)).status_code == 200


async def test_null_role_or_active_flag_is_422_naming_each_field_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin)
    user = await make_user(session, Role.analyst)
    response = await client.patch(
        f"/api/v1/users/{user.id}",
        json={"role": None, "is_active": None, "display_name": "Không đổi"},
        headers=bearer(settings, admin),
    )
    body = assert_problem(response, 422, "invalid")
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [  # type: ignore[attr-defined]
        ("/body/role", "invalid"),
        ("/body/is_active", "invalid"),
    ]
    await session.refresh(user)
    assert user.role == Role.analyst
    assert user.display_name != "Không đổi"


async def test_admin_cannot_lock_themselves_out(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin)
    response = await client.patch(
        f"/api/v1/users/{admin.id}", json={"is_active": False}, headers=bearer(settings, admin)
    )
    assert_problem(response, 409, "cannot_demote_self")


async def test_list_users_pages_without_gaps_or_repeats(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin, username="aaa-admin")
    for i in range(7):
        await make_user(session, Role.surveyor, username=f"paging-{i:02d}")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 3, "role": "surveyor"}
        if cursor:
            params["cursor"] = cursor
        page = await client.get("/api/v1/users", params=params, headers=bearer(settings, admin))
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [u["username"] for u in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = sorted(
        (
            await session.scalars(sa.select(col(User.username)).where(col(User.role) == "surveyor"))
        ).all()
    )
    assert seen == expected
    assert len(seen) == len(set(seen))
    bad = await client.get(
        "/api/v1/users", params={"cursor": "!!nope"}, headers=bearer(settings, admin)
    )
    assert_problem(bad, 422, "bad_cursor")


async def test_unknown_user_is_404(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin)
    response = await client.get(
        "/api/v1/users/00000000-0000-4000-8000-000000000000", headers=bearer(settings, admin)
    )
    assert_problem(response, 404, "not_found")
