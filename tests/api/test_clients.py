"""Machine clients: the secret is shown once and stored hashed; scopes are machine-only."""

from __future__ import annotations

import logging

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.identity import Client, Role
from tests.factories import bearer, make_agency, make_user
from tests.helpers.problems import assert_problem


async def test_secret_is_shown_once_and_stored_hashed(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = await make_user(session, Role.admin)
    agency = await make_agency(session)
    caplog.set_level(logging.DEBUG)
    created = await client.post(
        "/api/v1/clients",
        json={
            "name": "Ki-ốt Bộ phận một cửa",
            "scopes": ["submissions:write", "questionnaires:read", "submissions:write"],
            "agency_id": str(agency.id),
        },
        headers=bearer(settings, admin),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["client_secret"]
    assert len(secret) >= 40
    assert body["scopes"] == ["questionnaires:read", "submissions:write"]
    stored = await session.scalar(
        sa.select(Client).where(col(Client.client_id) == body["client_id"])
    )
    assert stored is not None
    assert secret not in stored.secret_hash
    assert stored.secret_hash.startswith("sha256$")
    fetched = await client.get(f"/api/v1/clients/{body['id']}", headers=bearer(settings, admin))
    assert fetched.status_code == 200
    assert "client_secret" not in fetched.json()
    assert secret not in fetched.text
    assert all(secret not in r.getMessage() for r in caplog.records)
    token = await client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": body["client_id"],
            "client_secret": secret,
        },
    )
    assert token.status_code == 200
    refreshed = await client.get(f"/api/v1/clients/{body['id']}", headers=bearer(settings, admin))
    assert refreshed.json()["last_used_at"] is not None


async def test_staff_scopes_are_refused_for_clients(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin)
    response = await client.post(
        "/api/v1/clients",
        json={"name": "Tool", "scopes": ["users:admin", "reports:read"]},
        headers=bearer(settings, admin),
    )
    body = assert_problem(response, 422, "validation_failed")
    errors = body["errors"]
    assert isinstance(errors, list)
    assert errors[0]["pointer"] == "/body/scopes"
    assert "users:admin" in errors[0]["detail"]


async def test_scope_change_revokes_tokens(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin)
    created = await client.post(
        "/api/v1/clients",
        json={"name": "Fetcher", "scopes": ["reports:read"]},
        headers=bearer(settings, admin),
    )
    machine = await session.get(Client, created.json()["id"])
    assert machine is not None
    old = bearer(settings, machine)
    changed = await client.patch(
        f"/api/v1/clients/{machine.id}",
        json={"scopes": ["reports:read", "progress:read"]},
        headers=bearer(settings, admin),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["scopes"] == ["progress:read", "reports:read"]
    assert_problem(await client.get("/api/v1/me", headers=old), 401, "unauthorized")


async def test_list_hides_revoked_unless_asked(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin)
    headers = bearer(settings, admin)
    ids = []
    for name in ("A", "B"):
        r = await client.post(
            "/api/v1/clients", json={"name": name, "scopes": ["reports:read"]}, headers=headers
        )
        ids.append(r.json()["id"])
    await client.post(f"/api/v1/clients/{ids[0]}/revoke", headers=headers)
    active = {
        c["id"] for c in (await client.get("/api/v1/clients", headers=headers)).json()["items"]
    }
    assert ids[1] in active
    assert ids[0] not in active
    everything = await client.get(
        "/api/v1/clients", params={"include_revoked": "true"}, headers=headers
    )
    assert {ids[0], ids[1]} <= {c["id"] for c in everything.json()["items"]}
    rotate = await client.post(f"/api/v1/clients/{ids[0]}/rotate-secret", headers=headers)
    assert_problem(rotate, 409, "client_revoked")
