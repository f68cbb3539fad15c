"""Submitted forms. Answers are stored raw, as the respondent gave them (never percentages)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.models.base import timestamptz, utcnow
from app.models.campaign import _fk, _uuid_pk


class Channel(StrEnum):
    web = "web"
    kiosk = "kiosk"
    post_office = "post_office"
    one_stop = "one_stop"
    phone = "phone"


class SubmissionState(StrEnum):
    received = "received"
    valid = "valid"
    flagged = "flagged"
    rejected = "rejected"


class Submission(SQLModel, table=True):
    __tablename__ = "submissions"
    __table_args__ = (
        sa.UniqueConstraint(
            "campaign_id", "client_submission_id", name="uq_submissions_client_submission"
        ),
        sa.CheckConstraint(
            "channel IN ('web', 'kiosk', 'post_office', 'one_stop', 'phone')",
            name="channel_known",
        ),
        sa.CheckConstraint(
            "state IN ('received', 'valid', 'flagged', 'rejected')", name="state_known"
        ),
        sa.CheckConstraint(
            "respondent_type IS NULL OR respondent_type IN ('individual', 'organisation')",
            name="respondent_type_known",
        ),
        sa.Index("ix_submissions_campaign_state", "campaign_id", "state"),
        sa.Index("ix_submissions_campaign_agency", "campaign_id", "agency_id"),
        sa.Index("ix_submissions_stratum_id", "stratum_id"),
    )

    id: uuid.UUID = _uuid_pk()
    campaign_id: uuid.UUID = Field(sa_column=_fk("campaigns.id", "RESTRICT"))
    client_submission_id: uuid.UUID = Field(description="The client-made id: the retry key.")
    request_hash: str = Field(sa_type=sa.Text)
    agency_id: uuid.UUID = Field(sa_column=_fk("agencies.id", "RESTRICT"))
    sector_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("sectors.id", "RESTRICT", nullable=True)
    )
    procedure_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("procedures.id", "RESTRICT", nullable=True)
    )
    stratum_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("strata.id", "SET NULL", nullable=True)
    )
    frame_unit_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("frame_units.id", "SET NULL", nullable=True)
    )
    respondent_type: str | None = Field(default=None, sa_type=sa.Text)
    channel: Channel = Field(sa_type=sa.Text)
    client_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("clients.id", "RESTRICT", nullable=True)
    )
    surveyor_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("users.id", "RESTRICT", nullable=True)
    )
    device_id: str | None = Field(default=None, sa_type=sa.Text)
    state: SubmissionState = Field(
        default=SubmissionState.received,
        sa_type=sa.Text,
        sa_column_kwargs={"server_default": "received"},
    )
    review_reason: str | None = Field(default=None, sa_type=sa.Text)
    is_synthetic: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    answers: dict[str, Any] = Field(sa_column=sa.Column(pg.JSONB, nullable=False))
    received_at: datetime = Field(sa_type=timestamptz())
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )


class SubmissionVersion(SQLModel, table=True):
    """A previous version of a corrected form: corrections never overwrite without a trace."""

    __tablename__ = "submission_versions"
    __table_args__ = (
        sa.UniqueConstraint("submission_id", "version", name="uq_submission_versions_version"),
    )

    id: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True)
    )
    submission_id: uuid.UUID = Field(sa_column=_fk("submissions.id", "CASCADE"))
    version: int
    answers: dict[str, Any] = Field(sa_column=sa.Column(pg.JSONB, nullable=False))
    agency_id: uuid.UUID = Field(sa_column=_fk("agencies.id", "RESTRICT"))
    sector_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("sectors.id", "RESTRICT", nullable=True)
    )
    procedure_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("procedures.id", "RESTRICT", nullable=True)
    )
    respondent_type: str | None = Field(default=None, sa_type=sa.Text)
    replaced_by: uuid.UUID | None = Field(
        default=None, sa_column=_fk("users.id", "SET NULL", nullable=True)
    )
    replaced_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )
