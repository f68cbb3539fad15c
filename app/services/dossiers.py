"""Dossier events from the one-stop system, and the rating invitations they produce.

An event is idempotent by dossier code: the same event again answers the same dossier and the
same invitation tokens; another event under a code already used is a conflict. For each open
campaign that rates dossiers and covers the dossier's agency and date, the dossier gets one
invitation bound to that campaign, agency and procedure.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.errors import AppError, ConflictError, FieldError, Invalid, NotFound, pointer_from_loc
from app.models.agency import Agency
from app.models.base import FieldProblem
from app.models.campaign import Campaign, CampaignAgency, CampaignState
from app.models.catalogue import Procedure
from app.models.dossier import (
    Dossier,
    DossierBatchResult,
    DossierEvent,
    DossierResult,
    Invitation,
    InvitationPublic,
)
from app.models.timestamps import window_problem
from app.security import read_invitation, sign_invitation
from app.services import access, audit, events
from app.services.principal import Principal


def _event_hash(event: DossierEvent) -> str:
    canonical = {
        "code": event.code,
        "procedure_code": event.procedure_code,
        "agency_code": event.agency_code,
        "returned_at": event.returned_at.astimezone(UTC).isoformat(),
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def form_url(settings: Settings, token: str) -> str | None:
    """The rating form's link for a token: PUBLIC_FORM_URL?invitation=<token>, when set."""
    if not settings.public_form_url:
        return None
    separator = "&" if "?" in settings.public_form_url else "?"
    return f"{settings.public_form_url}{separator}invitation={token}"


def invitation_public(invitation: Invitation, settings: Settings) -> InvitationPublic:
    token = sign_invitation(invitation.id, settings.secret_key.get_secret_value())
    url = form_url(settings, token)
    return InvitationPublic(
        campaign_id=invitation.campaign_id,
        token=token,
        form_url=url,
        url=url,
        expires_at=invitation.expires_at,
        used=invitation.used_at is not None,
        used_at=invitation.used_at,
    )


async def _invitations_of(session: AsyncSession, dossier_id: uuid.UUID) -> list[Invitation]:
    return list(
        (
            await session.scalars(
                sa.select(Invitation)
                .where(col(Invitation.dossier_id) == dossier_id)
                .order_by(col(Invitation.created_at))
            )
        ).all()
    )


async def _rating_campaigns(
    session: AsyncSession, agency_id: uuid.UUID, day: datetime
) -> list[Campaign]:
    """Open campaigns that rate dossiers, cover the day, and whose scope holds the agency or
    one of its ancestors."""
    covering = sa.select(col(CampaignAgency.campaign_id)).where(
        col(CampaignAgency.agency_id).in_(_ancestors_and_self(agency_id))
    )
    return list(
        (
            await session.scalars(
                sa.select(Campaign).where(
                    col(Campaign.state) == CampaignState.open,
                    col(Campaign.rates_dossiers).is_(True),
                    col(Campaign.period_start) <= day.date(),
                    col(Campaign.period_end) >= day.date(),
                    col(Campaign.id).in_(covering),
                )
            )
        ).all()
    )


def _ancestors_and_self(agency_id: uuid.UUID) -> sa.Select[tuple[uuid.UUID]]:
    agencies = Agency.metadata.tables["agencies"]
    up = sa.select(agencies.c.id, agencies.c.parent_id).where(agencies.c.id == agency_id)
    chain = up.cte("chain", recursive=True)
    chain = chain.union(
        sa.select(agencies.c.id, agencies.c.parent_id).join(
            chain, agencies.c.id == chain.c.parent_id
        )
    )
    return sa.select(chain.c.id)


