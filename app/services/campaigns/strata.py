"""A campaign's strata and their targets (the allocation), and the fieldwork progress."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import ConflictError, FieldError, Invalid
from app.models.agency import Agency
from app.models.campaign import (
    AllocateRequest,
    AllocationPublic,
    CampaignState,
    FrameUnit,
    ProgressCounts,
    ProgressPublic,
    ProgressRow,
    StrataReplace,
    Stratum,
    StratumPublic,
)
from app.models.submission import Submission
from app.services import access, audit
from app.services.campaigns.lifecycle import S, campaign_scope, get_campaign, require_state
from app.services.principal import Principal
from app.services.sampling import allocate, sample_size


def stratum_public(s: Stratum) -> StratumPublic:
    return StratumPublic.model_validate(s)


async def list_strata(
    session: AsyncSession, principal: Principal | None, campaign_id: uuid.UUID
) -> list[Stratum]:
    """The campaign's strata the caller may see; `None` (the campaign's own writes) all of them."""
    await get_campaign(session, principal, campaign_id)
    return list((await session.scalars(access.readable_strata(principal, campaign_id))).all())


async def replace_strata(
    session: AsyncSession, actor: Principal, campaign_id: uuid.UUID, data: StrataReplace
) -> list[Stratum]:
    campaign = await get_campaign(session, actor, campaign_id, lock=True)
    require_state(campaign, S.draft, S.open, what="Strata can change")
    agencies, sectors = await campaign_scope(session, campaign.id)
    errors = []
    seen: set[tuple[uuid.UUID, uuid.UUID | None]] = set()
    for i, s in enumerate(data.strata):
        if s.agency_id not in agencies:
            errors.append(
                FieldError(
                    f"/body/strata/{i}/agency_id", "not in the campaign's scope", "out_of_scope"
                )
            )
        if s.sector_id is not None and s.sector_id not in sectors:
            errors.append(
                FieldError(
                    f"/body/strata/{i}/sector_id", "not in the campaign's scope", "out_of_scope"
                )
            )
        if (s.agency_id, s.sector_id) in seen:
            errors.append(FieldError(f"/body/strata/{i}", "the same cell twice", "duplicate"))
        seen.add((s.agency_id, s.sector_id))
    if errors:
        raise Invalid("Some strata are not valid.", errors)
    existing = {
        (s.agency_id, s.sector_id): s for s in await list_strata(session, None, campaign.id)
    }
    keep: set[uuid.UUID] = set()
    for s in data.strata:
        row = existing.get((s.agency_id, s.sector_id))
        if row is None:
            row = Stratum(campaign_id=campaign.id, agency_id=s.agency_id, sector_id=s.sector_id)
            session.add(row)
        row.frame_size = s.frame_size if s.frame_size is not None else row.frame_size
        row.target = s.target
        row.target_is_manual = s.target is not None
        await session.flush()
        keep.add(row.id)
    gone = [row.id for row in existing.values() if row.id not in keep]
    if gone:
        await session.execute(sa.delete(Stratum).where(col(Stratum.id).in_(gone)))
    await audit.record(
        session,
        actor,
        "campaign.strata_replace",
        object_type="campaign",
        object_id=campaign.id,
        summary={"strata": len(data.strata), "removed": len(gone)},
    )
    return await list_strata(session, None, campaign.id)


async def allocate_targets(
    session: AsyncSession, actor: Principal, campaign_id: uuid.UUID, data: AllocateRequest
) -> AllocationPublic:
    """Targets from the frame sizes: n from the sample-size formula (or given), then allocated
    in proportion to N_h with the per-stratum minimum. Hand-set targets are kept."""
    campaign = await get_campaign(session, actor, campaign_id, lock=True)
    require_state(campaign, S.draft, S.open, what="Targets can change")
    strata = await list_strata(session, None, campaign.id)
    missing = [s for s in strata if s.frame_size is None]
    if not strata or missing:
        raise ConflictError(
            "frame_sizes_missing",
            "Every stratum needs a frame size (import the frame or set N_h) before allocation.",
        )
    population = sum(s.frame_size or 0 for s in strata)
    margin = Fraction(str(campaign.margin))
    total = data.total if data.total is not None else sample_size(population, margin)
    manual = [s for s in strata if s.target_is_manual]
    free = [s for s in strata if not s.target_is_manual]
    remaining = max(0, total - sum(s.target or 0 for s in manual))
    parts = allocate({s.id: s.frame_size or 0 for s in free}, remaining, campaign.min_per_stratum)
    for s in free:
        s.target = parts[s.id]
    await audit.record_change(
        session,
        actor,
        campaign,
        "campaign.allocate",
        object_type="campaign",
        summary={"population": population, "total": total, "margin": str(campaign.margin)},
    )
    return AllocationPublic(
        population=population,
        margin=campaign.margin,
        total=total,
        strata=[stratum_public(s) for s in strata],
    )


# ---- progress ----------------------------------------------------------------------------------


def _pct(numerator: int, denominator: int | None) -> float | None:
    """A percentage rounded half up to 2 decimals, for display; null when undefined."""
    if not denominator:
        return None
    value = Decimal(100 * numerator) / Decimal(denominator)
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


async def progress(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID
) -> ProgressPublic:
    """Counts per stratum in one aggregate statement; an agency-scoped caller sees its subtree."""
    campaign = await get_campaign(session, principal, campaign_id)
    sub = Submission.metadata.tables["submissions"]
    frame = FrameUnit.metadata.tables["frame_units"]
    strata = Stratum.metadata.tables["strata"]
    agencies = Agency.metadata.tables["agencies"]
    counts = (
        sa.select(
            sub.c.stratum_id,
            sa.func.count().label("received"),
            sa.func.count().filter(sub.c.state == "valid").label("valid"),
            sa.func.count().filter(sub.c.state == "flagged").label("flagged"),
            sa.func.count().filter(sub.c.state == "rejected").label("rejected"),
        )
        .where(sub.c.campaign_id == campaign.id)
        .group_by(sub.c.stratum_id)
        .subquery()
    )
    sampled = (
        sa.select(frame.c.stratum_id, sa.func.count().label("sampled"))
        .where(frame.c.campaign_id == campaign.id, frame.c.in_sample)
        .group_by(frame.c.stratum_id)
        .subquery()
    )
    query = (
        sa.select(
            strata.c.id.label("stratum_id"),
            strata.c.agency_id,
            agencies.c.code.label("agency_code"),
            agencies.c.name.label("agency_name"),
            strata.c.sector_id,
            strata.c.frame_size,
            strata.c.target,
            sa.func.coalesce(sampled.c.sampled, 0).label("sampled"),
            sa.func.coalesce(counts.c.received, 0).label("received"),
            sa.func.coalesce(counts.c.valid, 0).label("valid"),
            sa.func.coalesce(counts.c.flagged, 0).label("flagged"),
            sa.func.coalesce(counts.c.rejected, 0).label("rejected"),
        )
        .join(agencies, agencies.c.id == strata.c.agency_id)
        .outerjoin(counts, counts.c.stratum_id == strata.c.id)
        .outerjoin(sampled, sampled.c.stratum_id == strata.c.id)
        .where(strata.c.campaign_id == campaign.id)
        .order_by(agencies.c.code, strata.c.sector_id.nulls_first())
    )
    query = query.where(access.strata_clause(principal, strata))
    rows = [
        ProgressRow(
            **r._mapping,
            completion_pct=_pct(r.valid, r.target),
            response_rate_pct=_pct(r.received, r.sampled),
        )
        for r in (await session.execute(query)).all()
    ]

    def total(name: str) -> int:
        return sum(getattr(r, name) or 0 for r in rows)

    target = total("target") if any(r.target is not None for r in rows) else None
    totals = ProgressCounts(
        frame_size=total("frame_size") if any(r.frame_size is not None for r in rows) else None,
        target=target,
        sampled=total("sampled"),
        received=total("received"),
        valid=total("valid"),
        flagged=total("flagged"),
        rejected=total("rejected"),
        completion_pct=_pct(total("valid"), target),
        response_rate_pct=_pct(total("received"), total("sampled")),
    )
    return ProgressPublic(
        campaign_id=campaign.id, state=CampaignState(campaign.state), totals=totals, strata=rows
    )
