"""The token endpoint and the checks every bearer token must pass."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from jose import jwt
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app import cache as caches
from app.config import Settings
from app.models.audit import AuditEvent
from app.models.identity import ROLE_SCOPES, Client, Role, Scope
from app.security import issue_token
from tests.factories import PASSWORD, bearer, make_client, make_user
from tests.helpers.problems import assert_problem

TOKEN_URL = "/api/v1/auth/token"


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """An RFC 6749 5.2 error: JSON with `error` and `error_description`, never cached."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    return body


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post(
        TOKEN_URL, data={"grant_type": "password", "username": username, "password": password}
    )


async def test_password_grant_issues_a_working_token(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    user = await make_user(session, Role.analyst)
    response = await login(client, user.username)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_minutes * 60
    assert response.headers["cache-control"] == "no-store"
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["name"] == user.username
    assert set(me.json()["scopes"]) == {s.value for s in ROLE_SCOPES[Role.analyst]}


async def test_wrong_password_and_unknown_user_look_the_same(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    wrong = await login(client, user.username, "not the password")
    unknown = await login(client, "nobody-" + uuid.uuid4().hex[:8], "not the password")
    for response in (wrong, unknown):
        body = assert_oauth_error(response, 400, "invalid_grant")
        assert body["error_description"] == "The username or password is wrong."


async def test_deactivated_user_cannot_log_in(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session, is_active=False)
    assert_oauth_error(await login(client, user.username), 400, "invalid_grant")


@pytest.mark.parametrize("exists", [True, False])
async def test_repeated_failures_are_throttled(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, exists: bool
) -> None:
    username = (await make_user(session)).username if exists else "ghost-" + uuid.uuid4().hex[:8]
    for _ in range(settings.login_max_failures):
        assert (await login(client, username, "wrong password")).status_code == 400
    throttled = await login(client, username)  # even the right password waits, from here
    assert_oauth_error(throttled, 429, "too_many_failed_logins")
    assert throttled.headers["ratelimit-remaining"] == "0"
    retry_after = int(throttled.headers["retry-after"])
    assert 1 <= retry_after <= settings.login_window_seconds
    actions = (
        await session.scalars(
            sa.select(col(AuditEvent.action)).where(col(AuditEvent.actor_name) == username)
        )
    ).all()
    assert actions.count("auth.login_failed") == settings.login_max_failures
    assert "auth.login_throttled" in actions


async def test_success_resets_the_failure_count(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    user = await make_user(session)
    for _ in range(settings.login_max_failures - 1):
        await login(client, user.username, "wrong password")
    assert (await login(client, user.username)).status_code == 200
    for _ in range(settings.login_max_failures - 1):
        await login(client, user.username, "wrong password")
    assert (await login(client, user.username)).status_code == 200


async def test_grant_fields_are_validated(client: httpx.AsyncClient) -> None:
    body = assert_oauth_error(
        await client.post(TOKEN_URL, data={"grant_type": "password"}), 400, "invalid_request"
    )
    assert "username" in body["error_description"]
    assert "password" in body["error_description"]
    assert_oauth_error(
        await client.post(TOKEN_URL, data={"grant_type": "implicit"}),
        400,
        "unsupported_grant_type",
    )
    assert_oauth_error(await client.post(TOKEN_URL, data={}), 400, "invalid_request")
    too_long = await client.post(
        TOKEN_URL, data={"grant_type": "password", "username": "u" * 65, "password": "x"}
    )
    assert "username" in assert_oauth_error(too_long, 400, "invalid_request")["error_description"]
    assert_oauth_error(
        await client.post(TOKEN_URL, data={"grant_type": "refresh_token"}), 400, "invalid_request"
    )
    assert_oauth_error(
        await client.post(TOKEN_URL, data={"grant_type": "client_credentials"}),
        401,
        "invalid_client",
    )


async def test_scope_can_be_narrowed_not_widened(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session, Role.supervisor)
    narrowed = await client.post(
        TOKEN_URL,
        data={
            "grant_type": "password",
            "username": user.username,
            "password": PASSWORD,
            "scope": "reports:read",
        },
    )
    assert narrowed.status_code == 200
    token = narrowed.json()["access_token"]
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["scopes"] == ["reports:read"]
    widened = await client.post(
        TOKEN_URL,
        data={
            "grant_type": "password",
            "username": user.username,
            "password": PASSWORD,
            "scope": "users:admin",
        },
    )
    assert_oauth_error(widened, 400, "invalid_scope")


async def test_client_credentials_grant(client: httpx.AsyncClient, session: AsyncSession) -> None:
    machine, secret = await make_client(session, [Scope.submissions_write, Scope.reports_read])
    response = await client.post(
        TOKEN_URL,
        data={
            "grant_type": "client_credentials",
            "client_id": machine.client_id,
            "client_secret": secret,
        },
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    me = (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})).json()
    assert me["kind"] == "client"
    assert me["client_id"] == machine.client_id
    assert set(me["scopes"]) == {"submissions:write", "reports:read"}
    bad = await client.post(
        TOKEN_URL,
        data={
            "grant_type": "client_credentials",
            "client_id": machine.client_id,
            "client_secret": secret + "x",
        },
    )
    assert_oauth_error(bad, 401, "invalid_client")
    assert bad.headers["www-authenticate"] == 'Basic realm="sipas"'


# ---- tokens that must be refused -------------------------------------------------------------


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _claims(settings: Settings, subject: str, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "jti": uuid.uuid4().hex,
        "ver": 0,
        "scope": "users:admin audit:read",
    }
    for key, value in changes.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def _sign(settings: Settings, claims: dict[str, Any], key: str | None = None) -> str:
    secret = key or settings.secret_key.get_secret_value()
    return jwt.encode(claims, secret, algorithm="HS256")


def _forged(settings: Settings, sub: str, case: str) -> str:
    if case == "alg_none":
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(settings, sub))}."
    if case == "other_key":
        return _sign(settings, _claims(settings, sub), key="another-key-" + "x" * 40)
    if case == "wrong_iss":
        return _sign(settings, _claims(settings, sub, iss="someone-else"))
    if case == "wrong_aud":
        return _sign(settings, _claims(settings, sub, aud="another-api"))
    if case == "expired":
        past = datetime.now(UTC) - timedelta(hours=1)
        return _sign(
            settings,
            _claims(settings, sub, iat=int(past.timestamp()), exp=int(past.timestamp()) + 60),
        )
    if case == "missing_exp":
        return _sign(settings, _claims(settings, sub, exp=None))
    if case == "missing_iat":
        return _sign(settings, _claims(settings, sub, iat=None))
    if case == "missing_jti":
        return _sign(settings, _claims(settings, sub, jti=None))
    if case == "tampered":
        header, _payload, signature = _sign(settings, _claims(settings, sub)).split(".")
        changed = _claims(settings, sub, ver=7)
        return f"{header}.{_b64(changed)}.{signature}"
    if case == "garbage":
        return "not.a.jwt"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "alg_none",
        "other_key",
        "wrong_iss",
        "wrong_aud",
        "expired",
        "missing_exp",
        "missing_iat",
        "missing_jti",
        "tampered",
        "garbage",
    ],
)
async def test_forged_or_broken_tokens_get_401(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, case: str
) -> None:
    admin = await make_user(session, Role.admin)
    token = _forged(settings, f"user:{admin.id}", case)
    response = await client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_token_verified_once_is_still_refused_once_it_expires(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A verified token is kept (auth.tokens) and then checked only for its times: it stops
    working when it expires, the allowed clock skew past its exp, as an unseen one would."""
    admin = await make_user(session, Role.admin)
    lifetime = timedelta(minutes=5)
    skew = timedelta(seconds=settings.token_clock_skew_seconds)
    # Issued so that it expires, skew included, about two seconds from now.
    issued = datetime.now(UTC) - lifetime - skew + timedelta(seconds=2)
    token, _ = issue_token(
        kind="user",
        subject_id=admin.id,
        version=admin.token_version,
        scopes=[s.value for s in Scope],
        secret=settings.secret_key.get_secret_value(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        lifetime=lifetime,
        now=issued,
    )
    headers = {"Authorization": f"Bearer {token}"}
    kept: caches.Cache[tuple[str | int, ...], object] = caches.named("auth.tokens", lambda _: 0)
    before = kept.stats()
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    assert kept.stats().hits > before.hits  # the second read used the kept one
    expiry = issued.replace(microsecond=0) + lifetime + skew
    await asyncio.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()) + 1.1)
    assert_problem(await client.get("/api/v1/me", headers=headers), 401, "unauthorized")


async def test_missing_or_non_bearer_credentials_get_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Authorization": "Bearer"}):
        response = await client.get("/api/v1/users", headers=headers)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == 'Bearer realm="sipas"'


async def test_token_of_deactivated_user_is_refused_at_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin)
    target = await make_user(session, Role.analyst)
    target_headers = bearer(settings, target)
    assert (await client.get("/api/v1/me", headers=target_headers)).status_code == 200
    response = await client.patch(
        f"/api/v1/users/{target.id}", json={"is_active": False}, headers=bearer(settings, admin)
    )
    assert response.status_code == 200, response.text
    assert_problem(await client.get("/api/v1/me", headers=target_headers), 401, "unauthorized")


async def test_token_issued_before_password_change_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    user = await make_user(session, Role.analyst)
    old = bearer(settings, user)
    changed = await client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "a new long passphrase"},
        headers=old,
    )
    assert changed.status_code == 204, changed.text
    assert_problem(await client.get("/api/v1/me", headers=old), 401, "unauthorized")
    assert (await login(client, user.username, "a new long passphrase")).status_code == 200
    assert (await login(client, user.username, PASSWORD)).status_code == 400


async def test_client_token_issued_before_rotation_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin)
    machine, old_secret = await make_client(session, [Scope.reports_read])
    old_token = bearer(settings, machine)
    assert (await client.get("/api/v1/me", headers=old_token)).status_code == 200
    rotated = await client.post(
        f"/api/v1/clients/{machine.id}/rotate-secret", headers=bearer(settings, admin)
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["client_secret"]
    assert new_secret != old_secret
    assert_problem(await client.get("/api/v1/me", headers=old_token), 401, "unauthorized")
    grant = {"grant_type": "client_credentials", "client_id": machine.client_id}
    old = await client.post(TOKEN_URL, data={**grant, "client_secret": old_secret})
    assert old.status_code == 401
    new = await client.post(TOKEN_URL, data={**grant, "client_secret": new_secret})
    assert new.status_code == 200


async def test_revoked_client_loses_tokens_and_login(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin)
    machine, secret = await make_client(session, [Scope.reports_read])
    token = bearer(settings, machine)
    revoked = await client.post(
        f"/api/v1/clients/{machine.id}/revoke", headers=bearer(settings, admin)
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert_problem(await client.get("/api/v1/me", headers=token), 401, "unauthorized")
    again = await client.post(
        TOKEN_URL,
        data={
            "grant_type": "client_credentials",
            "client_id": machine.client_id,
            "client_secret": secret,
        },
    )
    assert_oauth_error(again, 401, "invalid_client")


async def test_a_client_token_marks_its_last_use_at_most_once_a_minute(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    machine, _ = await make_client(session, [Scope.reports_read])
    token = bearer(settings, machine)

    async def last_used() -> datetime | None:
        return await session.scalar(
            sa.select(col(Client.last_used_at)).where(col(Client.id) == machine.id)
        )

    assert (await client.get("/api/v1/me", headers=token)).status_code == 200
    first = await last_used()
    assert first is not None
    assert (await client.get("/api/v1/me", headers=token)).status_code == 200
    assert await last_used() == first  # within the resolution: no write
    stale = first - timedelta(minutes=2)
    await session.execute(
        sa.update(Client).where(col(Client.id) == machine.id).values(last_used_at=stale)
    )
    assert (await client.get("/api/v1/me", headers=token)).status_code == 200
    latest = await last_used()
    assert latest is not None
    assert latest > stale