async def record_event(
    session: AsyncSession,
    settings: Settings,
    actor: Principal,
    event: DossierEvent,
    index: int,
) -> DossierResult:
    """One event: created, duplicate, or error (the errors say which field)."""
    base = f"/dossiers/{index}"
    errors: list[FieldError] = []
    procedure = await session.scalar(
        sa.select(Procedure).where(col(Procedure.code) == event.procedure_code)
    )
    if procedure is None:
        errors.append(FieldError(f"{base}/procedure_code", "no procedure has this code", "unknown"))
    agency = await session.scalar(
        access.readable_agencies(actor).where(col(Agency.code) == event.agency_code)
    )
    if agency is None:
        errors.append(
            FieldError(f"{base}/agency_code", "no agency with this code in your scope", "unknown")
        )
    too_far = window_problem(
        event.returned_at,
        datetime.now(UTC),
        max_age=timedelta(days=settings.returned_at_max_age_days),
        max_ahead=timedelta(seconds=settings.client_clock_skew_seconds),
    )
    if too_far is not None:
        errors.append(FieldError(f"{base}/returned_at", too_far, "out_of_window"))
    if errors or procedure is None or agency is None:
        return DossierResult(
            index=index,
            code=event.code,
            status="error",
            errors=[FieldProblem(**e.as_dict()) for e in errors],
        )

    request_hash = _event_hash(event)
    inserted = await session.scalar(
        insert(Dossier)
        .values(
            code=event.code,
            procedure_id=procedure.id,
            agency_id=agency.id,
            returned_at=event.returned_at,
            request_hash=request_hash,
            client_id=actor.id if actor.kind == "client" else None,
        )
        .on_conflict_do_nothing(index_elements=["code"])
        .returning(col(Dossier.id))
    )
    if inserted is None:
        existing = await session.scalar(sa.select(Dossier).where(col(Dossier.code) == event.code))
        if existing is None or existing.request_hash != request_hash:
            conflict = FieldError(
                f"{base}/code", "this dossier code was reported with other details", "conflict"
            )
            return DossierResult(
                index=index,
                code=event.code,
                status="error",
                errors=[FieldProblem(**conflict.as_dict())],
            )
        invitations = await _invitations_of(session, existing.id)
        return DossierResult(
            index=index,
            code=event.code,
            status="duplicate",
            dossier_id=existing.id,
            invitations=[invitation_public(i, settings) for i in invitations],
        )

    now = datetime.now(UTC)
    created: list[Invitation] = []
    for campaign in await _rating_campaigns(session, agency.id, event.returned_at):
        fieldwork_end = datetime.combine(campaign.fieldwork_end, time.max, tzinfo=UTC)
        invitation = Invitation(
            dossier_id=inserted,
            campaign_id=campaign.id,
            agency_id=agency.id,
            procedure_id=procedure.id,
            expires_at=min(now + timedelta(days=settings.invitation_days), fieldwork_end),
        )
        session.add(invitation)
        created.append(invitation)
    await session.flush()
    await audit.record(
        session,
        actor,
        "dossier.create",
        object_type="dossier",
        object_id=inserted,
        summary={"code": event.code, "invitations": len(created)},
    )
    await events.dossier_received(
        session, inserted, event.code, agency.id, procedure.id, event.returned_at, created
    )
    return DossierResult(
        index=index,
        code=event.code,
        status="created",
        dossier_id=inserted,
        invitations=[invitation_public(i, settings) for i in created],
    )


async def record_single(
    session: AsyncSession, settings: Settings, actor: Principal, event: DossierEvent
) -> DossierResult:
    result = await record_event(session, settings, actor, event, 0)
    if result.status == "error":
        problems = [
            FieldError(e.pointer.replace("/dossiers/0", "/body"), e.detail, e.code)
            for e in result.errors or []
        ]
        if any(p.code == "conflict" for p in problems):
            raise ConflictError(
                "dossier_conflict",
                "This dossier code was already reported with other details.",
                errors=problems,
            )
        raise Invalid("The dossier event is not valid.", problems)
    return result


