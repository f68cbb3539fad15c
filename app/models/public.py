"""Public results: which published reports anyone may read, and the shapes they are read in.

A report's publicity is its own row (reports are immutable, a trigger refuses any update): an
admin or analyst sets it. Without a row, a report is public when its campaign covers a whole
province (its scope names a province-level agency at the top of the tree); see
`app.services.access.readable_public_reports`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from pydantic import BaseModel, field_validator
from pydantic import Field as PydField
from sqlmodel import Field, SQLModel

from app.models.agency import clean_text
from app.models.base import fk, timestamptz, utcnow


class ReportPublicity(SQLModel, table=True):
    __tablename__ = "report_publicity"

    report_id: uuid.UUID = Field(sa_column=fk("reports.id", "RESTRICT", primary_key=True))
    is_public: bool
    reason: str | None = Field(default=None, sa_type=sa.Text)
    set_by: uuid.UUID | None = None
    set_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )


# ---- staff API ---------------------------------------------------------------------------------


class PublicityIn(SQLModel):
    is_public: bool = Field(description="True: anyone may read the report without a token.")
    reason: str | None = Field(default=None, max_length=1000)

    @field_validator("reason")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return None if value is None else clean_text(value)


class PublicityOut(SQLModel):
    report_id: uuid.UUID
    is_public: bool
    explicit: bool = Field(
        description="False when no one has set it: the default (public for a campaign covering "
        "a whole province) applies."
    )
    reason: str | None = None
    set_by: uuid.UUID | None = None
    set_at: datetime | None = None


# ---- the public API ----------------------------------------------------------------------------


class PublicCampaign(BaseModel):
    id: uuid.UUID
    code: str
    name: str
    year: int
    period_start: str
    period_end: str


class PublicIndexNode(BaseModel):
    """One figure of the index tree. Values and intervals are null when the cell is too small
    to publish (`suppressed`) or empty."""

    id: str
    kind: str
    label_vi: str
    value: Decimal | None = PydField(description="Percent, 2 decimals.")
    ci_low: Decimal | None
    ci_high: Decimal | None
    n: float
    low_reliability: bool
    suppressed: bool
    children: list[PublicIndexNode] = PydField(default_factory=list)


class PublicCell(BaseModel):
    key: str
    label: str
    n_respondents: int
    low_reliability: bool
    suppressed: bool
    index: PublicIndexNode | None


class PublicRankingRow(BaseModel):
    agency_id: uuid.UUID
    agency_code: str
    agency_name: str
    rank: int | None
    value: Decimal | None
    ci_low: Decimal | None
    ci_high: Decimal | None
    n_respondents: int
    distinguishable_from_next: bool | None
    not_distinguishable_from: list[str]
    low_reliability: bool
    suppressed: bool


class PublicReport(BaseModel):
    """A published report as anyone may read it: figures only, never a suppressed value, free
    text or contact data."""

    id: uuid.UUID
    version: int
    campaign: PublicCampaign
    method: str
    questionnaire: dict[str, str | int]
    thresholds: dict[str, int]
    data_cutoff: str
    forms_counted: int
    total: PublicCell
    breakdowns: dict[str, list[PublicCell]]
    rankings: dict[str, list[PublicRankingRow]]


class PublicReportSummary(BaseModel):
    id: uuid.UUID
    version: int
    campaign: PublicCampaign
    published_at: datetime
    forms_counted: int
    overall: Decimal | None = PydField(description="The overall index, percent.")
    ci_low: Decimal | None
    ci_high: Decimal | None
    links: dict[str, str] = PydField(description="json, csv, xlsx, agencies, html.")


class PublicReportList(BaseModel):
    items: list[PublicReportSummary]


class CriterionFigures(BaseModel):
    """A criterion's published figures for one agency, beside the province's: its element, and
    its value and 95% interval in percent (null where the agency's cell is not published)."""

    label_vi: str
    element_id: str
    value: Decimal | None
    ci_low: Decimal | None
    ci_high: Decimal | None
    province_value: Decimal | None


class PublicCriterion(CriterionFigures):
    id: str
    difference: Decimal | None = PydField(description="Points above (+) or below the province.")
    suppressed: bool


class PublicAgencySummary(BaseModel):
    agency_id: uuid.UUID
    code: str
    name: str
    level: str
    n_respondents: int
    low_reliability: bool
    suppressed: bool
    overall: Decimal | None
    ci_low: Decimal | None
    ci_high: Decimal | None
    rank: int | None
    ranked_among: int | None
    not_distinguishable_from: list[str]
    elements: list[PublicIndexNode] = PydField(description="Elements without their criteria.")
    criteria: list[PublicCriterion] = PydField(
        description="Strongest to weakest; suppressed ones last."
    )


class PublicAgencyList(BaseModel):
    report_id: uuid.UUID
    items: list[PublicAgencySummary]
