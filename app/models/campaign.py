"""Campaigns: one measurement on one questionnaire version, its scope, strata, frame and sample."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pydantic import field_validator
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.models.base import Page, Timestamped, UpdateSchema, fk, nfc, timestamptz, uuid_pk
from app.models.constraints import one_of, unique_nulls_not_distinct
from app.models.timestamps import SaneDate


class CampaignState(StrEnum):
    """A campaign's life cycle: draft → open → closed → published → archived, and a closed
    campaign may open again. `draft`: being set up, everything may change; `open`: fieldwork,
    forms are taken, only the name and the fieldwork end may change; `closed`: no more forms,
    only the name may change, and the re-checks must be done before publishing; `published`:
    the report is out and nothing changes; `archived`: the frame's contact data are purged."""

    draft = "draft"
    open = "open"
    closed = "closed"
    published = "published"
    archived = "archived"


# Which states a campaign may move to from each state (the life cycle above, as a table).
TRANSITIONS: dict[CampaignState, tuple[CampaignState, ...]] = {
    CampaignState.draft: (CampaignState.open,),
    CampaignState.open: (CampaignState.closed,),
    CampaignState.closed: (CampaignState.open, CampaignState.published),
    CampaignState.published: (CampaignState.archived,),
    CampaignState.archived: (),
}


class Campaign(Timestamped, table=True):
    """One measurement: applicants whose dossiers were returned within the service period are
    surveyed during fieldwork, on a sample drawn per stratum for the margin of error `margin`
    (at least `min_per_stratum` in each), and the results are reported on the agency map of
    `map_date`. Each change of state stamps its `*_at` (`opened_at`: the first opening)."""

    __tablename__ = "campaigns"
    __table_args__ = (
        one_of("state", CampaignState),
        sa.CheckConstraint("period_end >= period_start", name="period_range"),
        sa.CheckConstraint("fieldwork_end >= fieldwork_start", name="fieldwork_range"),
        sa.CheckConstraint("margin > 0 AND margin < 1", name="margin_range"),
        sa.CheckConstraint("min_per_stratum >= 0", name="min_per_stratum_positive"),
    )

    id: uuid.UUID = uuid_pk()
    code: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    name: str = Field(sa_type=sa.Text)
    year: int
    questionnaire_id: uuid.UUID = Field(sa_column=fk("questionnaires.id", "RESTRICT"))
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
    quality: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        description="The screening and review config (models.quality.QualityConfig).",
    )
    opened_at: datetime | None = Field(default=None, sa_type=timestamptz())
    closed_at: datetime | None = Field(default=None, sa_type=timestamptz())
    published_at: datetime | None = Field(default=None, sa_type=timestamptz())
    archived_at: datetime | None = Field(default=None, sa_type=timestamptz())


class CampaignAgency(SQLModel, table=True):
    __tablename__ = "campaign_agencies"

    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "CASCADE", primary_key=True))
    agency_id: uuid.UUID = Field(
        sa_column=fk("agencies.id", "RESTRICT", primary_key=True, index=True)
    )


class CampaignSector(SQLModel, table=True):
    __tablename__ = "campaign_sectors"

    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "CASCADE", primary_key=True))
    sector_id: uuid.UUID = Field(sa_column=fk("sectors.id", "RESTRICT", primary_key=True))


class CampaignSurveyor(SQLModel, table=True):
    """A surveyor's assignment: the campaign, and optionally one agency's part of it."""

    __tablename__ = "campaign_surveyors"
    __table_args__ = (
        unique_nulls_not_distinct(
            "campaign_id", "user_id", "agency_id", name="uq_campaign_surveyors_assignment"
        ),
    )

    id: uuid.UUID = uuid_pk()
    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "CASCADE"))
    user_id: uuid.UUID = Field(sa_column=fk("users.id", "CASCADE"))
    agency_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("agencies.id", "RESTRICT", nullable=True)
    )


class Stratum(SQLModel, table=True):
    """Agency x sector (or agency alone): frame size N_h and target n_h."""

    __tablename__ = "strata"
    __table_args__ = (
        unique_nulls_not_distinct("campaign_id", "agency_id", "sector_id", name="uq_strata_cell"),
        sa.CheckConstraint("frame_size IS NULL OR frame_size >= 0", name="frame_size_positive"),
        sa.CheckConstraint("target IS NULL OR target >= 0", name="target_positive"),
    )

    id: uuid.UUID = uuid_pk()
    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "CASCADE"))
    agency_id: uuid.UUID = Field(sa_column=fk("agencies.id", "RESTRICT"))
    sector_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("sectors.id", "RESTRICT", nullable=True)
    )
    frame_size: int | None = None
    target: int | None = None
    target_is_manual: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


class FrameUnit(SQLModel, table=True):
    """One completed dossier in the sampling frame. Contact data lives apart (FrameContact)."""

    __tablename__ = "frame_units"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "dossier_code", name="uq_frame_units_dossier"),
    )

    id: uuid.UUID = uuid_pk()
    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "CASCADE"))
    dossier_code: str = Field(sa_type=sa.Text)
    procedure_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("procedures.id", "RESTRICT", nullable=True)
    )
    agency_id: uuid.UUID = Field(sa_column=fk("agencies.id", "RESTRICT"))
    stratum_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("strata.id", "SET NULL", nullable=True, index=True)
    )
    returned_on: date = Field(sa_type=sa.Date)
    in_sample: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


