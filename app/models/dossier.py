"""One-stop integration: handled dossiers, and the one-time rating invitations they trigger."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.base import timestamptz, utcnow
from app.models.campaign import _fk, _uuid_pk


class Dossier(SQLModel, table=True):
    """A dossier (hồ sơ) whose result the one-stop desk returned. Idempotent by code."""

    __tablename__ = "dossiers"
    __table_args__ = (sa.Index("ix_dossiers_agency_id", "agency_id"),)

    id: uuid.UUID = _uuid_pk()
    code: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    procedure_id: uuid.UUID = Field(sa_column=_fk("procedures.id", "RESTRICT"))
    agency_id: uuid.UUID = Field(sa_column=_fk("agencies.id", "RESTRICT"))
    returned_at: datetime = Field(sa_type=timestamptz())
    request_hash: str = Field(sa_type=sa.Text)
    client_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("clients.id", "RESTRICT", nullable=True)
    )
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )


class Invitation(SQLModel, table=True):
    """A one-time right to rate one dossier in one campaign. The token is signed, not stored."""

    __tablename__ = "invitations"
    __table_args__ = (
        sa.UniqueConstraint("dossier_id", "campaign_id", name="uq_invitations_dossier_campaign"),
        sa.Index("ix_invitations_campaign_id", "campaign_id"),
    )

    id: uuid.UUID = _uuid_pk()
    dossier_id: uuid.UUID = Field(sa_column=_fk("dossiers.id", "CASCADE"))
    campaign_id: uuid.UUID = Field(sa_column=_fk("campaigns.id", "CASCADE"))
    agency_id: uuid.UUID = Field(sa_column=_fk("agencies.id", "RESTRICT"))
    procedure_id: uuid.UUID = Field(sa_column=_fk("procedures.id", "RESTRICT"))
    expires_at: datetime = Field(sa_type=timestamptz())
    used_at: datetime | None = Field(default=None, sa_type=timestamptz())
    submission_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("submissions.id", "SET NULL", nullable=True)
    )
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )
