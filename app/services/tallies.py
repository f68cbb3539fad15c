"""Aggregate imports: a paper tally of one agency's forms, as counts per item and answer.

A tally is checked for what no real tally can be, above all an item answered more often than
forms were returned (method section 3). Tallies are kept apart from form-level data: their
criterion indices are shown on their own, since composites' intervals need respondents."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import FieldError, Invalid
from app.models.agency import Agency
from app.models.questionnaire import Questionnaire
from app.models.report import Tally, TallyIn, TallyPublic
from app.services import access, audit, instrument
from app.services.index import formulas as fx
from app.services.principal import Principal


def _criteria(
    q: instrument.Questionnaire, counts: dict[str, dict[str, int]]
) -> dict[str, float | None]:
    items = instrument.item_index(q)
    out: dict[str, float | None] = {}
    for item_id, per_code in counts.items():
        positive = instrument.positive_set_of(items[item_id]) or frozenset()
        n = sum(per_code.values())
        s = sum(v for code, v in per_code.items() if code in {str(c) for c in positive})
        out[item_id] = fx.criterion_index(fx.ItemCounts(float(n), float(s)))
    return out


async def import_tally(
    session: AsyncSession, actor: Principal, campaign_id: uuid.UUID, data: TallyIn
) -> TallyPublic:
    campaign = await access.readable_campaign(session, actor, campaign_id)
    row = await session.get(Questionnaire, campaign.questionnaire_id)
    assert row is not None  # noqa: S101 - a foreign key guarantees it
    q = instrument.parsed(row)
    items = instrument.item_index(q)
    errors: list[FieldError] = []
    agency_id = await session.scalar(
        sa.select(col(Agency.id)).where(col(Agency.code) == data.agency_code)
    )
    if agency_id is None:
        errors.append(FieldError("/body/agency_code", "no agency has this code", "unknown"))
    for item_id, per_code in data.counts.items():
        base = f"/body/counts/{item_id}"
        item = items.get(item_id)
        if item is None:
            errors.append(FieldError(base, "no such item in this questionnaire", "unknown_item"))
            continue
        codes = {str(c) for c in instrument.codes_of(item)}
        for code, n in per_code.items():
            if code not in codes:
                errors.append(
                    FieldError(f"{base}/{code}", "not an answer of this item", "unknown_option")
                )
            if n < 0:
                errors.append(
                    FieldError(f"{base}/{code}", "a count cannot be negative", "out_of_range")
                )
        total = sum(per_code.values())
        if total > data.forms_returned:
            errors.append(
                FieldError(
                    base,
                    f"{total} answers from {data.forms_returned} returned forms: a tally cannot "
                    "count more answers to one item than forms",
                    "exceeds_forms",
                )
            )
    if errors or agency_id is None:
        raise Invalid("The tally is not possible; see errors.", errors)
    tally = Tally(
        campaign_id=campaign.id,
        agency_id=agency_id,
        forms_returned=data.forms_returned,
        counts=data.counts,
    )
    await audit.record_change(
        session,
        actor,
        tally,
        "tally.import",
        object_type="tally",
        summary={
            "campaign_id": str(campaign.id),
            "agency": data.agency_code,
            "forms": data.forms_returned,
        },
    )
    return TallyPublic(
        id=tally.id,
        campaign_id=campaign.id,
        agency_id=agency_id,
        forms_returned=tally.forms_returned,
        counts=tally.counts,
        criteria=_criteria(q, data.counts),
    )
