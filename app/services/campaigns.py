"""Campaigns: creation, the state machine and its edit rules, strata and targets, progress."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import ConflictError, FieldError, Invalid, NotFound
from app.models.agency import Agency
from app.models.base import touch
from app.models.campaign import (
    AllocateRequest,
    AllocationPublic,
    Campaign,
    CampaignAgency,
    CampaignCreate,
    CampaignPage,
    CampaignPublic,
    CampaignSector,
    CampaignState,
    CampaignUpdate,
    FrameContact,
    FrameUnit,
    ProgressCounts,
    ProgressPublic,
    ProgressRow,
    StrataReplace,
    Stratum,
    StratumPublic,
)
from app.models.catalogue import Sector
from app.models.identity import Scope
from app.models.questionnaire import Questionnaire
from app.models.report import Report
from app.models.submission import Submission
from app.services import access, audit, events, reports, updates
from app.services.index import rollups
from app.services.paging import cursor_str, decode_cursor, keyset_page
from app.services.principal import Principal
from app.services.quality import rechecks
from app.services.sampling import allocate, sample_size

S = CampaignState
# Which states a campaign may move to from each state.
TRANSITIONS: dict[CampaignState, tuple[CampaignState, ...]] = {
    S.draft: (S.open,),
    S.open: (S.closed,),
    S.closed: (S.open, S.published),
    S.published: (S.archived,),
    S.archived: (),
}
# Which fields may change in each state. Scope and questionnaire only while a draft.
EDITABLE: dict[CampaignState, frozenset[str]] = {
    S.draft: frozenset(CampaignUpdate.model_fields),
    S.open: frozenset({"name", "fieldwork_end"}),
    S.closed: frozenset({"name"}),
    S.published: frozenset(),
    S.archived: frozenset(),
}


async def campaign_scope(
    session: AsyncSession, campaign_id: uuid.UUID
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    agencies = (
        await session.scalars(
            sa.select(col(CampaignAgency.agency_id))
            .where(col(CampaignAgency.campaign_id) == campaign_id)
            .order_by(col(CampaignAgency.agency_id))
        )
    ).all()
    sectors = (
        await session.scalars(
            sa.select(col(CampaignSector.sector_id))
            .where(col(CampaignSector.campaign_id) == campaign_id)
            .order_by(col(CampaignSector.sector_id))
        )
    ).all()
    return list(agencies), list(sectors)


async def public(session: AsyncSession, campaign: Campaign) -> CampaignPublic:
    agencies, sectors = await campaign_scope(session, campaign.id)
    data = {
        name: getattr(campaign, name)
        for name in CampaignPublic.model_fields
        if hasattr(campaign, name)
    }
    return CampaignPublic(**data, agency_ids=agencies, sector_ids=sectors)


def _snapshot(campaign: Campaign) -> dict[str, Any]:
    return {
        name: getattr(campaign, name)
        for name in (
            "name",
            "year",
            "questionnaire_id",
            "state",
            "period_start",
            "period_end",
            "fieldwork_start",
            "fieldwork_end",
            "map_date",
            "margin",
            "min_per_stratum",
            "rates_dossiers",
        )
    }


async def _check_refs(
    session: AsyncSession,
    *,
    questionnaire_id: uuid.UUID | None,
    agency_ids: list[uuid.UUID] | None,
    sector_ids: list[uuid.UUID] | None,
) -> None:
    errors: list[FieldError] = []
    if questionnaire_id is not None and await session.get(Questionnaire, questionnaire_id) is None:
        errors.append(FieldError("/body/questionnaire_id", "no such questionnaire", "unknown"))
    for field, model, ids in (
        ("agency_ids", Agency, agency_ids),
        ("sector_ids", Sector, sector_ids),
    ):
        if not ids:
            continue
        found = set(
            (await session.scalars(sa.select(col(model.id)).where(col(model.id).in_(ids)))).all()
        )
        for i, ref in enumerate(ids):
            if ref not in found:
                errors.append(FieldError(f"/body/{field}/{i}", "no such id", "unknown"))
    if errors:
        raise Invalid("The campaign refers to things that do not exist.", errors)


def _check_dates(c: Campaign) -> None:
    errors = []
    if c.period_end < c.period_start:
        errors.append(FieldError("/body/period_end", "before period_start", "bad_range"))
    if c.fieldwork_end < c.fieldwork_start:
        errors.append(FieldError("/body/fieldwork_end", "before fieldwork_start", "bad_range"))
    if errors:
        raise Invalid("The dates are not in order.", errors)


async def _set_scope(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    agency_ids: list[uuid.UUID] | None,
    sector_ids: list[uuid.UUID] | None,
) -> None:
    if agency_ids is not None:
        await session.execute(
            sa.delete(CampaignAgency).where(col(CampaignAgency.campaign_id) == campaign_id)
        )
        if agency_ids:
            await session.execute(
                sa.insert(CampaignAgency),
                [{"campaign_id": campaign_id, "agency_id": a} for a in dict.fromkeys(agency_ids)],
            )
    if sector_ids is not None:
        await session.execute(
            sa.delete(CampaignSector).where(col(CampaignSector.campaign_id) == campaign_id)
        )
        if sector_ids:
            await session.execute(
                sa.insert(CampaignSector),
                [{"campaign_id": campaign_id, "sector_id": s} for s in dict.fromkeys(sector_ids)],
            )


async def create_campaign(
    session: AsyncSession, actor: Principal | None, data: CampaignCreate, *, synthetic: bool = False
) -> Campaign:
    await _check_refs(
        session,
        questionnaire_id=data.questionnaire_id,
        agency_ids=data.agency_ids,
        sector_ids=data.sector_ids,
    )
    fields = data.model_dump(exclude={"agency_ids", "sector_ids", "map_date"})
    campaign = Campaign(**fields, map_date=data.map_date or data.period_end, is_synthetic=synthetic)
    _check_dates(campaign)
    taken = await session.scalar(sa.select(col(Campaign.id)).where(col(Campaign.code) == data.code))
    if taken is not None:
        raise ConflictError("campaign_code_taken", f"A campaign with code {data.code!r} exists.")
    session.add(campaign)
    await session.flush()
    await _set_scope(session, campaign.id, data.agency_ids, data.sector_ids)
    await audit.record(
        session,
        actor,
        "campaign.create",
        object_type="campaign",
        object_id=campaign.id,
        summary={"after": _snapshot(campaign)},
    )
    return campaign


async def get_campaign(
    session: AsyncSession,
    principal: Principal | None,
    campaign_id: uuid.UUID,
    *,
    lock: bool = False,
) -> Campaign:
    """The campaign, or 404 when it does not exist or the caller is a client bound elsewhere."""
    return await access.readable_campaign(session, principal, campaign_id, lock=lock)


async def list_campaigns(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    state: CampaignState | None = None,
    year: int | None = None,
) -> CampaignPage:
    query = access.readable_campaigns(principal).order_by(col(Campaign.code))
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(col(Campaign.code) > cursor_str(after, "code"))
    if state is not None:
        query = query.where(col(Campaign.state) == state)
    if year is not None:
        query = query.where(col(Campaign.year) == year)
    rows, next_cursor = await keyset_page(
        session, query, limit=limit, key=lambda c: {"code": c.code}
    )
    return CampaignPage(items=[await public(session, c) for c in rows], next_cursor=next_cursor)


async def update_campaign(
    session: AsyncSession, actor: Principal, campaign_id: uuid.UUID, data: CampaignUpdate
) -> Campaign:
    campaign = await get_campaign(session, actor, campaign_id, lock=True)
    changes = updates.sent(data)
    state = CampaignState(campaign.state)
    refused = sorted(set(changes) - EDITABLE[state])
    if refused:
        raise ConflictError(
            "campaign_locked",
            f"A campaign that is {state.value} cannot change: {', '.join(refused)}.",
            errors=[
                FieldError(f"/body/{f}", f"not editable while {state.value}", "locked")
                for f in refused
            ],
        )
    await _check_refs(
        session,
        questionnaire_id=changes.get("questionnaire_id"),
        agency_ids=changes.get("agency_ids"),
        sector_ids=changes.get("sector_ids"),
    )

    def derive(campaign: Campaign) -> None:
        if "map_date" in changes and changes["map_date"] is None:
            campaign.map_date = campaign.period_end
        _check_dates(campaign)

    changed = updates.apply_changes(
        campaign, changes, _snapshot, skip=("agency_ids", "sector_ids"), derive=derive
    )
    touch(campaign)
    await session.flush()
    await _set_scope(session, campaign.id, changes.get("agency_ids"), changes.get("sector_ids"))
    summary = changed.diff()
    for key in ("agency_ids", "sector_ids"):
        if key in changes:
            summary[key] = [str(x) for x in changes[key]]
    await audit.record(
        session,
        actor,
        "campaign.update",
        object_type="campaign",
        object_id=campaign.id,
        summary=summary,
    )
    return campaign


async def transition(
    session: AsyncSession,
    actor: Principal | None,
    campaign_id: uuid.UUID,
    to: CampaignState,
    reason: str | None = None,
) -> Campaign:
    """Move the campaign to `to`. Publishing (closed → published) takes the report's snapshot
    in the same transaction, so a published campaign always has its report; it needs the
    scope reports:write besides campaigns:write. `actor` None is the system."""
    campaign, _ = await _transition(session, actor, campaign_id, to, reason)
    return campaign


async def publish(
    session: AsyncSession, actor: Principal | None, campaign_id: uuid.UUID, reason: str | None
) -> Report:
    """`publish_once` for callers that do not care whether a version was stored."""
    report, _ = await publish_once(session, actor, campaign_id, reason)
    return report


async def publish_once(
    session: AsyncSession, actor: Principal | None, campaign_id: uuid.UUID, reason: str | None
) -> tuple[Report, bool]:
    """Publish a closed campaign (it becomes `published`, with its report) or re-publish a
    published one: a new report version, with True, unless the inputs are those of the latest
    version, which is answered with False. `actor` None is the system (the demo loader)."""
    campaign = await get_campaign(session, actor, campaign_id, lock=True)
    state = CampaignState(campaign.state)
    if state is S.closed:
        _, report = await _transition(session, actor, campaign_id, S.published, reason)
        if report is None:  # pragma: no cover - publishing always makes one
            raise NotFound("report")
        return report, True
    if state is not S.published:
        raise ConflictError(
            "campaign_not_closed",
            f"A campaign that is {state.value} cannot be published; close it first.",
        )
    return await reports.snapshot(session, actor, campaign, reason)


async def _transition(
    session: AsyncSession,
    actor: Principal | None,
    campaign_id: uuid.UUID,
    to: CampaignState,
    reason: str | None,
) -> tuple[Campaign, Report | None]:
    campaign = await get_campaign(session, actor, campaign_id, lock=True)
    current = CampaignState(campaign.state)
    if to not in TRANSITIONS[current]:
        allowed = ", ".join(s.value for s in TRANSITIONS[current]) or "nothing (final state)"
        raise ConflictError(
            "transition_not_allowed",
            f"A campaign that is {current.value} cannot become {to.value}; "
            f"it may become: {allowed}.",
            extra={
                "from": current.value,
                "to": to.value,
                "allowed": [s.value for s in TRANSITIONS[current]],
            },
        )
    now = datetime.now(UTC)
    if to is S.open and current is S.draft:
        agencies, _ = await campaign_scope(session, campaign.id)
        if not agencies:
            raise ConflictError(
                "campaign_without_scope", "Add agencies to the campaign before opening it."
            )
        await session.execute(
            sa.update(Questionnaire)
            .where(
                col(Questionnaire.id) == campaign.questionnaire_id,
                col(Questionnaire.frozen_at).is_(None),
            )
            .values(frozen_at=now)
        )
        campaign.opened_at = now
        await session.flush()
        # No form counts yet, so this only lists the campaign for its roll-ups.
        await rollups.install(session, campaign.id)
    elif to is S.closed:
        campaign.closed_at = now
    elif to is S.published:
        if actor is not None:
            actor.require(Scope.reports_write)
        await rechecks.require_rechecked(session, campaign)
        campaign.published_at = now
    elif to is S.archived:
        # Contact data is kept only as long as fieldwork needs it.
        await session.execute(
            sa.delete(FrameContact).where(
                col(FrameContact.frame_unit_id).in_(
                    sa.select(col(FrameUnit.id)).where(col(FrameUnit.campaign_id) == campaign.id)
                )
            )
        )
        campaign.archived_at = now
    campaign.state = to
    touch(campaign, at=now)
    await session.flush()
    await audit.record(
        session,
        actor,
        "campaign.transition",
        object_type="campaign",
        object_id=campaign.id,
        summary={"from": current.value, "to": to.value, "reason": reason},
    )
    await events.campaign_transitioned(session, campaign, current.value, reason)
    report = None
    if to is S.published:
        # Publishing is the moment the snapshot is taken.
        report, _ = await reports.snapshot(session, actor, campaign, reason)
    return campaign, report


# ---- strata and targets ------------------------------------------------------------------------


def stratum_public(s: Stratum) -> StratumPublic:
    return StratumPublic.model_validate(s, from_attributes=True)


async def list_strata(
    session: AsyncSession, principal: Principal | None, campaign_id: uuid.UUID
) -> list[Stratum]:
    """The campaign's strata the caller may see; `None` (the campaign's own writes) all of them."""
    await get_campaign(session, principal, campaign_id)
    return list((await session.scalars(access.readable_strata(principal, campaign_id))).all())


def require_state(campaign: Campaign, *states: CampaignState, what: str) -> None:
    if CampaignState(campaign.state) not in states:
        allowed = " or ".join(s.value for s in states)
        raise ConflictError(
            "campaign_locked",
            f"{what} only while the campaign is {allowed}; it is {campaign.state}.",
        )


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
    await session.flush()
    await audit.record(
        session,
        actor,
        "campaign.allocate",
        object_type="campaign",
        object_id=campaign.id,
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
            strata.c.id,
            strata.c.agency_id,
            agencies.c.code,
            agencies.c.name,
            strata.c.sector_id,
            strata.c.frame_size,
            strata.c.target,
            sa.func.coalesce(sampled.c.sampled, 0),
            sa.func.coalesce(counts.c.received, 0),
            sa.func.coalesce(counts.c.valid, 0),
            sa.func.coalesce(counts.c.flagged, 0),
            sa.func.coalesce(counts.c.rejected, 0),
        )
        .join(agencies, agencies.c.id == strata.c.agency_id)
        .outerjoin(counts, counts.c.stratum_id == strata.c.id)
        .outerjoin(sampled, sampled.c.stratum_id == strata.c.id)
        .where(strata.c.campaign_id == campaign.id)
        .order_by(agencies.c.code, strata.c.sector_id.nulls_first())
    )
    query = query.where(access.strata_clause(principal, strata))
    rows = []
    for r in (await session.execute(query)).all():
        rows.append(
            ProgressRow(
                stratum_id=r[0],
                agency_id=r[1],
                agency_code=r[2],
                agency_name=r[3],
                sector_id=r[4],
                frame_size=r[5],
                target=r[6],
                sampled=r[7],
                received=r[8],
                valid=r[9],
                flagged=r[10],
                rejected=r[11],
                completion_pct=_pct(r[9], r[6]),
                response_rate_pct=_pct(r[8], r[7]),
            )
        )

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
