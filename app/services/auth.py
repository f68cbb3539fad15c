"""Issuing tokens (OAuth2 password and client-credentials grants) and recognising them."""

from __future__ import annotations

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


def client_usable(client: Client, now: datetime) -> bool:
    return client.revoked_at is None and (client.expires_at is None or client.expires_at > now)


def client_scopes(client: Client) -> frozenset[Scope]:
    return frozenset(Scope(s) for s in client.scopes if s in CLIENT_SCOPES)


def user_principal(user: User, scopes: frozenset[Scope] | None = None) -> Principal:
    role = Role(user.role)  # a plain str when loaded from the database
    held = ROLE_SCOPES[role]
    return Principal(
        kind="user",
        id=user.id,
        name=user.username,
        scopes=held if scopes is None else held & scopes,
        role=role,
        agency_id=user.agency_id,
    )


def client_principal(client: Client, scopes: frozenset[Scope] | None = None) -> Principal:
    held = client_scopes(client)
    return Principal(
        kind="client",
        id=client.id,
        name=client.name,
        scopes=held if scopes is None else held & scopes,
        agency_id=client.agency_id,
        campaign_id=client.campaign_id,
        client_public_id=client.client_id,
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
    if claims.kind == "user":
        user = await session.get(User, claims.subject_id)
        if user is None or not user.is_active or user.token_version != claims.version:
            raise _revoked()
        return user_principal(user, scopes)
    client = await session.get(Client, claims.subject_id)
    now = datetime.now(UTC)
    if client is None or not client_usable(client, now) or client.token_version != claims.version:
        raise _revoked()
    if client.last_used_at is None or now - client.last_used_at > LAST_USED_RESOLUTION:
        client.last_used_at = now
    return client_principal(client, scopes)
