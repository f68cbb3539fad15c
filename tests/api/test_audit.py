"""The audit log is complete, searchable by admins, and append-only in the database."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models.identity import Role
from tests.factories import bearer, make_user
from tests.helpers.problems import assert_problem


async def test_admin_reads_and_filters_the_log(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin)
    headers = bearer(settings, admin)
    created = []
    for i in range(3):
        r = await client.post(
            "/api/v1/users",
            json={
                "username": f"audit-{i}-{admin.username}",
                "display_name": "Người thứ " + str(i),
                "role": "supervisor",
                "password": "long enough password",
            },
            headers={**headers, "X-Request-ID": f"req-audit-{i}"},
        )
        assert r.status_code == 201
        created.append(r.json()["id"])
    page = await client.get(
        "/api/v1/audit-events",
        params={"action": "user.create", "actor_id": str(admin.id), "limit": 2},
        headers=headers,
    )
    assert page.status_code == 200, page.text
    first = page.json()
    assert [e["object_id"] for e in first["items"]] == created[::-1][:2]  # newest first
    assert first["items"][0]["request_id"] == "req-audit-2"
    assert first["items"][0]["actor_type"] == "user"
    rest = await client.get(
        "/api/v1/audit-events",
        params={"action": "user.create", "actor_id": str(admin.id), "cursor": first["next_cursor"]},
        headers=headers,
    )
    assert [e["object_id"] for e in rest.json()["items"]] == [created[0]]
    assert rest.json()["next_cursor"] is None
    by_request = await client.get(
        "/api/v1/audit-events", params={"request_id": "req-audit-1"}, headers=headers
    )
    assert [e["object_id"] for e in by_request.json()["items"]] == [created[1]]


@pytest.mark.parametrize("role", [Role.agency_manager, Role.surveyor, Role.supervisor])
async def test_only_admins_and_analysts_read_the_log(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, role: Role
) -> None:
    from tests.factories import make_agency

    agency = await make_agency(session) if role is Role.agency_manager else None
    user = await make_user(session, role, agency=agency)
    response = await client.get("/api/v1/audit-events", headers=bearer(settings, user))
    assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'forged'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ],
)
async def test_audit_rows_cannot_be_changed_or_removed(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, statement: str
) -> None:
    admin = await make_user(session, Role.admin)
    await client.post(  # a login writes an audit row
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": admin.username, "password": "wrong"},
    )
    count = await session.scalar(sa.text("SELECT count(*) FROM audit_events"))
    assert count
    with pytest.raises(DBAPIError, match="append-only"):
        async with session.begin_nested():
            await session.execute(sa.text(statement))
    assert await session.scalar(sa.text("SELECT count(*) FROM audit_events")) == count
