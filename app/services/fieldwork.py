"""Fieldwork: the stratified sample, surveyors and their worklist.

The sampling frame's import (reading, checking, writing) is `app.services.frame_import`; its
entry points are re-exported here, where callers have always found them.
"""

from __future__ import annotations

import secrets
import uuid
from collections import defaultdict
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import ConflictError, FieldError, Invalid
from app.models.agency import Agency
from app.models.campaign import (
    CampaignState,
    CampaignSurveyor,
    FrameContact,
    FrameUnit,
)
from app.models.catalogue import Procedure
from app.models.fieldwork import (
    WORKLIST_COLUMNS,
    SamplePublic,
    StratumSample,
    SurveyorAssignmentPublic,
    SurveyorAssignments,
    WorklistItem,
)
from app.models.identity import Role, User
from app.services import access, audit, tabular
from app.services.campaigns import campaign_scope, get_campaign, require_state
from app.services.frame_import import (
    FrameSource,
    file_source,
    fresh_strata,
    import_frame,
    json_source,
    recount_frame_sizes,
    text_array,
)
from app.services.principal import Principal
from app.services.sampling import draw, stratum_seed

S = CampaignState

__all__ = [
    "FrameSource",
    "draw_sample",
    "file_source",
    "import_frame",
    "json_source",
    "list_surveyors",
    "recount_frame_sizes",
    "replace_surveyors",
    "worklist",
    "worklist_csv",
]
# ---- the sample ---------------------------------------------------------------------------------


async def draw_sample(
    session: AsyncSession, actor: Principal, campaign_id: uuid.UUID, seed: str | None
) -> SamplePublic:
    """Every stratum draws its target from its frame units with its own stream of the seed.

    The same seed over the same frame and strata gives the same units; the seed is stored on
    the campaign so the draw can be repeated and checked.
    """
    campaign = await get_campaign(session, actor, campaign_id, lock=True)
    require_state(campaign, S.draft, S.open, what="The sample can be drawn")
    strata = await fresh_strata(session, None, campaign.id)
    if not strata or any(s.target is None for s in strata):
        raise ConflictError(
            "targets_missing",
            "Every stratum needs a target before the draw: import the frame, then allocate "
            "or set the targets."
            if strata
            else "The campaign has no strata yet: import the frame and set the targets first.",
            extra={"strata_without_target": [str(s.id) for s in strata if s.target is None]},
        )
    seed = seed or secrets.token_hex(8)
    by_stratum: dict[uuid.UUID, list[str]] = defaultdict(list)
    rows = await session.execute(
        sa.select(col(FrameUnit.stratum_id), col(FrameUnit.dossier_code)).where(
            col(FrameUnit.campaign_id) == campaign.id, col(FrameUnit.stratum_id).is_not(None)
        )
    )
    for stratum_id, code in rows.all():
        if stratum_id is not None:
            by_stratum[stratum_id].append(code)
    chosen: list[str] = []
    result: list[StratumSample] = []
    for s in strata:
        pool = by_stratum.get(s.id, [])
        picked = draw(pool, s.target or 0, stratum_seed(seed, str(s.id)))
        chosen.extend(picked)
        result.append(
            StratumSample(
                stratum_id=s.id,
                agency_id=s.agency_id,
                sector_id=s.sector_id,
                frame_size=len(pool),
                target=s.target or 0,
                drawn=len(picked),
            )
        )
    await session.execute(
        sa.update(FrameUnit)
        .where(col(FrameUnit.campaign_id) == campaign.id)
        .values(
            in_sample=sa.and_(
                col(FrameUnit.stratum_id).is_not(None),
                col(FrameUnit.dossier_code) == sa.any_(text_array(chosen)),
            )
        )
        .execution_options(synchronize_session=False)
    )
    campaign.sample_seed = seed
    await audit.record_change(
        session,
        actor,
        campaign,
        "campaign.sample",
        object_type="campaign",
        summary={"seed": seed, "drawn": len(chosen), "strata": len(strata)},
    )
    return SamplePublic(campaign_id=campaign.id, seed=seed, drawn=len(chosen), strata=result)


# ---- surveyors ----------------------------------------------------------------------------------


async def list_surveyors(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID
) -> list[SurveyorAssignmentPublic]:
    campaign = await get_campaign(session, principal, campaign_id)
    query = (
        sa.select(
            sa.label("user_id", col(User.id)),
            col(User.username),
            col(User.display_name),
            col(CampaignSurveyor.agency_id),
            sa.label("agency_code", col(Agency.code)),
            sa.label("agency_name", col(Agency.name)),
        )
        .select_from(CampaignSurveyor)
        .join(User, col(User.id) == col(CampaignSurveyor.user_id))
        .outerjoin(Agency, col(Agency.id) == col(CampaignSurveyor.agency_id))
        .where(
            col(CampaignSurveyor.campaign_id) == campaign.id, access.assignment_clause(principal)
        )
        .order_by(col(User.username), col(Agency.code).nulls_first())
    )
    return [
        SurveyorAssignmentPublic.model_validate(r) for r in (await session.execute(query)).all()
    ]


