"""Published reports: immutable snapshots of every figure of a campaign, versioned."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.models.base import Page, timestamptz, utcnow
from app.models.campaign import _fk, _uuid_pk


class Report(SQLModel, table=True):
    __tablename__ = "reports"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "version", name="uq_reports_campaign_version"),
    )

    id: uuid.UUID = _uuid_pk()
    campaign_id: uuid.UUID = Field(sa_column=_fk("campaigns.id", "RESTRICT"))
    version: int
    method: str = Field(sa_type=sa.Text)
    questionnaire_code: str = Field(sa_type=sa.Text)
    questionnaire_version: int
    data_cutoff: datetime = Field(sa_type=timestamptz())
    inputs_hash: str = Field(sa_type=sa.Text, description="SHA-256 of every counted form.")
    forms_counted: int
    content: dict[str, Any] = Field(sa_column=sa.Column(pg.JSONB, nullable=False))
    etag: str = Field(sa_type=sa.Text)
    published_by: uuid.UUID | None = None
    published_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )


class Tally(SQLModel, table=True):
    """An aggregate import: per-item answer counts of one agency's paper forms, no raw forms."""

    __tablename__ = "tallies"
    __table_args__ = (sa.CheckConstraint("forms_returned >= 0", name="forms_returned_positive"),)

    id: uuid.UUID = _uuid_pk()
    campaign_id: uuid.UUID = Field(sa_column=_fk("campaigns.id", "RESTRICT"))
    agency_id: uuid.UUID = Field(sa_column=_fk("agencies.id", "RESTRICT"))
    forms_returned: int
    counts: dict[str, Any] = Field(
        sa_column=sa.Column(pg.JSONB, nullable=False),
        description="item id → answer code → count",
    )
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )


# ---- API schemas -------------------------------------------------------------------------------


class ReportSummary(SQLModel):
    id: uuid.UUID
    campaign_id: uuid.UUID
    version: int
    method: str
    questionnaire_code: str
    questionnaire_version: int
    data_cutoff: datetime
    inputs_hash: str
    forms_counted: int
    etag: str
    published_at: datetime


class ReportPage(Page[ReportSummary]):
    pass


class ReportListItem(ReportSummary):
    """A version in the list across campaigns, with the campaign it reports on."""

    campaign_code: str
    campaign_year: int


class ReportListPage(Page[ReportListItem]):
    pass


class PublishRequest(SQLModel):
    reason: str | None = Field(default=None, max_length=1000)


class TallyIn(SQLModel):
    agency_code: str = Field(min_length=1, max_length=64)
    forms_returned: int = Field(ge=0, le=10_000_000)
    counts: dict[str, dict[str, int]] = Field(
        description="item id → answer code → number of forms with that answer",
        schema_extra={"examples": [{"E1.C1": {"5": 10, "4": 16, "3": 5}}]},
    )


class TallyPublic(SQLModel):
    id: uuid.UUID
    campaign_id: uuid.UUID
    agency_id: uuid.UUID
    forms_returned: int
    counts: dict[str, Any]
    criteria: dict[str, float | None] = Field(
        default_factory=dict, description="Criterion indices of the tally alone (full precision)."
    )
