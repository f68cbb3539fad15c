"""Published reports: immutable snapshots of every figure of a campaign, versioned."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.models.base import Created, Page, fk, timestamptz, utcnow, uuid_pk
from app.models.index import Cell, RankingRow


class Report(SQLModel, table=True):
    """One published version of a campaign's figures, frozen: `content` holds every figure as
    it was computed at `data_cutoff`, and a new version (1, 2, ...) is stored only when
    `inputs_hash`, the hash of the counted forms, has changed. Never updated or deleted."""

    __tablename__ = "reports"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "version", name="uq_reports_campaign_version"),
    )

    id: uuid.UUID = uuid_pk()
    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "RESTRICT"))
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


class Tally(Created, table=True):
    """An aggregate import: per-item answer counts of one agency's paper forms, no raw forms."""

    __tablename__ = "tallies"
    __table_args__ = (sa.CheckConstraint("forms_returned >= 0", name="forms_returned_positive"),)

    id: uuid.UUID = uuid_pk()
    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "RESTRICT"))
    agency_id: uuid.UUID = Field(sa_column=fk("agencies.id", "RESTRICT"))
    forms_returned: int
    counts: dict[str, Any] = Field(
        sa_column=sa.Column(pg.JSONB, nullable=False),
        description="item id → answer code → count",
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


class ReportCampaign(SQLModel):
    id: uuid.UUID
    code: str
    name: str
    year: int
    period_start: date
    period_end: date
    map_date: date


class ReportQuestionnaire(SQLModel):
    code: str
    version: int


class ReportDocument(SQLModel):
    """A published report as stored: every figure of the campaign at its data cut-off."""

    campaign: ReportCampaign
    version: int
    method: str
    questionnaire: ReportQuestionnaire
    thresholds: dict[str, int]
    data_cutoff: datetime
    inputs_hash: str = Field(description="Hash of the counted forms and the questionnaire.")
    forms_counted: int
    total: Cell = Field(description="The whole campaign.")
    breakdowns: dict[str, list[Cell]] = Field(
        description="One list of cells per breakdown (agency, level, sector, channel, "
        "respondent_type)."
    )
    rankings: dict[str, list[RankingRow]] = Field(description="Ranked agencies per level.")


class MethodPillar(SQLModel):
    id: str
    label_vi: str
    weight: float
    elements: list[str]


class MethodElement(SQLModel):
    id: str
    label_vi: str
    weight: float
    rule: str
    designated_item: str | None
    criteria: list[str]


class MethodBand(SQLModel):
    code: str
    label_vi: str
    label_en: str | None = None
    min_total: int
    max_total: int


class MethodVersion(SQLModel):
    """How one questionnaire version is scored."""

    questionnaire_id: uuid.UUID
    code: str
    version: int
    method: str
    title_vi: str
    overall: str | None
    pillars: list[MethodPillar]
    elements: list[MethodElement]
    positive_sets: dict[str, list[str]] = Field(description="Item id → its positive answers.")
    thresholds: dict[str, int]
    dossier_bands: list[MethodBand] | None


class MethodsPublic(SQLModel):
    formulas: dict[str, str] = Field(description="Name → the formula, in words.")
    versions: list[MethodVersion]


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
