"""Staff sign-in sessions and their rotating refresh tokens.

A session starts at a password grant and is the family of every refresh token issued from it.
A refresh token is single use: using it marks it used and issues its successor in the same
session; presenting a used one again means two holders have it, so the whole session is
revoked. Only hashes of the tokens are stored.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.base import Created, timestamptz, utcnow, uuid_pk
from app.models.constraints import one_of

REVOKED_REASONS = ("logout", "reuse", "credentials_changed")


class AuthSession(Created, table=True):
    __tablename__ = "auth_sessions"
    __table_args__ = (
        one_of("revoked_reason", REVOKED_REASONS, nullable=True),
        sa.CheckConstraint(
            "(revoked_at IS NULL) = (revoked_reason IS NULL)", name="revoked_with_reason"
        ),
    )

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    token_version: int = Field(description="The user's token_version when the session began.")
    refreshed_at: datetime | None = Field(default=None, sa_type=timestamptz())
    revoked_at: datetime | None = Field(default=None, sa_type=timestamptz())
    revoked_reason: str | None = Field(default=None, sa_type=sa.Text)


class RefreshToken(SQLModel, table=True):
    __tablename__ = "refresh_tokens"

    id: uuid.UUID = uuid_pk()
    session_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid,
            sa.ForeignKey("auth_sessions.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    token_hash: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    issued_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )
    expires_at: datetime = Field(sa_type=timestamptz())
    used_at: datetime | None = Field(default=None, sa_type=timestamptz())
