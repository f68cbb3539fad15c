"""The audit log: an append-only record of every state change and every login."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.models.base import Page, timestamptz, utcnow
from app.models.constraints import one_of


class AuditEventBase(SQLModel):
    occurred_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )
    actor_type: str = Field(sa_type=sa.Text, description="user, client, system or anonymous")
    actor_id: uuid.UUID | None = None
    actor_name: str | None = Field(default=None, sa_type=sa.Text)
    client_id: str | None = Field(
        default=None, sa_type=sa.Text, description="The machine client's public id, if any."
    )
    action: str = Field(sa_type=sa.Text, schema_extra={"examples": ["user.create"]})
    object_type: str | None = Field(default=None, sa_type=sa.Text)
    object_id: str | None = Field(default=None, sa_type=sa.Text)
    summary: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        description="What changed: `before` and `after` values of the changed fields.",
    )
    request_id: str | None = Field(default=None, sa_type=sa.Text)
    reason: str | None = Field(default=None, sa_type=sa.Text)
    ip: str | None = Field(default=None, sa_type=sa.Text)


class AuditEvent(AuditEventBase, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (
        one_of("actor_type", ("user", "client", "system", "anonymous")),
        sa.Index("ix_audit_events_object", "object_type", "object_id"),
        sa.Index("ix_audit_events_actor_id", "actor_id"),
        sa.Index("ix_audit_events_action", "action"),
        sa.Index("ix_audit_events_request_id", "request_id"),
    )

    id: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True)
    )


class AuditEventPublic(AuditEventBase):
    id: int


class AuditEventPage(Page[AuditEventPublic]):
    pass
