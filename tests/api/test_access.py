"""Authorization over every route the OpenAPI document lists, so new routers are covered too.

Each operation declares its scopes through `Security(get_principal, scopes=...)`, which puts them
in the document; these tests check the declarations and that the app enforces exactly them.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models.identity import ROLE_SCOPES, Role
from tests.factories import bearer, make_agency, make_user
from tests.helpers.problems import assert_problem

PUBLIC = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/api/v1/auth/token"),
    # the invitation's token is the credential (rate-limited per source address)
    ("get", "/api/v1/invitations/{token}"),
    ("get", "/api/v1/invitations/{token}/questionnaire"),
    ("post", "/api/v1/auth/revoke"),
    # Public results, readable by anyone (access.readable_public_reports decides which).
    ("get", "/public/v1/reports"),
    ("get", "/public/v1/reports/{report_id}"),
    ("get", "/public/v1/reports/{report_id}/export.csv"),
    ("get", "/public/v1/reports/{report_id}/export.xlsx"),
    ("get", "/public/v1/reports/{report_id}/agencies"),
    ("get", "/public/v1/reports/{report_id}/agencies/{code}"),
}
# Routes any authenticated caller may use: the caller's own account.
SELF_SERVICE = {
    ("get", "/api/v1/me"),
    ("post", "/api/v1/me/password"),
    ("post", "/api/v1/auth/logout"),
}
# What the most sensitive routes must declare, written out rather than derived.
DECLARED = {
    "/api/v1/users": ["users:admin"],
    "/api/v1/users/{user_id}": ["users:admin"],
    "/api/v1/clients": ["users:admin"],
    "/api/v1/clients/{client_id}": ["users:admin"],
    "/api/v1/clients/{client_id}/rotate-secret": ["users:admin"],
    "/api/v1/clients/{client_id}/revoke": ["users:admin"],
    "/api/v1/audit-events": ["audit:read"],
}


def operations(app: FastAPI) -> list[tuple[str, str, list[str] | None]]:
    ops = []
    for path, item in app.openapi()["paths"].items():
        for method, op in item.items():
            security: list[dict[str, list[str]]] | None = op.get("security")
            bearer_scopes = [
                s["OAuth2PasswordBearer"] for s in security or [] if "OAuth2PasswordBearer" in s
            ]
            ops.append((method, path, bearer_scopes[0] if bearer_scopes else None))
    return ops


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


async def call(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("post", "put", "patch"):
        kwargs["json"] = {}
    return await client.request(method.upper(), concrete(path), **kwargs)


def test_every_route_is_public_by_intent_or_declares_scopes(app: FastAPI) -> None:
    for method, path, scopes in operations(app):
        if scopes is None:
            assert (method, path) in PUBLIC, f"{method} {path} has no security requirement"
        elif (method, path) not in SELF_SERVICE:
            assert scopes, f"{method} {path} lets any authenticated caller in"
    declared = {p: s for _, p, s in operations(app) if p in DECLARED}
    assert declared == DECLARED


async def test_every_secured_route_answers_401_without_a_valid_token(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    secured = [(m, p) for m, p, s in operations(app) if s is not None]
    assert len(secured) >= 10
    for method, path in secured:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            response = await call(client, method, path, headers)
            assert response.status_code == 401, f"{method} {path}: {response.status_code}"
            assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_gets_403_exactly_where_it_lacks_a_scope(
    client: httpx.AsyncClient, app: FastAPI, session: AsyncSession, settings: Settings, role: Role
) -> None:
    agency = await make_agency(session) if role is Role.agency_manager else None
    headers = bearer(settings, await make_user(session, role, agency=agency))
    held = {s.value for s in ROLE_SCOPES[role]}
    for method, path, scopes in operations(app):
        if scopes is None:
            continue
        response = await call(client, method, path, headers)
        if set(scopes) <= held:
            assert response.status_code not in (401, 403), f"{role} {method} {path}"
        else:
            body = assert_problem(response, 403, "forbidden")
            missing = body["missing_scopes"]
            assert isinstance(missing, list)
            assert set(missing) == set(scopes) - held
