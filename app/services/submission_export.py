"""The forms as a spreadsheet: one row per form, one column per questionnaire item.

A fetcher opens the file in a spreadsheet and counts: agencies, sectors, procedures and the
campaign are named by code (and the agency by name too), not by UUID; booleans are 1 and 0;
every item of the questionnaires involved has its own column, in form order, whether or not a
form answered it; text is neutralised against formulas by the tabular writer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.agency import Agency
from app.models.campaign import Campaign
from app.models.catalogue import Procedure, Sector
from app.models.questionnaire import Questionnaire
from app.models.submission import Submission
from app.services import instrument, tabular

FIXED_COLUMNS = (
    "id",
    "submission_id",
    "campaign_code",
    "agency_code",
    "agency_name",
    "sector_code",
    "procedure_code",
    "respondent_type",
    "channel",
    "state",
    "version",
    "is_synthetic",
    "received_at",
)


async def _names(
    session: AsyncSession, table: Any, ids: set[uuid.UUID], *columns: Any
) -> dict[uuid.UUID, tuple[Any, ...]]:
    if not ids:
        return {}
    query = sa.select(table.id, *columns).where(table.id.in_(ids))
    return {row[0]: tuple(row[1:]) for row in (await session.execute(query)).all()}


async def _item_columns(
    session: AsyncSession, campaign_ids: set[uuid.UUID], rows: Sequence[Submission]
) -> list[str]:
    """Every item of the campaigns' questionnaires in form order (campaigns by code), then
    any answer key that no questionnaire names, sorted."""
    columns: dict[str, None] = {}
    if campaign_ids:
        questionnaires = (
            await session.execute(
                sa.select(Questionnaire)
                .join(Campaign, col(Campaign.questionnaire_id) == col(Questionnaire.id))
                .where(col(Campaign.id).in_(campaign_ids))
                .order_by(col(Campaign.code))
            )
        ).scalars()
        for row in questionnaires:
            for item_id in instrument.item_index(instrument.parsed(row)):
                columns.setdefault(item_id, None)
    extra = sorted({key for r in rows for key in r.answers} - columns.keys())
    return [*columns, *extra]


def _answer(value: Any) -> Any:
    """An answer as one cell: codes and numbers as they are, several choices joined by `;`."""
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return ";".join(f"{k}={v}" for k, v in sorted(value.items()))
    return value


async def csv_chunks(session: AsyncSession, rows: Sequence[Submission]) -> Iterator[bytes]:
    """The CSV (UTF-8 with BOM), made in pieces for a streamed response."""
    campaign_ids = {r.campaign_id for r in rows}
    campaigns = await _names(session, Campaign, campaign_ids, col(Campaign.code))
    agencies = await _names(
        session, Agency, {r.agency_id for r in rows}, col(Agency.code), col(Agency.name)
    )
    sectors = await _names(
        session, Sector, {r.sector_id for r in rows if r.sector_id}, col(Sector.code)
    )
    procedures = await _names(
        session, Procedure, {r.procedure_id for r in rows if r.procedure_id}, col(Procedure.code)
    )
    items = await _item_columns(session, campaign_ids, rows)

    def lines() -> Iterator[list[Any]]:
        for r in rows:
            agency = agencies.get(r.agency_id, (None, None))
            yield [
                r.id,
                r.client_submission_id,
                campaigns.get(r.campaign_id, (None,))[0],
                agency[0],
                agency[1],
                sectors[r.sector_id][0] if r.sector_id in sectors else None,
                procedures[r.procedure_id][0] if r.procedure_id in procedures else None,
                r.respondent_type,
                r.channel,
                r.state,
                r.version,
                r.is_synthetic,
                r.received_at,
                *(_answer(r.answers.get(item)) for item in items),
            ]

    return tabular.csv_chunks([*FIXED_COLUMNS, *items], lines())
