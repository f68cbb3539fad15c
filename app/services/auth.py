"""Issuing tokens (OAuth2 password and client-credentials grants) and recognising them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.errors import AppError, Unauthorized
from app.models.identity import CLIENT_SCOPES, ROLE_SCOPES, Client, Role, Scope, User
from app.security import (
    InvalidToken,
    decode_token,
    issue_token,
    verify_password,
    verify_secret,
)
from app.services import audit, ratelimit
from app.services.principal import Principal

LAST_USED_RESOLUTION = timedelta(seconds=60)
_SCOPE_VALUES = frozenset(s.value for s in Scope)


@dataclass(frozen=True, slots=True)
class TokenGrant:
    access_token: str
    expires_in: int
    scope: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


@dataclass(frozen=True, slots=True)
class GrantRefused:
    """A failed login. Returned, not raised, so the failure counter and audit row commit."""

    status: int
    code: str
    detail: str
    retry_after: int | None = None


def _requested(scope: str | None, held: frozenset[Scope]) -> frozenset[Scope] | None:
    """The scopes a token asks for: all it holds by default, or a subset named in `scope`."""
    if not scope:
        return held
    asked = set(scope.split())
    if not asked <= {s.value for s in held}:
        return None
    return frozenset(Scope(s) for s in asked)


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One login attempt's bookkeeping: its failure counter and the window it counts in."""

    key: str
    name: str
    now: datetime
    window: ratelimit.Window

    @classmethod
    def start(cls, settings: Settings, kind: str, name: str) -> _Attempt:
        now = datetime.now(UTC)
        return cls(
            f"login:{kind}:{name}",
            name,
            now,
            ratelimit.window_for(now, settings.login_window_seconds),
        )

    async def throttled(self, session: AsyncSession, settings: Settings) -> GrantRefused | None:
        if await ratelimit.count(session, self.key, self.window) < settings.login_max_failures:
            return None
        await audit.record(session, None, "auth.login_throttled", actor_name=self.name)
        return GrantRefused(
            429,
            "too_many_failed_logins",
            "Too many failed attempts for this account; wait before trying again.",
            self.window.retry_after(self.now),
        )

    async def failed(self, session: AsyncSession, refusal: GrantRefused) -> GrantRefused:
        await ratelimit.hit(session, self.key, self.window)
        await audit.record(session, None, "auth.login_failed", actor_name=self.name)
        return refusal

    async def succeeded(
        self,
        session: AsyncSession,
        settings: Settings,
        principal: Principal,
        version: int,
        minutes: int,
    ) -> TokenGrant:
        await ratelimit.reset(session, self.key)
        await audit.record(
            session, principal, "auth.login", object_type=principal.kind, object_id=principal.id
        )
        scopes = sorted(s.value for s in principal.scopes)
        token, lifetime = issue_token(
            kind=principal.kind,
            subject_id=principal.id,
            version=version,
            scopes=scopes,
            secret=settings.secret_key.get_secret_value(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            lifetime=timedelta(minutes=minutes),
            now=self.now,
        )
        return TokenGrant(token, lifetime, " ".join(scopes))


async def password_grant(
    session: AsyncSession, settings: Settings, username: str, password: str, scope: str | None
) -> TokenGrant | GrantRefused:
    attempt = _Attempt.start(settings, "user", username.strip().lower())
    if refused := await attempt.throttled(session, settings):
        return refused
    user = await session.scalar(sa.select(User).where(col(User.username) == attempt.name))
    valid = verify_password(password, user.password_hash if user else None)
    if user is None or not valid or not user.is_active:
        return await attempt.failed(
            session, GrantRefused(401, "invalid_grant", "The username or password is wrong.")
        )
    scopes = _requested(scope, ROLE_SCOPES[Role(user.role)])
    if scopes is None:
        return GrantRefused(400, "invalid_scope", "The requested scope exceeds the user's role.")
    user.last_login_at = attempt.now
    return await attempt.succeeded(
        session,
        settings,
        user_principal(user, scopes),
        user.token_version,
        settings.access_token_minutes,
    )


async def client_credentials_grant(
    session: AsyncSession, settings: Settings, client_id: str, secret: str, scope: str | None
) -> TokenGrant | GrantRefused:
    attempt = _Attempt.start(settings, "client", client_id)
    if refused := await attempt.throttled(session, settings):
        return refused
    client = await session.scalar(sa.select(Client).where(col(Client.client_id) == client_id))
    valid = verify_secret(secret, client.secret_hash if client else None)
    if client is None or not valid or not client_usable(client, attempt.now):
        return await attempt.failed(
            session, GrantRefused(401, "invalid_client", "The client id or secret is wrong.")
        )
    scopes = _requested(scope, client_scopes(client))
    if scopes is None:
        return GrantRefused(400, "invalid_scope", "The requested scope exceeds the client's.")
    client.last_used_at = attempt.now
    return await attempt.succeeded(
        session,
        settings,
        client_principal(client, scopes),
        client.token_version,
        settings.client_token_minutes,
    )


def _usable(revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> bool:
    return revoked_at is None and (expires_at is None or expires_at > now)


def client_usable(client: Client, now: datetime) -> bool:
    return _usable(client.revoked_at, client.expires_at, now)


def _client_scopes(values: Sequence[str]) -> frozenset[Scope]:
    return frozenset(Scope(s) for s in values if s in CLIENT_SCOPES)


def client_scopes(client: Client) -> frozenset[Scope]:
    return _client_scopes(client.scopes)


def _user_principal(
    user_id: uuid.UUID,
    username: str,
    role_name: str,
    agency_id: uuid.UUID | None,
    scopes: frozenset[Scope] | None,
) -> Principal:
    role = Role(role_name)  # a plain str when loaded from the database
    held = ROLE_SCOPES[role]
    return Principal(
        kind="user",
        id=user_id,
        name=username,
        scopes=held if scopes is None else held & scopes,
        role=role,
        agency_id=agency_id,
    )


def user_principal(user: User, scopes: frozenset[Scope] | None = None) -> Principal:
    return _user_principal(user.id, user.username, user.role, user.agency_id, scopes)


def _client_principal(
    client_id: uuid.UUID,
    name: str,
    scope_values: Sequence[str],
    agency_id: uuid.UUID | None,
    campaign_id: uuid.UUID | None,
    public_id: str,
    scopes: frozenset[Scope] | None,
) -> Principal:
    held = _client_scopes(scope_values)
    return Principal(
        kind="client",
        id=client_id,
        name=name,
        scopes=held if scopes is None else held & scopes,
        agency_id=agency_id,
        campaign_id=campaign_id,
        client_public_id=public_id,
    )


def client_principal(client: Client, scopes: frozenset[Scope] | None = None) -> Principal:
    return _client_principal(
        client.id,
        client.name,
        client.scopes,
        client.agency_id,
        client.campaign_id,
        client.client_id,
        scopes,
    )


# Every request reads its caller's row: only the columns that decide and describe it, by key,
# as plain rows (no ORM identity map or attribute instrumentation on this path).
_USERS = User.metadata.tables["users"]
_CLIENTS = Client.metadata.tables["clients"]
_USER_ROW = sa.select(
    _USERS.c.username,
    _USERS.c.role,
    _USERS.c.agency_id,
    _USERS.c.is_active,
    _USERS.c.token_version,
).where(_USERS.c.id == sa.bindparam("key"))
_CLIENT_ROW = sa.select(
    _CLIENTS.c.name,
    _CLIENTS.c.scopes,
    _CLIENTS.c.agency_id,
    _CLIENTS.c.campaign_id,
    _CLIENTS.c.client_id,
    _CLIENTS.c.expires_at,
    _CLIENTS.c.revoked_at,
    _CLIENTS.c.token_version,
    _CLIENTS.c.last_used_at,
).where(_CLIENTS.c.id == sa.bindparam("key"))
_CLIENT_USED = (
    sa.update(_CLIENTS)
    .where(_CLIENTS.c.id == sa.bindparam("key"))
    .values(last_used_at=sa.bindparam("now"))
)


def _revoked() -> AppError:
    return Unauthorized("The token has been revoked or its owner is no longer active.")


async def authenticate(session: AsyncSession, settings: Settings, token: str) -> Principal:
    """The caller behind a bearer token, checked against the stored credential every time."""
    try:
        claims = decode_token(
            token,
            secret=settings.secret_key.get_secret_value(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    except InvalidToken as exc:
        raise Unauthorized("The token is invalid or expired.") from exc
    scopes = frozenset(Scope(s) for s in claims.scopes if s in _SCOPE_VALUES)
    key = claims.subject_id
    if claims.kind == "user":
        user = (await session.execute(_USER_ROW, {"key": key})).first()
        if user is None or not user.is_active or user.token_version != claims.version:
            raise _revoked()
        return _user_principal(key, user.username, user.role, user.agency_id, scopes)
    client = (await session.execute(_CLIENT_ROW, {"key": key})).first()
    now = datetime.now(UTC)
    if (
        client is None
        or not _usable(client.revoked_at, client.expires_at, now)
        or client.token_version != claims.version
    ):
        raise _revoked()
    if client.last_used_at is None or now - client.last_used_at > LAST_USED_RESOLUTION:
        await session.execute(_CLIENT_USED, {"key": key, "now": now})
    return _client_principal(
        key,
        client.name,
        client.scopes,
        client.agency_id,
        client.campaign_id,
        client.client_id,
        scopes,
    )
