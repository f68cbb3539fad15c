"""Staff sign-in sessions: rotating, single-use refresh tokens and their revocation.

Security decisions:
- A refresh token is 256 random bits shown once; only its SHA-256 is stored.
- Single use, enforced by the database: the statement that marks a token used only matches an
  unused, unexpired one, so of two concurrent uses exactly one wins. The other, like any later
  use of a used token, is a reuse: two parties hold the token, so the whole session is revoked
  (every refresh token and every access token that names it).
- A session dies with the credentials it was opened with: it records the user's
  `token_version`, which a password change, a role or agency change and deactivation bump
  (`app.services.users`), so its refresh tokens stop working at once, as its access tokens do.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.auth_session import AuthSession, RefreshToken
from app.models.identity import User
from app.security import hash_secret
from app.services import audit

REFRESH_PREFIX = "rt_"


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def _lifetime(settings: Settings) -> timedelta:
    return timedelta(days=settings.refresh_token_days)


async def _issue(
    session: AsyncSession, settings: Settings, session_id: uuid.UUID, now: datetime
) -> str:
    token = new_refresh_token()
    session.add(
        RefreshToken(
            session_id=session_id,
            token_hash=hash_secret(token),
            issued_at=now,
            expires_at=now + _lifetime(settings),
        )
    )
    await session.flush()
    return token


async def start(
    session: AsyncSession, settings: Settings, user: User, now: datetime
) -> tuple[uuid.UUID, str]:
    """Open a session for a user who just proved their password: its id and first token."""
    opened = AuthSession(user_id=user.id, token_version=user.token_version, created_at=now)
    session.add(opened)
    await session.flush()
    return opened.id, await _issue(session, settings, opened.id, now)


async def revoke(session: AsyncSession, session_id: uuid.UUID, reason: str, now: datetime) -> bool:
    """End a session; False when it was already ended (or never existed)."""
    ended = await session.execute(
        sa.update(AuthSession)
        .where(col(AuthSession.id) == session_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .returning(col(AuthSession.id))
    )
    return ended.first() is not None


@dataclass(frozen=True, slots=True)
class Rotated:
    user: User
    session_id: uuid.UUID
    refresh_token: str


@dataclass(frozen=True, slots=True)
class RotationRefused:
    detail: str


async def rotate(
    session: AsyncSession, settings: Settings, token: str, now: datetime
) -> Rotated | RotationRefused:
    """Spend a refresh token: its successor and the user, or why not (the session may be
    revoked as a consequence; the caller must commit that, not roll it back)."""
    digest = hash_secret(token)
    spent = (
        await session.execute(
            sa.update(RefreshToken)
            .where(
                col(RefreshToken.token_hash) == digest,
                col(RefreshToken.used_at).is_(None),
                col(RefreshToken.expires_at) > now,
            )
            .values(used_at=now)
            .returning(col(RefreshToken.session_id))
        )
    ).first()
    if spent is None:
        known = (
            await session.execute(
                sa.select(col(RefreshToken.session_id), col(RefreshToken.used_at)).where(
                    col(RefreshToken.token_hash) == digest
                )
            )
        ).first()
        if known is not None and known.used_at is not None:
            if await revoke(session, known.session_id, "reuse", now):
                await audit.record(
                    session,
                    None,
                    "auth.refresh_reused",
                    object_type="auth_session",
                    object_id=known.session_id,
                )
            return RotationRefused("The refresh token was already used; its session is ended.")
        return RotationRefused("The refresh token is invalid or expired.")
    row = (
        await session.execute(
            sa.select(AuthSession, User)
            .join(User, col(User.id) == col(AuthSession.user_id))
            .where(col(AuthSession.id) == spent.session_id)
        )
    ).first()
    if row is None:
        return RotationRefused("The refresh token is invalid or expired.")
    auth_session, user = row
    if auth_session.revoked_at is not None:
        return RotationRefused("The session of this refresh token has ended.")
    if not user.is_active or user.token_version != auth_session.token_version:
        await revoke(session, auth_session.id, "credentials_changed", now)
        return RotationRefused("The session ended when the account changed; sign in again.")
    auth_session.refreshed_at = now
    # A session's expired tokens can no longer be spent or reused: they need not be kept.
    await session.execute(
        sa.delete(RefreshToken).where(
            col(RefreshToken.session_id) == auth_session.id,
            col(RefreshToken.expires_at) <= now,
        )
    )
    successor = await _issue(session, settings, auth_session.id, now)
    return Rotated(user, auth_session.id, successor)


async def session_of_refresh_token(session: AsyncSession, token: str) -> uuid.UUID | None:
    return await session.scalar(
        sa.select(col(RefreshToken.session_id)).where(
            col(RefreshToken.token_hash) == hash_secret(token)
        )
    )
