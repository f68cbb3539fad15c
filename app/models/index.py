"""The index as the API shows it: a tree per reporting cell, every figure with its n and flags."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field


class Figure(BaseModel):
    """One published figure. `value` is rounded half up to 2 decimals for display; `exact` is
    the full-precision value to check or re-use (never rebuild composites from `value`)."""

    value: Decimal | None = Field(description="Percent, 2 decimals; null when empty or suppressed.")
    exact: float | None = Field(description="Full precision; null when empty or suppressed.")
    ci_low: Decimal | None = None
    ci_high: Decimal | None = None
    n: float = Field(description="Valid answers (criteria) or respondents (composites).")
    low_reliability: bool
    suppressed: bool


class IndexNode(Figure):
    id: str
    kind: Literal["overall", "pillar", "element", "criterion"]
    label_vi: str
    label_en: str | None = None
    counts: dict[str, float] | None = Field(
        default=None, description="Criteria: answers per level (1..5); null when suppressed."
    )
    children: list[IndexNode] = Field(default_factory=list)


class OptionShare(BaseModel):
    code: str
    label_vi: str
    share: Decimal | None = Field(description="Percent of those who answered the item.")
    exact: float | None
    count: float | None


class ItemResult(BaseModel):
    """A perception or expectation item: the positive share, or each option's share."""

    id: str
    role: str
    label_vi: str
    label_en: str | None = None
    index: Figure | None = Field(description="Share in the item's positive set, when it has one.")
    options: list[OptionShare]


class DossierScores(BaseModel):
    """A dossier-rating cell: the mean total score, the grade bands and each indicator."""

    mean_total: Decimal | None
    mean_total_exact: float | None
    rated: int
    bands: dict[str, int]
    indicators: dict[str, Decimal | None] = Field(description="Mean score (0–2) per indicator.")


class Cell(BaseModel):
    key: str
    label: str
    n_respondents: int
    low_reliability: bool
    suppressed: bool
    index: IndexNode | None
    items: list[ItemResult] = Field(default_factory=list)
    dossier: DossierScores | None = None


class IndexResult(BaseModel):
    campaign_id: uuid.UUID
    campaign_code: str
    questionnaire_code: str
    questionnaire_version: int
    method: str
    provisional: bool = Field(description="True while the campaign is open or a draft.")
    group_by: str
    aggregate: Literal["pooled", "unit_mean"]
    weighted: bool
    filters: dict[str, str]
    thresholds: dict[str, int]
    total: Cell
    groups: list[Cell]


class RankingRow(BaseModel):
    agency_id: uuid.UUID
    agency_code: str
    agency_name: str
    value: Decimal | None
    exact: float | None
    ci_low: Decimal | None
    ci_high: Decimal | None
    n_respondents: int
    rank: int | None
    distinguishable_from_next: bool | None
    not_distinguishable_from: list[str]
    low_reliability: bool
    suppressed: bool


class Ranking(BaseModel):
    campaign_id: uuid.UUID
    level: str
    node: str
    provisional: bool
    rows: list[RankingRow]


class ChangeRow(BaseModel):
    agency_id: uuid.UUID
    agency_code: str
    agency_name: str
    value: Decimal | None
    baseline_value: Decimal | None
    points: Decimal | None = Field(description="Change in percentage points.")
    points_exact: float | None
    rank: int | None
    baseline_rank: int | None
    rank_change: int | None = Field(description="Positive: moved up.")
    predecessors: list[str] = Field(description="Baseline units folded into this one.")


class ChangeReport(BaseModel):
    campaign_id: uuid.UUID
    baseline_campaign_id: uuid.UUID
    level: str
    node: str
    rows: list[ChangeRow]
