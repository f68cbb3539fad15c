"""Campaigns: one measurement on one questionnaire version, its scope, strata, frame and sample."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.base import timestamptz, utcnow


class CampaignState(StrEnum):
    draft = "draft"
    open = "open"
    closed = "closed"
    published = "published"
    archived = "archived"


def _fk(target: str, ondelete: str, nullable: bool = False, primary_key: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        sa.Uuid,
        sa.ForeignKey(target, ondelete=ondelete),
        nullable=nullable,
        primary_key=primary_key,
    )


def _uuid_pk() -> uuid.UUID:
    return Field(
        default_factory=uuid.uuid4,
        sa_column_kwargs={"server_default": sa.text("gen_random_uuid()")},
        primary_key=True,
    )


class Campaign(SQLModel, table=True):
    __tablename__ = "campaigns"
    __table_args__ = (
        sa.CheckConstraint(
            "state IN ('draft', 'open', 'closed', 'published', 'archived')", name="state_known"
        ),
        sa.CheckConstraint("period_end >= period_start", name="period_range"),
        sa.CheckConstraint("fieldwork_end >= fieldwork_start", name="fieldwork_range"),
        sa.CheckConstraint("margin > 0 AND margin < 1", name="margin_range"),
        sa.CheckConstraint("min_per_stratum >= 0", name="min_per_stratum_positive"),
    )

    id: uuid.UUID = _uuid_pk()
    code: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    name: str = Field(sa_type=sa.Text)
    year: int
    questionnaire_id: uuid.UUID = Field(sa_column=_fk("questionnaires.id", "RESTRICT"))
    state: CampaignState = Field(
        default=CampaignState.draft, sa_type=sa.Text, sa_column_kwargs={"server_default": "draft"}
    )
    period_start: date = Field(sa_type=sa.Date, description="Service period covered: first day.")
    period_end: date = Field(sa_type=sa.Date)
    fieldwork_start: date = Field(sa_type=sa.Date)
    fieldwork_end: date = Field(sa_type=sa.Date)
    map_date: date = Field(sa_type=sa.Date, description="The agency map the campaign reports on.")
    margin: Decimal = Field(
        default=Decimal("0.05"), sa_column=sa.Column(sa.Numeric(6, 5), nullable=False)
    )
    min_per_stratum: int = Field(default=30)
    sample_seed: str | None = Field(default=None, sa_type=sa.Text)
    rates_dossiers: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    is_synthetic: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),  # type: ignore[call-overload]
        sa_column_kwargs={"server_default": sa.func.now()},
    )
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),  # type: ignore[call-overload]
        sa_column_kwargs={"server_default": sa.func.now()},
    )
    opened_at: datetime | None = Field(default=None, sa_type=timestamptz())  # type: ignore[call-overload]
    closed_at: datetime | None = Field(default=None, sa_type=timestamptz())  # type: ignore[call-overload]
    published_at: datetime | None = Field(default=None, sa_type=timestamptz())  # type: ignore[call-overload]
    archived_at: datetime | None = Field(default=None, sa_type=timestamptz())  # type: ignore[call-overload]


class CampaignAgency(SQLModel, table=True):
    __tablename__ = "campaign_agencies"
    __table_args__ = (sa.Index("ix_campaign_agencies_agency_id", "agency_id"),)

    campaign_id: uuid.UUID = Field(sa_column=_fk("campaigns.id", "CASCADE", primary_key=True))
    agency_id: uuid.UUID = Field(sa_column=_fk("agencies.id", "RESTRICT", primary_key=True))


class CampaignSector(SQLModel, table=True):
    __tablename__ = "campaign_sectors"

    campaign_id: uuid.UUID = Field(sa_column=_fk("campaigns.id", "CASCADE", primary_key=True))
    sector_id: uuid.UUID = Field(sa_column=_fk("sectors.id", "RESTRICT", primary_key=True))


class CampaignSurveyor(SQLModel, table=True):
    """A surveyor's assignment: the campaign, and optionally one agency's part of it."""

    __tablename__ = "campaign_surveyors"
    __table_args__ = (
        sa.UniqueConstraint(
            "campaign_id", "user_id", "agency_id",
            name="uq_campaign_surveyors_assignment", postgresql_nulls_not_distinct=True,
        ),
    )

    id: uuid.UUID = _uuid_pk()
    campaign_id: uuid.UUID = Field(sa_column=_fk("campaigns.id", "CASCADE"))
    user_id: uuid.UUID = Field(sa_column=_fk("users.id", "CASCADE"))
    agency_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("agencies.id", "RESTRICT", nullable=True)
    )


class Stratum(SQLModel, table=True):
    """Agency x sector (or agency alone): frame size N_h and target n_h."""

    __tablename__ = "strata"
    __table_args__ = (
        sa.UniqueConstraint(
            "campaign_id", "agency_id", "sector_id",
            name="uq_strata_cell", postgresql_nulls_not_distinct=True,
        ),
        sa.CheckConstraint("frame_size IS NULL OR frame_size >= 0", name="frame_size_positive"),
        sa.CheckConstraint("target IS NULL OR target >= 0", name="target_positive"),
    )

    id: uuid.UUID = _uuid_pk()
    campaign_id: uuid.UUID = Field(sa_column=_fk("campaigns.id", "CASCADE"))
    agency_id: uuid.UUID = Field(sa_column=_fk("agencies.id", "RESTRICT"))
    sector_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("sectors.id", "RESTRICT", nullable=True)
    )
    frame_size: int | None = None
    target: int | None = None
    target_is_manual: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


class FrameUnit(SQLModel, table=True):
    """One completed dossier in the sampling frame. Contact data lives apart (FrameContact)."""

    __tablename__ = "frame_units"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "dossier_code", name="uq_frame_units_dossier"),
        sa.Index("ix_frame_units_stratum_id", "stratum_id"),
    )

    id: uuid.UUID = _uuid_pk()
    campaign_id: uuid.UUID = Field(sa_column=_fk("campaigns.id", "CASCADE"))
    dossier_code: str = Field(sa_type=sa.Text)
    procedure_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("procedures.id", "RESTRICT", nullable=True)
    )
    agency_id: uuid.UUID = Field(sa_column=_fk("agencies.id", "RESTRICT"))
    stratum_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("strata.id", "SET NULL", nullable=True)
    )
    returned_on: date = Field(sa_type=sa.Date)
    in_sample: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


class FrameContact(SQLModel, table=True):
    """How a surveyor reaches the applicant. Purged when the campaign is archived."""

    __tablename__ = "frame_contacts"

    frame_unit_id: uuid.UUID = Field(sa_column=_fk("frame_units.id", "CASCADE", primary_key=True))
    name: str | None = Field(default=None, sa_type=sa.Text)
    phone: str | None = Field(default=None, sa_type=sa.Text)
    address: str | None = Field(default=None, sa_type=sa.Text)
