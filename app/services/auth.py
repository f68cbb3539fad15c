"""Issuing tokens (OAuth2 password, refresh-token and client-credentials grants), ending staff
sessions, and recognising tokens."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app import cache as caches
from app.cache import Cache
from app.config import Settings
from app.errors import AppError, Unauthorized
from app.models.auth_session import AuthSession
from app.models.identity import CLIENT_SCOPES, ROLE_SCOPES, Client, Role, Scope, User
from app.security import (
    InvalidToken,
    TokenClaims,
    decode_token,
    issue_token,
    verify_password,
    verify_secret,
)
from app.services import audit, auth_sessions
from app.services.login_throttle import Budget, LoginThrottle
from app.services.principal import Principal

LAST_USED_RESOLUTION = timedelta(seconds=60)
_SCOPE_VALUES = frozenset(s.value for s in Scope)


@dataclass(frozen=True, slots=True)
class TokenGrant:
    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None
    budget: Budget | None = None
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


@dataclass(frozen=True, slots=True)
class GrantRefused:
    """A failed grant, as RFC 6749 5.2 names it (`code` is its `error`). Returned, not raised,
    so the failure counter, a revoked session and the audit row commit."""

    status: int
    code: str
    detail: str
    retry_after: int | None = None
    budget: Budget | None = None


def _requested(scope: str | None, held: frozenset[Scope]) -> frozenset[Scope] | None:
    """The scopes a token asks for: all it holds by default, or a subset named in `scope`."""
    if not scope:
        return held
    asked = set(scope.split())
    if not asked <= {s.value for s in held}:
        return None
    return frozenset(Scope(s) for s in asked)


def _sign(
    settings: Settings,
    principal: Principal,
    version: int,
    minutes: int,
    now: datetime,
    session_id: uuid.UUID | None = None,
) -> tuple[str, int, str]:
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
        now=now,
        session_id=session_id,
    )
    return token, lifetime, " ".join(scopes)


async def _throttled(session: AsyncSession, throttle: LoginThrottle, name: str) -> GrantRefused:
    await audit.record(session, None, "auth.login_throttled", actor_name=name)
    return GrantRefused(
        429,
        "too_many_failed_logins",
        "Too many failed attempts from this address; wait before trying again.",
        throttle.retry_after(),
        throttle.budget(),
    )


async def _failed(
    session: AsyncSession, throttle: LoginThrottle, name: str, status: int, code: str, detail: str
) -> GrantRefused:
    await throttle.failed(session)
    await audit.record(session, None, "auth.login_failed", actor_name=name)
    return GrantRefused(status, code, detail, budget=throttle.budget())


async def password_grant(
    session: AsyncSession,
    settings: Settings,
    username: str,
    password: str,
    scope: str | None,
    source: str | None = None,
) -> TokenGrant | GrantRefused:
    """A staff sign-in: an access token and the first refresh token of a new session."""
    name = username.strip().lower()
    throttle = LoginThrottle.start(settings, "user", name, source)
    if not await throttle.admit(session):
        return await _throttled(session, throttle, name)
    user = await session.scalar(sa.select(User).where(col(User.username) == name))
    valid = verify_password(password, user.password_hash if user else None)
    if user is None or not valid or not user.is_active:
        return await _failed(
            session, throttle, name, 400, "invalid_grant", "The username or password is wrong."
        )
    await throttle.succeeded(session)
    scopes = _requested(scope, ROLE_SCOPES[Role(user.role)])
    if scopes is None:
        return GrantRefused(
            400,
            "invalid_scope",
            "The requested scope exceeds the user's role.",
            budget=throttle.budget(),
        )
    now = throttle.now
    user.last_login_at = now
    principal = user_principal(user, scopes)
    session_id, refresh = await auth_sessions.start(session, settings, user, now)
    await audit.record(
        session,
        principal,
        "auth.login",
        object_type="user",
        object_id=user.id,
        summary={"session_id": session_id},
    )
    token, lifetime, granted = _sign(
        settings, principal, user.token_version, settings.access_token_minutes, now, session_id
    )
    return TokenGrant(token, lifetime, granted, refresh, throttle.budget())


async def refresh_grant(
    session: AsyncSession, settings: Settings, refresh_token: str, scope: str | None
) -> TokenGrant | GrantRefused:
    """Spend a refresh token for a new access token and its successor (RFC 6749 section 6).

    `scope` may narrow the new access token within the user's role, never widen it."""
    now = datetime.now(UTC)
    rotated = await auth_sessions.rotate(session, settings, refresh_token, now)
    if isinstance(rotated, auth_sessions.RotationRefused):
        return GrantRefused(400, "invalid_grant", rotated.detail)
    user = rotated.user
    scopes = _requested(scope, ROLE_SCOPES[Role(user.role)])
    if scopes is None:
        return GrantRefused(400, "invalid_scope", "The requested scope exceeds the user's role.")
    principal = user_principal(user, scopes)
    await audit.record(
        session,
        principal,
        "auth.refresh",
        object_type="user",
        object_id=user.id,
        summary={"session_id": rotated.session_id},
    )
    token, lifetime, granted = _sign(
        settings,
        principal,
        user.token_version,
        settings.access_token_minutes,
        now,
        rotated.session_id,
    )
    return TokenGrant(token, lifetime, granted, rotated.refresh_token)