class FrameContact(SQLModel, table=True):
    """How a surveyor reaches the applicant. Purged when the campaign is archived."""

    __tablename__ = "frame_contacts"

    frame_unit_id: uuid.UUID = Field(sa_column=fk("frame_units.id", "CASCADE", primary_key=True))
    name: str | None = Field(default=None, sa_type=sa.Text)
    phone: str | None = Field(default=None, sa_type=sa.Text)
    address: str | None = Field(default=None, sa_type=sa.Text)


# ---- API schemas -------------------------------------------------------------------------------


class CampaignBase(SQLModel):
    name: str = Field(
        min_length=1, max_length=300, schema_extra={"examples": ["SIPAS 2020 tỉnh Tuyên Quang"]}
    )
    year: int = Field(ge=2000, le=2100)
    period_start: date
    period_end: date
    fieldwork_start: date
    fieldwork_end: date
    margin: Decimal = Field(default=Decimal("0.05"), gt=0, lt=1, decimal_places=5)
    min_per_stratum: int = Field(default=30, ge=0, le=10_000)
    rates_dossiers: bool = False

    _nfc = field_validator("name")(nfc)


class CampaignCreate(CampaignBase):
    # What a client sends is held to sane years; what is stored is read back as it is.
    period_start: SaneDate
    period_end: SaneDate
    fieldwork_start: SaneDate
    fieldwork_end: SaneDate
    code: str = Field(min_length=2, max_length=64, schema_extra={"examples": ["TQ-SIPAS-2021"]})
    questionnaire_id: uuid.UUID
    map_date: SaneDate | None = Field(
        default=None, description="The agency map to report on; the period's end by default."
    )
    agency_ids: list[uuid.UUID] = Field(default_factory=list, max_length=5000)
    sector_ids: list[uuid.UUID] = Field(default_factory=list, max_length=500)

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        value = value.strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
            raise ValueError("use letters, digits, '.', '-' and '_'")
        return value


class CampaignUpdate(UpdateSchema):
    """What may change depends on the state: see the transition rules in the description."""

    # Every field but map_date (null: the default, period_end).
    not_null = (
        "name",
        "year",
        "questionnaire_id",
        "period_start",
        "period_end",
        "fieldwork_start",
        "fieldwork_end",
        "margin",
        "min_per_stratum",
        "rates_dossiers",
        "agency_ids",
        "sector_ids",
    )

    name: str | None = Field(default=None, min_length=1, max_length=300)
    year: int | None = Field(default=None, ge=2000, le=2100)
    questionnaire_id: uuid.UUID | None = None
    period_start: SaneDate | None = None
    period_end: SaneDate | None = None
    fieldwork_start: SaneDate | None = None
    fieldwork_end: SaneDate | None = None
    map_date: SaneDate | None = None
    margin: Decimal | None = Field(default=None, gt=0, lt=1, decimal_places=5)
    min_per_stratum: int | None = Field(default=None, ge=0, le=10_000)
    rates_dossiers: bool | None = None
    agency_ids: list[uuid.UUID] | None = Field(default=None, max_length=5000)
    sector_ids: list[uuid.UUID] | None = Field(default=None, max_length=500)

    _nfc = field_validator("name")(nfc)


class CampaignPublic(CampaignBase):
    id: uuid.UUID
    code: str
    questionnaire_id: uuid.UUID
    state: CampaignState
    map_date: date
    sample_seed: str | None
    is_synthetic: bool
    agency_ids: list[uuid.UUID]
    sector_ids: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime
    opened_at: datetime | None
    closed_at: datetime | None
    published_at: datetime | None
    archived_at: datetime | None


class CampaignPage(Page[CampaignPublic]):
    pass


class TransitionRequest(SQLModel):
    to: CampaignState
    reason: str | None = Field(default=None, max_length=1000)


class StratumIn(SQLModel):
    agency_id: uuid.UUID
    sector_id: uuid.UUID | None = None
    frame_size: int | None = Field(default=None, ge=0, le=1_000_000_000)
    target: int | None = Field(
        default=None, ge=0, le=1_000_000_000, description="Set by hand; omit to allocate."
    )


class StrataReplace(SQLModel):
    strata: list[StratumIn] = Field(max_length=10_000)


class StratumPublic(SQLModel):
    id: uuid.UUID
    agency_id: uuid.UUID
    sector_id: uuid.UUID | None
    frame_size: int | None
    target: int | None
    target_is_manual: bool


class AllocateRequest(SQLModel):
    total: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000_000,
        description="The sample size; by default n = ceil(N / (1 + N·e²)).",
    )


class AllocationPublic(SQLModel):
    population: int
    margin: Decimal
    total: int
    strata: list[StratumPublic]


class ProgressCounts(SQLModel):
    frame_size: int | None
    target: int | None
    sampled: int
    received: int
    valid: int
    flagged: int
    rejected: int
    completion_pct: float | None = Field(description="100 · valid / target, 2 decimals.")
    response_rate_pct: float | None = Field(
        description="100 · received / sampled, 2 decimals; null before a sample is drawn."
    )


class ProgressRow(ProgressCounts):
    stratum_id: uuid.UUID
    agency_id: uuid.UUID
    agency_code: str
    agency_name: str
    sector_id: uuid.UUID | None


class ProgressPublic(SQLModel):
    campaign_id: uuid.UUID
    state: CampaignState
    totals: ProgressCounts
    strata: list[ProgressRow]