async def replace_surveyors(
    session: AsyncSession, actor: Principal, campaign_id: uuid.UUID, data: SurveyorAssignments
) -> list[SurveyorAssignmentPublic]:
    campaign = await get_campaign(session, actor, campaign_id, lock=True)
    require_state(campaign, S.draft, S.open, S.closed, what="Surveyors can be assigned")
    agencies, _ = await campaign_scope(session, campaign.id)
    user_ids = {a.user_id for a in data.assignments}
    roles: dict[uuid.UUID, str] = dict(
        (
            await session.execute(
                sa.select(col(User.id), col(User.role)).where(col(User.id).in_(user_ids))
            )
        ).all()
    )
    errors: list[FieldError] = []
    seen: set[tuple[uuid.UUID, uuid.UUID | None]] = set()
    for i, a in enumerate(data.assignments):
        where = f"/body/assignments/{i}"
        if a.user_id not in roles:
            errors.append(FieldError(f"{where}/user_id", "no such user", "unknown"))
        elif roles[a.user_id] != Role.surveyor:
            errors.append(
                FieldError(f"{where}/user_id", "the user is not a surveyor", "not_surveyor")
            )
        if a.agency_id is not None and a.agency_id not in agencies:
            errors.append(
                FieldError(f"{where}/agency_id", "not in the campaign's scope", "out_of_scope")
            )
        if (a.user_id, a.agency_id) in seen:
            errors.append(FieldError(where, "the same assignment twice", "duplicate"))
        seen.add((a.user_id, a.agency_id))
    if errors:
        raise Invalid("Some assignments are not valid.", errors)
    await session.execute(
        sa.delete(CampaignSurveyor).where(col(CampaignSurveyor.campaign_id) == campaign.id)
    )
    if data.assignments:
        await session.execute(
            sa.insert(CampaignSurveyor),
            [
                {"campaign_id": campaign.id, "user_id": a.user_id, "agency_id": a.agency_id}
                for a in data.assignments
            ],
        )
    await audit.record(
        session,
        actor,
        "campaign.surveyors_replace",
        object_type="campaign",
        object_id=campaign.id,
        summary={
            "assignments": [
                {"user_id": a.user_id, "agency_id": a.agency_id} for a in data.assignments
            ]
        },
    )
    return await list_surveyors(session, actor, campaign.id)


# ---- the worklist -------------------------------------------------------------------------------


async def worklist(
    session: AsyncSession,
    principal: Principal,
    campaign_id: uuid.UUID,
    agency_id: uuid.UUID | None = None,
) -> list[WorklistItem]:
    """The sampled units the caller must visit, by agency code then dossier code."""
    campaign = await get_campaign(session, principal, campaign_id)
    readable = await access.worklist_clause(session, principal, campaign.id)
    query = (
        sa.select(
            col(FrameUnit.id),
            col(FrameUnit.dossier_code),
            col(Procedure.code),
            col(Procedure.name),
            col(Agency.code),
            col(Agency.name),
            col(FrameUnit.returned_on),
            col(FrameContact.name),
            col(FrameContact.phone),
            col(FrameContact.address),
        )
        .select_from(FrameUnit)
        .join(Agency, col(Agency.id) == col(FrameUnit.agency_id))
        .outerjoin(Procedure, col(Procedure.id) == col(FrameUnit.procedure_id))
        .outerjoin(FrameContact, col(FrameContact.frame_unit_id) == col(FrameUnit.id))
        .where(col(FrameUnit.campaign_id) == campaign.id, col(FrameUnit.in_sample), readable)
        .order_by(col(Agency.code), col(FrameUnit.dossier_code))
    )
    if agency_id is not None:
        query = query.where(col(FrameUnit.agency_id) == agency_id)
    return [
        WorklistItem(**dict(zip(WORKLIST_COLUMNS, r, strict=True)))
        for r in (await session.execute(query)).all()
    ]


def worklist_csv(items: Iterable[WorklistItem]) -> bytes:
    """UTF-8 with a BOM, so that Excel shows the Vietnamese text right; machine-name header;
    text neutralised against formulas."""
    return tabular.csv_bytes(
        WORKLIST_COLUMNS, ([getattr(item, c) for c in WORKLIST_COLUMNS] for item in items)
    )