async def record_batch(
    session: AsyncSession, settings: Settings, actor: Principal, items: list[dict[str, Any]]
) -> DossierBatchResult:
    results = []
    for index, raw in enumerate(items):
        try:
            event = DossierEvent.model_validate(raw)
        except ValidationError as exc:
            code = raw.get("code")
            problems = [
                FieldError(f"/dossiers/{index}" + pointer_from_loc(e["loc"]), e["msg"], e["type"])
                for e in exc.errors()
            ]
            results.append(
                DossierResult(
                    index=index,
                    code=code if isinstance(code, str) else None,
                    status="error",
                    errors=[FieldProblem(**p.as_dict()) for p in problems],
                )
            )
            continue
        async with session.begin_nested():  # one event's failure never undoes another's
            results.append(await record_event(session, settings, actor, event, index))
    return DossierBatchResult(
        results=results,
        created=sum(r.status == "created" for r in results),
        duplicates=sum(r.status == "duplicate" for r in results),
        errors=sum(r.status == "error" for r in results),
    )


async def lock_invitations(session: AsyncSession, settings: Settings, tokens: list[str]) -> None:
    """Lock every invitation the tokens name, in one order (by id), before a batch claims them.

    Claiming them item by item, in the batch's order, two batches naming the same invitations
    in another order would each hold one and wait for the other (a deadlock). Tokens that name
    no invitation are left for the claim to refuse."""
    secret = settings.secret_key.get_secret_value()
    ids = sorted({i for i in (read_invitation(t, secret) for t in tokens) if i is not None})
    if ids:
        await session.execute(
            sa.select(col(Invitation.id))
            .where(col(Invitation.id).in_(ids))
            .order_by(col(Invitation.id))
            .with_for_update()
        )


async def claim_invitation(
    session: AsyncSession, settings: Settings, token: str, campaign_id: uuid.UUID
) -> Invitation:
    """Lock the invitation a token names for one submission; refuse reuse, expiry, other campaign.

    The caller sets `used_at` and `submission_id` in the same transaction as the submission; the
    unique `submissions.invitation_id` refuses a second form even if a caller forgot to lock.
    """
    invitation_id = read_invitation(token, settings.secret_key.get_secret_value())
    if invitation_id is None:
        raise _bad_invitation("invitation_invalid", "The invitation is not valid.")
    invitation = await session.scalar(
        sa.select(Invitation)
        .where(col(Invitation.id) == invitation_id)
        .with_for_update()
        # a row locked after a concurrent request used it is read again, not taken from the
        # session's identity map
        .execution_options(populate_existing=True)
    )
    if invitation is None or invitation.campaign_id != campaign_id:
        raise _bad_invitation("invitation_invalid", "The invitation is not for this campaign.")
    if invitation.used_at is not None:
        raise invitation_used("/body/invitation")
    if invitation.expires_at <= datetime.now(UTC):
        raise AppError(
            "invitation_expired",
            "This invitation has expired.",
            410,
            errors=[FieldError("/body/invitation", "expired", "invitation_expired")],
        )
    return invitation


def invitation_used(pointer: str) -> AppError:
    return ConflictError(
        "invitation_used",
        "This invitation has already been used: one invitation makes one form.",
        errors=[FieldError(pointer, "already used", "invitation_used")],
    )


def _bad_invitation(code: str, detail: str) -> AppError:
    return AppError(code, detail, 422, errors=[FieldError("/body/invitation", detail, code)])


async def get_dossier(
    session: AsyncSession, settings: Settings, actor: Principal, code: str
) -> DossierResult:
    """A dossier already reported, with its invitations' tokens (for a system that lost them)."""
    dossier = await session.scalar(access.readable_dossiers(actor).where(col(Dossier.code) == code))
    if dossier is None:
        raise NotFound("dossier")
    invitations = await _invitations_of(session, dossier.id)
    return DossierResult(
        index=0,
        code=dossier.code,
        status="duplicate",
        dossier_id=dossier.id,
        invitations=[invitation_public(i, settings) for i in invitations],
    )
