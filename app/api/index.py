"""The live index of a campaign, its rankings and its change against a baseline."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from app.api.etag import NOT_MODIFIED, json_with_etag
from app.api.ids import CampaignId
from app.api.problems import AUTHED, CONFLICT, NOT_FOUND
from app.deps import ConsistentReaderDep, IndexReader
from app.models.index import ChangeReport, IndexResult, Ranking
from app.models.submission import Channel
from app.services.index import counts, rankings
from app.services.index.compute import campaign_index
from app.services.quality import supervision

router = APIRouter(prefix="/campaigns", tags=["index"], responses=AUTHED)

GROUP_BY_HELP = (
    "none, agency (each agency with its subtree rolled up), level, sector, procedure, channel, "
    "respondent_type, or item:<item id> for a respondent fact such as item:R.GENDER"
)


@router.get(
    "/{campaign_id}/index",
    summary="The live index: overall → pillars → elements → criteria, per cell",
    description="Computed from the valid forms at the time of the request (marked provisional "
    "while the campaign is open). Every figure carries its n, its 95% interval (Wilson for "
    "proportions, linearised for composites), and the small-cell flags; suppressed cells show "
    "no values. `value` is rounded for display, `exact` is the full precision.",
    response_model=IndexResult,
    responses={**NOT_FOUND, **CONFLICT, **NOT_MODIFIED},
)
async def get_index(
    request: Request,
    session: ConsistentReaderDep,
    principal: IndexReader,
    campaign_id: CampaignId,
    group_by: Annotated[str, Query(description=GROUP_BY_HELP, max_length=80)] = "none",
    aggregate: Literal["pooled", "unit_mean"] = "pooled",
    weighted: bool = False,
    agency_id: uuid.UUID | None = None,
    sector_id: uuid.UUID | None = None,
    channel: Channel | None = None,
    respondent_type: Literal["individual", "organisation"] | None = None,
    level: Annotated[str | None, Query(max_length=50)] = None,
) -> Response:
    filters = counts.Filters(
        agency_id=agency_id,
        sector_id=sector_id,
        channel=channel.value if channel else None,
        respondent_type=respondent_type,
        level=level,
    )
    result = await campaign_index(
        session,
        principal,
        campaign_id,
        group_by=group_by,
        filters=filters,
        aggregate=aggregate,
        weighted=weighted,
    )
    excluded = await supervision.excluded_by_rule(session, principal, campaign_id)
    result = result.model_copy(update={"excluded": excluded})
    return json_with_etag(request, result)


@router.get(
    "/{campaign_id}/rankings",
    summary="Agencies of one level ranked by an index node",
    description="Descending by the published value (rounded half up to 2 decimals): equal "
    "published values share a rank (1, 2, 2, 4); null values are not ranked; "
    "neighbours whose 95% intervals overlap are marked not distinguishable.",
    response_model=Ranking,
    responses=NOT_FOUND,
)
async def get_ranking(
    session: ConsistentReaderDep,
    principal: IndexReader,
    campaign_id: CampaignId,
    level: Annotated[str, Query(max_length=50)] = "department",
    node: Annotated[str, Query(max_length=64)] = "overall",
) -> Ranking:
    return await rankings.ranking(session, principal, campaign_id, level, node)


@router.get(
    "/{campaign_id}/change",
    summary="Change against a baseline campaign, in points and in rank",
    description="Baseline units that were merged or renamed since are followed through their "
    "successor links; merged units are pooled from their predecessors' counts.",
    response_model=ChangeReport,
    responses=NOT_FOUND,
)
async def get_change(
    session: ConsistentReaderDep,
    principal: IndexReader,
    campaign_id: CampaignId,
    baseline: uuid.UUID,
    level: Annotated[str, Query(max_length=50)] = "department",
    node: Annotated[str, Query(max_length=64)] = "overall",
) -> ChangeReport:
    return await rankings.change(session, principal, campaign_id, baseline, level, node)
