"""The index as the API shows it: a tree per reporting cell, every figure with its n and flags."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, Field

Percent = Annotated[
    float | None,
    Field(description="Percent at full precision (a JSON number); null when empty or suppressed."),
]
Shown = Annotated[
    str | None,
    Field(
        description="The same percent as published: rounded half up to 2 decimals, as a string "
        '(e.g. "83.87"); null when the number is null.',
        examples=["83.87"],
    ),
]


class Figure(BaseModel):
    """One published figure. Numbers are JSON numbers at full precision (`value`, `ci_low`,
    `ci_high`), each beside its display string rounded half up to 2 decimals (`*_display`);
    never rebuild composites from the display strings. Counts are integers."""

    value: Percent
    value_display: Shown
    exact: float | None = Field(description="Deprecated: the same number as `value`.")
    ci_low: Percent = None
    ci_low_display: Shown = None
    ci_high: Percent = None
    ci_high_display: Shown = None
    n: int = Field(description="Valid answers (criteria, shares) or respondents (composites).")
    n_weighted: float | None = Field(
        default=None, description="Weighted reads: the weighted count behind `n`."
    )
    low_reliability: bool
    suppressed: bool


class IndexNode(Figure):
    id: str
    kind: Literal["overall", "pillar", "element", "criterion"]
    label_vi: str
    label_en: str | None = None
    counts: dict[str, int] | None = Field(
        default=None, description="Criteria: answers per level (1..5); null when suppressed."
    )
    counts_weighted: dict[str, float] | None = Field(
        default=None, description="Weighted reads: the weighted answers per level."
    )
    children: list[IndexNode] = Field(default_factory=list)


class OptionShare(BaseModel):
    code: str
    label_vi: str
    label_en: str | None = None
    value: Percent = Field(description="Percent of those who answered the item, full precision.")
    share: Shown = Field(description="Percent of those who answered the item, 2 decimals.")
    exact: float | None = Field(description="Deprecated: the same number as `value`.")
    count: int | None = Field(description="Answers with this option; null when suppressed.")
    count_weighted: float | None = Field(default=None, description="Weighted reads only.")


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

    mean_total: float | None = Field(description="Mean total (0–18), full precision.")
    mean_total_display: str | None = Field(description="Mean total, 2 decimals half up.")
    mean_total_exact: float | None = Field(description="Deprecated: the same as `mean_total`.")
    rated: int
    bands: dict[str, int]
    indicators: dict[str, float | None] = Field(
        description="Mean score (0–2) per indicator, full precision."
    )
    indicators_display: dict[str, str | None] = Field(
        default_factory=dict, description="Mean score per indicator, 2 decimals half up."
    )


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
    excluded: dict[str, int] | None = Field(
        default=None,
        description="Forms each screening rule kept out of the index (flagged and not valid), "
        "by rule; a form with two flags counts under both. Live reads only.",
    )


class RankingRow(BaseModel):
    agency_id: uuid.UUID
    agency_code: str
    agency_name: str
    value: Percent
    value_display: Shown
    exact: float | None = Field(description="Deprecated: the same number as `value`.")
    ci_low: Percent
    ci_low_display: Shown
    ci_high: Percent
    ci_high_display: Shown
    n_respondents: int
    rank: int | None = Field(
        description="On the published (2-decimal) value: equal published values share a rank "
        "(1, 2, 2, 4); null values are not ranked."
    )
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
    value: Percent
    value_display: Shown
    baseline_value: Percent
    baseline_value_display: Shown
    points: float | None = Field(description="Change in percentage points, full precision.")
    points_display: Shown
    points_exact: float | None = Field(description="Deprecated: the same number as `points`.")
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
