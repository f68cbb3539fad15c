"""Campaigns: creation, reading, the state machine and its edit rules, publishing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import ConflictError, FieldError, Invalid, NotFound
from app.models.agency import Agency
from app.models.base import touch
from app.models.campaign import (
    TRANSITIONS,
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
)
from app.models.catalogue import Sector
from app.models.identity import Scope
from app.models.questionnaire import Questionnaire
from app.models.report import Report
from app.services import access, audit, events, reports, rows, updates
from app.services.index import rollups
from app.services.paging import cursor_str, decode_cursor, keyset_page
from app.services.principal import Principal
from app.services.quality import rechecks

S = CampaignState
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


_snapshot = updates.fields(
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
    """Replace the campaign's agencies and sectors; None leaves that part as it is."""
    await _replace_links(session, CampaignAgency, "agency_id", campaign_id, agency_ids)
    await _replace_links(session, CampaignSector, "sector_id", campaign_id, sector_ids)


async def _replace_links(
    session: AsyncSession,
    link: type[CampaignAgency] | type[CampaignSector],
    column: str,
    campaign_id: uuid.UUID,
    ids: list[uuid.UUID] | None,
) -> None:
    if ids is None:
        return
    await session.execute(sa.delete(link).where(col(link.campaign_id) == campaign_id))
    if ids:
        await session.execute(
            sa.insert(link), [{"campaign_id": campaign_id, column: i} for i in dict.fromkeys(ids)]
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
    if await rows.taken(session, col(Campaign.code), data.code):
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
    found, next_cursor = await keyset_page(
        session, query, limit=limit, key=lambda c: {"code": c.code}
    )
    return CampaignPage(items=[await public(session, c) for c in found], next_cursor=next_cursor)


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
    await audit.record_change(
        session,
        actor,
        campaign,
        "campaign.transition",
        object_type="campaign",
        summary={"from": current.value, "to": to.value, "reason": reason},
    )
    await events.campaign_transitioned(session, campaign, current.value, reason)
    report = None
    if to is S.published:
        # Publishing is the moment the snapshot is taken.
        report, _ = await reports.snapshot(session, actor, campaign, reason)
    return campaign, report


def require_state(campaign: Campaign, *states: CampaignState, what: str) -> None:
    if CampaignState(campaign.state) not in states:
        allowed = " or ".join(s.value for s in states)
        raise ConflictError(
            "campaign_locked",
            f"{what} only while the campaign is {allowed}; it is {campaign.state}.",
        )