async def client_credentials_grant(
    session: AsyncSession,
    settings: Settings,
    client_id: str,
    secret: str,
    scope: str | None,
    source: str | None = None,
) -> TokenGrant | GrantRefused:
    """A machine client's token. No refresh token: the client holds its secret."""
    throttle = LoginThrottle.start(settings, "client", client_id, source)
    if not await throttle.admit(session):
        return await _throttled(session, throttle, client_id)
    client = await session.scalar(sa.select(Client).where(col(Client.client_id) == client_id))
    valid = verify_secret(secret, client.secret_hash if client else None)
    if client is None or not valid or not client_usable(client, throttle.now):
        return await _failed(
            session, throttle, client_id, 401, "invalid_client", "The client id or secret is wrong."
        )
    await throttle.succeeded(session)
    scopes = _requested(scope, client_scopes(client))
    if scopes is None:
        return GrantRefused(
            400,
            "invalid_scope",
            "The requested scope exceeds the client's.",
            budget=throttle.budget(),
        )
    client.last_used_at = throttle.now
    principal = client_principal(client, scopes)
    await audit.record(session, principal, "auth.login", object_type="client", object_id=client.id)
    token, lifetime, granted = _sign(
        settings, principal, client.token_version, settings.client_token_minutes, throttle.now
    )
    return TokenGrant(token, lifetime, granted, None, throttle.budget())


async def end_session(
    session: AsyncSession, actor: Principal | None, session_id: uuid.UUID | None, how: str
) -> bool:
    """Log out: revoke a sign-in session (its refresh tokens and the access tokens naming it).
    Audited whether or not there was a live session to end."""
    ended = False
    if session_id is not None:
        ended = await auth_sessions.revoke(session, session_id, "logout", datetime.now(UTC))
    await audit.record(
        session,
        actor,
        how,
        object_type="auth_session" if session_id else None,
        object_id=session_id,
        summary={"ended": ended},
    )
    return ended


async def revoke_token(session: AsyncSession, settings: Settings, token: str) -> None:
    """RFC 7009: end the session of a refresh token, or of a staff access token naming one.

    Unknown, expired and foreign tokens are ignored (the caller learns nothing about them)."""
    session_id: uuid.UUID | None = None
    if token.startswith(auth_sessions.REFRESH_PREFIX):
        session_id = await auth_sessions.session_of_refresh_token(session, token)
    else:
        try:
            claims = _decode(settings, token)
        except InvalidToken:
            claims = None
        if claims is not None:
            session_id = claims.session_id
    await end_session(session, None, session_id, "auth.revoke")


def _usable(revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> bool:
    return revoked_at is None and (expires_at is None or expires_at > now)


def client_usable(client: Client, now: datetime) -> bool:
    return _usable(client.revoked_at, client.expires_at, now)


def _client_scopes(values: Sequence[str]) -> frozenset[Scope]:
    return frozenset(Scope(s) for s in values if s in CLIENT_SCOPES)


def client_scopes(client: Client) -> frozenset[Scope]:
    return _client_scopes(client.scopes)


class _UserFields(Protocol):
    """What a principal takes from a user: the model or the row `authenticate` reads."""

    @property
    def username(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def agency_id(self) -> uuid.UUID | None: ...


class _ClientFields(Protocol):
    """What a principal takes from a client: the model or the row `authenticate` reads."""

    @property
    def name(self) -> str: ...
    @property
    def scopes(self) -> Sequence[str]: ...
    @property
    def agency_id(self) -> uuid.UUID | None: ...
    @property
    def campaign_id(self) -> uuid.UUID | None: ...
    @property
    def client_id(self) -> str: ...


def _narrowed(held: frozenset[Scope], scopes: frozenset[Scope] | None) -> frozenset[Scope]:
    """The scopes a token grants: all those held, or the requested ones among them."""
    return held if scopes is None else held & scopes


def _user_principal(
    user_id: uuid.UUID,
    user: _UserFields,
    scopes: frozenset[Scope] | None,
    session_id: uuid.UUID | None = None,
) -> Principal:
    role = Role(user.role)  # a plain str when loaded from the database
    return Principal(
        kind="user",
        id=user_id,
        name=user.username,
        scopes=_narrowed(ROLE_SCOPES[role], scopes),
        role=role,
        agency_id=user.agency_id,
        session_id=session_id,
    )


def user_principal(user: User, scopes: frozenset[Scope] | None = None) -> Principal:
    return _user_principal(user.id, user, scopes)


def _client_principal(
    client_id: uuid.UUID, client: _ClientFields, scopes: frozenset[Scope] | None
) -> Principal:
    return Principal(
        kind="client",
        id=client_id,
        name=client.name,
        scopes=_narrowed(_client_scopes(client.scopes), scopes),
        agency_id=client.agency_id,
        campaign_id=client.campaign_id,
        client_public_id=client.client_id,
    )


def client_principal(client: Client, scopes: frozenset[Scope] | None = None) -> Principal:
    return _client_principal(client.id, client, scopes)


# Every request reads its caller's row: only the columns that decide and describe it, by key,
# as plain rows (no ORM identity map or attribute instrumentation on this path).
_USERS = User.metadata.tables["users"]
_CLIENTS = Client.metadata.tables["clients"]
_SESSIONS = AuthSession.metadata.tables["auth_sessions"]
# A staff token naming a sign-in session is good only while that session lives (logout).
_SESSION_LIVE = (
    sa.exists()
    .where(_SESSIONS.c.id == sa.bindparam("sid"), _SESSIONS.c.revoked_at.is_(None))
    .label("session_live")
)
_USER_ROW = sa.select(
    _USERS.c.username,
    _USERS.c.role,
    _USERS.c.agency_id,
    _USERS.c.is_active,
    _USERS.c.token_version,
    _SESSION_LIVE,
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


# Tokens already verified, by their text and what they were verified against. Checking an
# HS256 signature and its claims took about 8 % of a single form's CPU; a token seen before is
# checked again only for its times, which are all that can change. Only valid tokens enter.
_VERIFIED: Cache[tuple[str | int, ...], TokenClaims] = caches.named(
    "auth.tokens", lambda claims: 1024
)


def _decode(settings: Settings, token: str) -> TokenClaims:
    secret = settings.secret_key.get_secret_value()
    skew = timedelta(seconds=settings.token_clock_skew_seconds)
    lifetimes = {
        "user": timedelta(minutes=settings.access_token_minutes),
        "client": timedelta(minutes=settings.client_token_minutes),
    }
    key = (
        token,
        secret,
        settings.jwt_issuer,
        settings.jwt_audience,
        settings.access_token_minutes,
        settings.client_token_minutes,
        settings.token_clock_skew_seconds,
    )
    known = _VERIFIED.get(key)
    if known is not None:
        now = datetime.now(UTC)
        # As decode_token: not before its issue (our tokens' nbf) nor after its expiry, each
        # with the skew allowed.
        if known.issued_at - skew <= now <= known.expires_at + skew:
            return known
        raise InvalidToken("expired")
    claims = decode_token(
        token,
        secret=secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        max_lifetimes=lifetimes,
        clock_skew=skew,
    )
    _VERIFIED.put(key, claims)
    return claims


async def authenticate(session: AsyncSession, settings: Settings, token: str) -> Principal:
    """The caller behind a bearer token, checked against the stored credential every time."""
    try:
        claims = _decode(settings, token)
    except InvalidToken as exc:
        raise Unauthorized("The token is invalid or expired.") from exc
    scopes = frozenset(Scope(s) for s in claims.scopes if s in _SCOPE_VALUES)
    key = claims.subject_id
    if claims.kind == "user":
        user = (await session.execute(_USER_ROW, {"key": key, "sid": claims.session_id})).first()
        if (
            user is None
            or not user.is_active
            or user.token_version != claims.version
            or (claims.session_id is not None and not user.session_live)
        ):
            raise _revoked()
        return _user_principal(key, user, scopes, claims.session_id)
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
    return _client_principal(key, client, scopes)
