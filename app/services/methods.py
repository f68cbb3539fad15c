"""What each method version computes: formulas, weights and thresholds, from the stored
questionnaire versions, so that a reader can check any published number."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.questionnaire import Questionnaire
from app.services import instrument

FORMULAS: dict[str, str] = {
    "criterion_index": "CI_i = 100 · S_i / N_i; N_i = valid answers (no answer excluded), "
    "S_i = answers in the item's positive set (4 and 5 on the 5-level scale); N_i = 0 gives null.",
    "element_index": "E_k = mean of the non-null criterion indices of element k, or the index of "
    "its designated item when the version says so.",
    "overall_index": "The weighted mean of the element indices (or of the pillar indices, each the "
    "weighted mean of its elements); a null part makes the composite null.",
    "perception_index": "100 · answers in the item's positive set / valid answers; without a "
    "positive set, the share of each option.",
    "expectation_index": "Multiple choice: the share of those who answered the item that chose "
    "each option (shares may sum past 100). Intensity: the share in the positive set.",
    "dossier_rating": "Per indicator the mean score (0–2); per dossier the total of its points "
    "and its band; per unit the mean total and the count per band.",
    "rounding": "Computed in full precision from counts; rounded half up to 2 decimals only for "
    "display. Composites are never built from rounded parts.",
    "aggregation": "pooled (default): the formula over all respondents of the cell; unit_mean: "
    "the mean of the agencies' own indices.",
    "weights": "With frame sizes, each form of stratum h weighs w = N_h / n_h (N_h dossiers in "
    "the frame, n_h valid forms); every count becomes a weighted sum.",
    "intervals": "Proportions: Wilson 95% interval (weighted: Kish's effective n). Composites "
    "I = 100·Σ c_i p_i: z_r = Σ_i c_i a_ri (y_ri − p_i) / n_i, SE = 100·sqrt(n/(n−1)·Σ_r z_r²), "
    "n and the sum over every respondent of the cell (z_r = 0 for one who answered none of the "
    "composite's items; that n is the composite's n), I ± z·SE clipped to [0, 100]. Every "
    "interval uses z = 1.959964.",
    "small_cells": "Fewer respondents than low_reliability_below: flagged; fewer than "
    "suppress_below: values and intervals withheld from every output but the raw data.",
    "ranking": "Descending by the published value (rounded half up to 2 decimals); equal "
    "published values share a rank (1, 2, 2, 4); null values are not ranked; "
    "neighbours whose intervals overlap are not distinguishable.",
    "change": "Points = value − baseline value; rank change = baseline rank − rank. Baseline units "
    "merged or renamed since are followed by successor links and pooled.",
    "sample_size": "n = ceil(N / (1 + N·e²)), e = 0.05 by default; allocated in proportion to N_h "
    "with at least min(N_h, 30) per stratum, largest remainder; seeded draw.",
}


def describe(row: Questionnaire) -> dict[str, Any]:
    q = instrument.parsed(row)
    items = instrument.item_index(q)
    return {
        "questionnaire_id": str(row.id),
        "code": q.code,
        "version": row.version,
        "method": q.method,
        "title_vi": q.title_vi,
        "overall": q.index.overall if q.index else None,
        "pillars": [
            {"id": p.id, "label_vi": p.label_vi, "weight": p.weight, "elements": list(p.elements)}
            for p in q.pillars
        ],
        "elements": [
            {
                "id": e.id,
                "label_vi": e.label_vi,
                "weight": e.weight,
                "rule": e.rule.value,
                "designated_item": e.designated_item,
                "criteria": [i.id for i in instrument.criteria_of(q, e.id)],
            }
            for e in q.elements
        ],
        "positive_sets": {
            item_id: sorted(str(c) for c in positive)
            for item_id, item in items.items()
            if (positive := instrument.positive_set_of(item)) is not None
        },
        "thresholds": q.thresholds.model_dump(),
        "dossier_bands": [b.model_dump() for b in q.dossier_scoring.bands]
        if q.dossier_scoring
        else None,
    }


async def list_methods(session: AsyncSession) -> dict[str, Any]:
    rows = (
        await session.scalars(
            sa.select(Questionnaire).order_by(col(Questionnaire.code), col(Questionnaire.version))
        )
    ).all()
    return {"formulas": FORMULAS, "versions": [describe(r) for r in rows]}
