"""The SIPAS section of the administrative-reform report (JSON shape; the DOCX renders it)."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from pydantic import BaseModel, Field


class ReformPeriod(BaseModel):
    code: str = Field(examples=["2020", "2020-Q1", "2020-H2"])
    label_vi: str = Field(examples=["năm 2020", "quý I năm 2020", "6 tháng đầu năm 2020"])
    start: date
    end: date


class ReformFigure(BaseModel):
    id: str
    label_vi: str
    value: Decimal | None
    ci_low: Decimal | None
    ci_high: Decimal | None


class ReformChange(BaseModel):
    previous_campaign: str
    previous_year: int
    previous_value: Decimal | None
    points: Decimal | None
    significant: bool | None = Field(description="True when the two 95% intervals do not overlap.")


class ReformRankingRow(BaseModel):
    rank: int | None
    agency_code: str
    agency_name: str
    value: Decimal | None
    ci_low: Decimal | None
    ci_high: Decimal | None
    n_respondents: int
    not_distinguishable_from: list[str]


class ReformRanking(BaseModel):
    level: str
    label_vi: str
    rows: list[ReformRankingRow]


class ReformDissemination(BaseModel):
    agency_name: str
    method: str
    method_vi: str
    held_on: date
    audience: str
    participants: int | None


class ReformPlan(BaseModel):
    agency_code: str
    agency_name: str
    review_status: str
    review_vi: str
    status: str
    status_vi: str
    targets: int
    actions: int
    done: int
    overdue: int = Field(description="Actions due by the end of the period and not finished.")


class ReformReport(BaseModel):
    period: ReformPeriod
    issuing_body: str
    parent_body: str
    place: str
    campaign_id: uuid.UUID | None
    campaign_name: str | None
    report_id: uuid.UUID | None
    forms_counted: int | None
    index: ReformFigure | None
    change: ReformChange | None
    elements: list[ReformFigure]
    rankings: list[ReformRanking]
    weakest_criteria: list[ReformFigure]
    dissemination: list[ReformDissemination]
    dissemination_by_method: dict[str, int]
    plans: list[ReformPlan]
    plans_by_review: dict[str, int]
