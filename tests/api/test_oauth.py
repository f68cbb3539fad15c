"""Signing in by the book: client authentication, refresh tokens, logout and revocation, the
throttle that cannot lock owners out (hole 7), bounded token lifetimes (hole 9) and the client
address behind trusted proxies (hole 15)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from jose import jwt
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.audit import AuditEvent
from app.models.auth_session import AuthSession
from app.models.identity import Role, Scope
from tests.conftest import PeerClient
from tests.factories import PASSWORD, bearer, make_client, make_user
from tests.helpers.problems import assert_problem

TOKEN_URL = "/api/v1/auth/token"
ATTACKER = "203.0.113.66"
OWNER = "198.51.100.7"


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    return body


def password_form(username: str, password: str = PASSWORD) -> dict[str, str]:
    return {"grant_type": "password", "username": username, "password": password}


def client_form(client_id: str, secret: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def actions(session: AsyncSession, **where: Any) -> list[str]:
    query = sa.select(col(AuditEvent.action)).order_by(col(AuditEvent.id))
    for name, value in where.items():
        query = query.where(getattr(AuditEvent, name) == value)
    return list((await session.scalars(query)).all())


# ---- hole 7: throttled by source, never a lockout of the owner ------------------------------


async def test_hole_7_failures_elsewhere_never_lock_the_owner_out(
    peer_client: PeerClient, session: AsyncSession, settings: Settings
) -> None:
    user = await make_user(session, Role.analyst)
    attacker, owner = peer_client(ATTACKER), peer_client(OWNER)
    for _ in range(settings.login_max_failures + 2):
        await attacker.post(TOKEN_URL, data=password_form(user.username, "guess"))
    response = await owner.post(TOKEN_URL, data=password_form(user.username))
    assert response.status_code == 200, response.text
    refused = await attacker.post(TOKEN_URL, data=password_form(user.username))
    assert refused.status_code == 429, refused.text
    assert_oauth_error(refused, 429, "too_many_failed_logins")
    assert 1 <= int(refused.headers["retry-after"]) <= settings.login_window_seconds
    ips = (
        await session.scalars(
            sa.select(col(AuditEvent.ip)).where(
                col(AuditEvent.action) == "auth.login_failed",
                col(AuditEvent.actor_name) == user.username,
            )
        )
    ).all()
    assert set(ips) == {ATTACKER}


async def test_hole_7_a_known_client_id_cannot_cut_the_client_off(
    peer_client: PeerClient, session: AsyncSession, settings: Settings
) -> None:
    machine, secret = await make_client(session, [Scope.dossiers_write])
    attacker, one_stop = peer_client(ATTACKER), peer_client(OWNER)
    for _ in range(settings.login_max_failures + 2):
        await attacker.post(TOKEN_URL, data=client_form(machine.client_id, "not-the-secret"))
    response = await one_stop.post(TOKEN_URL, data=client_form(machine.client_id, secret))
    assert response.status_code == 200, response.text
    refused = await attacker.post(TOKEN_URL, data=client_form(machine.client_id, secret))
    assert refused.status_code == 429, refused.text
    assert_oauth_error(refused, 429, "too_many_failed_logins")


async def test_hole_7_one_password_over_many_accounts_is_throttled_by_source(
    peer_client: PeerClient, session: AsyncSession
) -> None:
    limit = 3
    sprayer = peer_client(ATTACKER, login_source_max_failures=limit)
    other = peer_client(OWNER, login_source_max_failures=limit)
    victim = await make_user(session)
    for i in range(limit):
        response = await sprayer.post(TOKEN_URL, data=password_form(f"ghost-{i}-x", "Summer2026"))
    # The next account is refused before its password is even checked, the right one included.
    refused = await sprayer.post(TOKEN_URL, data=password_form(victim.username))
    assert refused.status_code == 429, refused.text
    assert_oauth_error(refused, 429, "too_many_failed_logins")
    assert_oauth_error(response, 400, "invalid_grant")
    assert response.headers["ratelimit-remaining"] == "0"
    assert response.headers["ratelimit-limit"] == str(limit)
    assert "retry-after" in refused.headers
    assert (await other.post(TOKEN_URL, data=password_form(victim.username))).status_code == 200


async def test_an_ipv6_source_is_counted_by_its_64(
    peer_client: PeerClient, session: AsyncSession, settings: Settings
) -> None:
    user = await make_user(session)
    for i in range(settings.login_max_failures):
        hopping = peer_client(f"2001:db8:1:2::{i + 1:x}")  # a new address for each guess
        await hopping.post(TOKEN_URL, data=password_form(user.username, "guess"))
    refused = await peer_client("2001:db8:1:2::ffff").post(
        TOKEN_URL, data=password_form(user.username)
    )
    assert refused.status_code == 429, refused.text
    elsewhere = await peer_client("2001:db8:1:3::1").post(
        TOKEN_URL, data=password_form(user.username)
    )
    assert elsewhere.status_code == 200, elsewhere.text


async def test_rate_limit_headers_count_down_and_a_success_resets_the_account(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    user = await make_user(session)
    first = await client.post(TOKEN_URL, data=password_form(user.username, "wrong"))
    second = await client.post(TOKEN_URL, data=password_form(user.username, "wrong"))
    limit = settings.login_max_failures
    assert first.headers["ratelimit-limit"] == str(limit)
    assert first.headers["ratelimit-remaining"] == str(limit - 1)
    assert second.headers["ratelimit-remaining"] == str(limit - 2)
    assert 0 < int(second.headers["ratelimit-reset"]) <= settings.login_window_seconds
    assert f"{limit};w={settings.login_window_seconds}" in second.headers["ratelimit-policy"]
    ok = await client.post(TOKEN_URL, data=password_form(user.username))
    assert ok.status_code == 200
    assert ok.headers["ratelimit-remaining"] == str(limit)


# ---- hole 9: lifetimes ----------------------------------------------------------------------


def _signed(settings: Settings, subject: str, iat: int | None, exp: int | None) -> str:
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "jti": uuid.uuid4().hex,
        "ver": 0,
        "scope": "users:admin",
    }
    if iat is not None:
        claims["iat"] = iat
    if exp is not None:
        claims["exp"] = exp
    return jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm="HS256")


@pytest.mark.parametrize("case", ["exp_in_year_9999", "iat_in_the_future", "lifetime_too_long"])
async def test_hole_9_tokens_outside_the_lifetime_policy_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, case: str
) -> None:
    admin = await make_user(session, Role.admin)
    now = int(datetime.now(UTC).timestamp())
    iat, exp = {
        "exp_in_year_9999": (now, int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())),
        "iat_in_the_future": (now + 3600, now + 3700),  # beyond any allowed clock skew
        "lifetime_too_long": (now, now + settings.access_token_minutes * 60 + 1),
    }[case]
    token = _signed(settings, f"user:{admin.id}", iat, exp)
    response = await client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401, "unauthorized")


async def test_tokens_within_the_policy_and_the_skew_are_accepted(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await make_user(session, Role.admin)
    now = int(datetime.now(UTC).timestamp())
    ahead = now + settings.token_clock_skew_seconds // 2  # a server whose clock runs ahead
    token = _signed(settings, f"user:{admin.id}", ahead, ahead + settings.access_token_minutes * 60)
    response = await client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


# ---- hole 15: the client's address behind trusted proxies -----------------------------------


async def _login_ip(
    make: PeerClient, session: AsyncSession, peer: str, forwarded: str | None, proxies: str
) -> str | None:
    user = await make_user(session)
    http = make(peer, trusted_proxies=proxies)
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    response = await http.post(TOKEN_URL, data=password_form(user.username), headers=headers)
    assert response.status_code == 200, response.text
    return await session.scalar(
        sa.select(col(AuditEvent.ip)).where(
            col(AuditEvent.action) == "auth.login", col(AuditEvent.actor_id) == user.id
        )
    )


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("192.0.2.44", "192.0.2.44"),  # the proxy is trusted: its X-Forwarded-For names the client
        ("6.6.6.6, 192.0.2.44", "192.0.2.44"),  # read from the right: the client's own is not
        ("6.6.6.6, 192.0.2.44, 10.0.0.9", "192.0.2.44"),  # two trusted hops, then the client
        ("[2001:db8::1]:4711", "2001:db8::1"),  # IPv6 and ports are understood
    ],
)
async def test_hole_15_audit_records_the_client_behind_trusted_proxies(
    peer_client: PeerClient, session: AsyncSession, forwarded: str, expected: str
) -> None:
    assert await _login_ip(peer_client, session, "10.0.0.5", forwarded, "10.0.0.0/8") == expected


@pytest.mark.parametrize(
    ("peer", "forwarded", "proxies", "expected"),
    [
        ("192.0.2.99", "1.2.3.4", "10.0.0.0/8", "192.0.2.99"),  # an untrusted peer cannot choose
        ("10.0.0.5", "not-an-ip", "10.0.0.0/8", "10.0.0.5"),  # garbage stops the walk
        ("10.0.0.5", "192.0.2.44", "", "10.0.0.5"),  # no trusted proxies: the header is ignored
    ],
)
async def test_forwarded_for_is_not_believed_beyond_trusted_proxies(
    peer_client: PeerClient,
    session: AsyncSession,
    peer: str,
    forwarded: str,
    proxies: str,
    expected: str,
) -> None:
    assert await _login_ip(peer_client, session, peer, forwarded, proxies) == expected


async def test_hole_15_the_throttle_counts_the_client_not_the_proxy(
    peer_client: PeerClient, session: AsyncSession, settings: Settings
) -> None:
    """Behind one proxy, one client's failures must not lock out every other client."""
    user = await make_user(session)
    proxy = peer_client("10.0.0.5", trusted_proxies="10.0.0.0/8")
    attacker = {"X-Forwarded-For": ATTACKER}
    for _ in range(settings.login_max_failures):
        await proxy.post(TOKEN_URL, data=password_form(user.username, "x"), headers=attacker)
    owner = await proxy.post(
        TOKEN_URL, data=password_form(user.username), headers={"X-Forwarded-For": OWNER}
    )
    assert owner.status_code == 200, owner.text
    refused = await proxy.post(TOKEN_URL, data=password_form(user.username), headers=attacker)
    assert refused.status_code == 429, refused.text


def test_trusted_proxies_setting_accepts_a_comma_separated_list(settings: Settings) -> None:
    parsed = Settings(_env_file=None, trusted_proxies="10.0.0.0/8, 192.0.2.1,::1")  # type: ignore[arg-type]
    assert [str(n) for n in parsed.trusted_proxies] == ["10.0.0.0/8", "192.0.2.1/32", "::1/128"]
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings(_env_file=None, trusted_proxies="not-a-network")  # type: ignore[arg-type]


# ---- client authentication by HTTP Basic, and an off-the-shelf client ------------------------


async def test_client_credentials_with_http_basic(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    machine, secret = await make_client(session, [Scope.reports_read])
    response = await client.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials"},
        headers=basic(machine.client_id, secret),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body  # machines keep their secret, not a session
    assert response.headers["cache-control"] == "no-store"
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["client_id"] == machine.client_id


async def test_an_off_the_shelf_oauth_client_gets_a_token(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """httpx's own Basic auth and a plain form, as any OAuth2 client library sends them."""
    machine, secret = await make_client(session, [Scope.reports_read])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as oauth:
        response = await oauth.post(
            TOKEN_URL,
            data={"grant_type": "client_credentials", "scope": "reports:read"},
            auth=httpx.BasicAuth(machine.client_id, secret),
        )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "bearer"
    assert response.json()["scope"] == "reports:read"


async def test_basic_credentials_are_form_urlencoded(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """RFC 6749 2.3.1: the id and secret are form-urlencoded before base64, so a secret that
    holds `:`, `%` or `+` must be decoded, not taken literally."""
    machine, secret = await make_client(session, [Scope.reports_read])
    raw = f"{machine.client_id}:{secret}".encode()
    plain = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    data = {"grant_type": "client_credentials"}
    assert (await client.post(TOKEN_URL, data=data, headers=plain)).status_code == 200
    encoded = {"Authorization": "Basic " + base64.b64encode(b"a%3Ab:c%2Bd").decode()}
    assert_oauth_error(
        await client.post(TOKEN_URL, data=data, headers=encoded), 401, "invalid_client"
    )
    failed = await actions(session, actor_name="a:b")  # decoded before it is looked up
    assert failed == ["auth.login_failed"]


async def test_basic_client_authentication_errors(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    machine, secret = await make_client(session, [Scope.reports_read])
    data = {"grant_type": "client_credentials"}
    wrong = await client.post(TOKEN_URL, data=data, headers=basic(machine.client_id, "nope"))
    assert_oauth_error(wrong, 401, "invalid_client")
    assert wrong.headers["www-authenticate"] == 'Basic realm="sipas"'
    garbled = await client.post(TOKEN_URL, data=data, headers={"Authorization": "Basic !!!"})
    assert_oauth_error(garbled, 401, "invalid_client")
    both = await client.post(
        TOKEN_URL,
        data={**data, "client_secret": secret},
        headers=basic(machine.client_id, secret),
    )
    assert_oauth_error(both, 400, "invalid_request")


async def test_other_endpoints_keep_problem_json(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/me"), 401, "unauthorized")
    assert_problem(await client.post("/api/v1/auth/logout"), 401, "unauthorized")


def test_openapi_declares_the_oauth_errors(app: FastAPI) -> None:
    document = app.openapi()
    operation = document["paths"]["/api/v1/auth/token"]["post"]
    for code in ("400", "401", "429"):
        content = operation["responses"][code]["content"]
        assert list(content) == ["application/json"]
        assert content["application/json"]["schema"]["$ref"].endswith("/OAuthTokenError")
    assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
    assert "Retry-After" in operation["responses"]["429"]["headers"]
    for code in ("200", "400", "401", "429"):
        assert "RateLimit-Remaining" in operation["responses"][code]["headers"]
    revoke = document["paths"]["/api/v1/auth/revoke"]["post"]
    for op in (operation, revoke):
        assert "422" not in op["responses"]  # these routes answer invalid_request instead
        assert "application/problem+json" in op["responses"]["default"]["content"]
    assert {"clientBasic": []} in operation["security"]
    assert {} in operation["security"]  # client authentication is optional for staff grants
    schemes = document["components"]["securitySchemes"]
    assert schemes["clientBasic"] == {
        "type": "http",
        "scheme": "basic",
        "description": schemes["clientBasic"]["description"],
    }
    assert "refresh_token" in document["components"]["schemas"]["TokenResponse"]["properties"]


# ---- refresh tokens ------------------------------------------------------------------------


async def sign_in(client: httpx.AsyncClient, username: str) -> dict[str, Any]:
    response = await client.post(TOKEN_URL, data=password_form(username))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(client: httpx.AsyncClient, token: str, **extra: str) -> httpx.Response:
    return await client.post(
        TOKEN_URL, data={"grant_type": "refresh_token", "refresh_token": token, **extra}
    )


def auth_header(grant: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {grant['access_token']}"}


async def test_refresh_token_rotates_and_works_once(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session, Role.analyst)
    first = await sign_in(client, user.username)
    assert first["refresh_token"].startswith("rt_")
    response = await refresh(client, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert response.headers["cache-control"] == "no-store"
    me = await client.get("/api/v1/me", headers=auth_header(second))
    assert me.status_code == 200
    assert me.json()["name"] == user.username
    third = await refresh(client, second["refresh_token"])
    assert third.status_code == 200
    stored = (await session.scalars(sa.text("SELECT token_hash FROM refresh_tokens"))).all()
    assert first["refresh_token"] not in stored  # only hashes are kept
    assert await actions(session, actor_id=user.id) == [
        "auth.login",
        "auth.refresh",
        "auth.refresh",
    ]


async def test_reusing_a_refresh_token_ends_the_whole_session(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    first = await sign_in(client, user.username)
    second = (await refresh(client, first["refresh_token"])).json()
    reuse = await refresh(client, first["refresh_token"])  # a thief, or the owner after a thief
    assert_oauth_error(reuse, 400, "invalid_grant")
    assert_oauth_error(await refresh(client, second["refresh_token"]), 400, "invalid_grant")
    assert_problem(await client.get("/api/v1/me", headers=auth_header(second)), 401, "unauthorized")
    assert_problem(await client.get("/api/v1/me", headers=auth_header(first)), 401, "unauthorized")
    revoked = await session.scalar(
        sa.select(col(AuthSession.revoked_reason)).where(col(AuthSession.user_id) == user.id)
    )
    assert revoked == "reuse"
    assert "auth.refresh_reused" in await actions(session, object_type="auth_session")
    # another sign-in is a new session and works
    assert (
        await refresh(client, (await sign_in(client, user.username))["refresh_token"])
    ).status_code == 200


async def test_unknown_or_expired_refresh_tokens_are_invalid_grant(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    assert_oauth_error(await refresh(client, "rt_" + "x" * 43), 400, "invalid_grant")
    user = await make_user(session)
    grant = await sign_in(client, user.username)
    await session.execute(
        sa.text("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
    )
    assert_oauth_error(await refresh(client, grant["refresh_token"]), 400, "invalid_grant")


async def test_rotation_forgets_the_sessions_expired_tokens(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    first = await sign_in(client, user.username)
    second = (await refresh(client, first["refresh_token"])).json()
    await session.execute(
        sa.text(
            "UPDATE refresh_tokens SET expires_at = now() - interval '1 day' "
            "WHERE used_at IS NOT NULL"
        )
    )
    assert (await refresh(client, second["refresh_token"])).status_code == 200
    kept = await session.scalar(
        sa.text(
            "SELECT count(*) FROM refresh_tokens t JOIN auth_sessions s ON s.id = t.session_id "
            "WHERE s.user_id = :user"
        ),
        {"user": user.id},
    )
    assert kept == 2  # the one just used (kept to detect its reuse) and its successor


async def test_refresh_can_narrow_scope_not_widen_it(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session, Role.supervisor)
    grant = await sign_in(client, user.username)
    widened = await refresh(client, grant["refresh_token"], scope="users:admin")
    assert_oauth_error(widened, 400, "invalid_scope")
    user2 = await make_user(session, Role.supervisor)
    narrowed = await refresh(
        client, (await sign_in(client, user2.username))["refresh_token"], scope="reports:read"
    )
    assert narrowed.json()["scope"] == "reports:read"


@pytest.mark.parametrize("change", ["password", "role", "deactivation", "own_password"])
async def test_account_changes_end_refresh_sessions(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, change: str
) -> None:
    admin = await make_user(session, Role.admin)
    user = await make_user(session, Role.analyst)
    grant = await sign_in(client, user.username)
    url = f"/api/v1/users/{user.id}"
    if change == "own_password":
        response = await client.post(
            "/api/v1/me/password",
            json={"current_password": PASSWORD, "new_password": "another long passphrase"},
            headers=auth_header(grant),
        )
    else:
        body = {
            "password": {"password": "another long passphrase"},
            "role": {"role": "supervisor"},
            "deactivation": {"is_active": False},
        }[change]
        response = await client.patch(url, json=body, headers=bearer(settings, admin))
    assert response.is_success, response.text
    assert_oauth_error(await refresh(client, grant["refresh_token"]), 400, "invalid_grant")
    reason = await session.scalar(
        sa.select(col(AuthSession.revoked_reason)).where(col(AuthSession.user_id) == user.id)
    )
    assert reason == "credentials_changed"


async def test_logout_ends_the_session_and_its_tokens(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    grant = await sign_in(client, user.username)
    other = await sign_in(client, user.username)  # another device
    assert (await client.post("/api/v1/auth/logout", headers=auth_header(grant))).status_code == 204
    assert_problem(await client.get("/api/v1/me", headers=auth_header(grant)), 401, "unauthorized")
    assert_oauth_error(await refresh(client, grant["refresh_token"]), 400, "invalid_grant")
    assert (await client.get("/api/v1/me", headers=auth_header(other))).status_code == 200
    assert (await refresh(client, other["refresh_token"])).status_code == 200
    assert "auth.logout" in await actions(session, actor_id=user.id)


async def test_logout_of_a_machine_client_is_harmless(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    machine, _ = await make_client(session, [Scope.reports_read])
    response = await client.post("/api/v1/auth/logout", headers=bearer(settings, machine))
    assert response.status_code == 204


@pytest.mark.parametrize("which", ["refresh_token", "access_token"])
async def test_rfc_7009_revocation(
    client: httpx.AsyncClient, session: AsyncSession, which: str
) -> None:
    user = await make_user(session)
    grant = await sign_in(client, user.username)
    response = await client.post(
        "/api/v1/auth/revoke", data={"token": grant[which], "token_type_hint": which}
    )
    assert response.status_code == 200
    assert_oauth_error(await refresh(client, grant["refresh_token"]), 400, "invalid_grant")
    assert_problem(await client.get("/api/v1/me", headers=auth_header(grant)), 401, "unauthorized")
    # an unknown token is answered the same, and a missing one is an OAuth error
    assert (await client.post("/api/v1/auth/revoke", data={"token": "nonsense"})).status_code == 200
    assert_oauth_error(await client.post("/api/v1/auth/revoke", data={}), 400, "invalid_request")
