"""Re-checks (phúc tra): a seeded random share of each surveyor's forms, plus every flagged
form, assigned to a re-check worker who contacts the respondent and records the outcome.

Sampling is reproducible: within each surveyor's forms, a form's place is the MD5 of the seed
and its id, and the first ceil(share · n) forms are drawn, so the same seed over the same forms
draws the same list. A form is re-checked at most once (a unique key): drawing again adds only
forms that are new since.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import ConflictError, FieldError, Invalid, NotFound
from app.models.campaign import Campaign
from app.models.identity import ROLE_SCOPES, Role, Scope, User
from app.models.quality import (
    Recheck,
    RecheckDrawIn,
    RecheckDrawResult,
    RecheckOutcome,
    RecheckOutcomeIn,
    RecheckPublic,
    RecheckSummary,
    SurveyorConfirmation,
)
from app.models.submission import Submission, SubmissionState
from app.services import access, audit, updates
from app.services.principal import Principal
from app.services.quality.screening import config_of

_EMPTY = sa.text("'{}'::jsonb")


def draw_order(seed: str) -> sa.ColumnElement[str]:
    """A form's place in the draw: md5(seed || id)."""
    return sa.func.md5(sa.literal(seed) + sa.cast(col(Submission.id), sa.Text))


async def draw(
    session: AsyncSession, actor: Principal, campaign_id: uuid.UUID, data: RecheckDrawIn
) -> RecheckDrawResult:
    campaign = await access.readable_campaign(session, actor, campaign_id)
    share = data.share if data.share is not None else config_of(campaign.quality).recheck_share
    if data.assigned_to is not None:
        worker = await session.get(User, data.assigned_to)
        if (
            worker is None
            or not worker.is_active
            or (Scope.rechecks_write not in ROLE_SCOPES[Role(worker.role)])
        ):
            raise Invalid(
                "The re-check worker must be an active user who may record re-checks.",
                [FieldError("/body/assigned_to", "not a re-check worker", "not_a_worker")],
            )
    rank = (
        sa.func.row_number()
        .over(partition_by=col(Submission.surveyor_id), order_by=draw_order(data.seed))
        .label("rank")
    )
    size = sa.func.count().over(partition_by=col(Submission.surveyor_id)).label("size")
    flagged = sa.or_(
        col(Submission.flags) != _EMPTY, col(Submission.state) == SubmissionState.flagged.value
    ).label("flagged")
    forms = (
        access.readable_submissions(actor)
        .with_only_columns(col(Submission.id), flagged, rank, size)
        .where(
            col(Submission.campaign_id) == campaign.id,
            col(Submission.state) != SubmissionState.rejected.value,
        )
        .subquery("forms")
    )
    picked = sa.select(
        sa.func.gen_random_uuid(),
        sa.literal(campaign.id, sa.Uuid),
        forms.c.id,
        sa.case((forms.c.flagged, "flagged"), else_="sample"),
        sa.literal(data.seed),
        sa.literal(data.assigned_to, sa.Uuid),
    ).where(sa.or_(forms.c.flagged, forms.c.rank <= sa.func.ceil(forms.c.size * share)))
    table = Recheck.metadata.tables["rechecks"]
    inserted = (
        (
            await session.execute(
                pg.insert(table)
                .from_select(
                    ["id", "campaign_id", "submission_id", "reason", "seed", "assigned_to"],
                    picked,
                    include_defaults=False,
                )
                .on_conflict_do_nothing(index_elements=["campaign_id", "submission_id"])
                .returning(table.c.id)
            )
        )
        .scalars()
        .all()
    )
    await audit.record(
        session,
        actor,
        "recheck.draw",
        object_type="campaign",
        object_id=campaign.id,
        summary={"seed": data.seed, "share": share, "drawn": len(inserted)},
    )
    items = await list_rechecks(session, actor, campaign.id, ids=list(inserted))
    return RecheckDrawResult(
        drawn=len(inserted),
        sampled=sum(i.reason == "sample" for i in items),
        flagged=sum(i.reason == "flagged" for i in items),
        items=items,
    )


def _finding(row: Recheck) -> dict[str, Any]:
    """What a re-check found, as its audit events compare it."""
    return {"outcome": row.outcome, "note": row.note}


def public(row: Recheck, surveyor_id: uuid.UUID | None) -> RecheckPublic:
    """The re-check with the surveyor of its form (a column of the submission, not of the row)."""
    return RecheckPublic.model_validate(row, update={"surveyor_id": surveyor_id})


async def list_rechecks(
    session: AsyncSession,
    principal: Principal,
    campaign_id: uuid.UUID,
    *,
    ids: list[uuid.UUID] | None = None,
    pending: bool | None = None,
) -> list[RecheckPublic]:
    await access.require_campaign(session, principal, campaign_id)
    query = (
        access.readable_rechecks(principal)
        .add_columns(col(Submission.surveyor_id))
        .where(col(Recheck.campaign_id) == campaign_id)
        .order_by(col(Recheck.created_at), col(Recheck.id))
    )
    if ids is not None:
        query = query.where(col(Recheck.id).in_(ids))
    if pending is not None:
        outcome = col(Recheck.outcome)
        query = query.where(outcome.is_(None) if pending else outcome.isnot(None))
    rows = (await session.execute(query)).all()
    return [public(r[0], r[1]) for r in rows]


async def record(
    session: AsyncSession, actor: Principal, recheck_id: uuid.UUID, data: RecheckOutcomeIn
) -> RecheckPublic:
    found = (
        await session.execute(
            access.readable_rechecks(actor)
            .add_columns(col(Submission.surveyor_id))
            .where(col(Recheck.id) == recheck_id)
            .with_for_update(of=Recheck)
        )
    ).first()
    if found is None:
        raise NotFound("recheck")
    row, surveyor_id = found[0], found[1]
    if row.assigned_to is not None and row.assigned_to != actor.id and not actor.is_admin:
        raise ConflictError(
            "recheck_assigned_elsewhere", "This re-check is assigned to another worker."
        )
    changed = updates.apply_changes(
        row, {"outcome": data.outcome.value, "note": data.note}, _finding
    )
    row.checked_by = actor.id
    row.checked_at = datetime.now(UTC)
    await audit.record_change(
        session, actor, row, "recheck.record", object_type="recheck", summary=changed.diff()
    )
    return public(row, surveyor_id)


async def summary(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID
) -> RecheckSummary:
    """Per surveyor: re-checks, done, confirmed and the confirmation rate (of those done,
    `unreachable` not counted as done)."""
    await access.require_campaign(session, principal, campaign_id)
    base = access.readable_rechecks(principal).where(col(Recheck.campaign_id) == campaign_id)
    done = sa.func.count().filter(
        col(Recheck.outcome).in_([RecheckOutcome.confirmed, RecheckOutcome.not_confirmed])
    )
    confirmed = sa.func.count().filter(col(Recheck.outcome) == RecheckOutcome.confirmed)
    rows = (
        await session.execute(
            base.with_only_columns(
                col(Submission.surveyor_id),
                sa.func.count().label("rechecks"),
                done.label("done"),
                confirmed.label("confirmed"),
            )
            .group_by(col(Submission.surveyor_id))
            .order_by(col(Submission.surveyor_id).nulls_last())
        )
    ).all()
    pending = (
        await session.scalar(
            base.with_only_columns(sa.func.count()).where(col(Recheck.outcome).is_(None))
        )
        or 0
    )
    lines = [
        SurveyorConfirmation(
            **r._mapping,
            confirmation_rate_pct=round(100 * r.confirmed / r.done, 2) if r.done else None,
        )
        for r in rows
    ]
    total = sum(line.rechecks for line in lines)
    return RecheckSummary(
        campaign_id=campaign_id,
        total=total,
        done=total - pending,
        pending=pending,
        surveyors=lines,
    )


async def require_rechecked(session: AsyncSession, campaign: Campaign) -> None:
    """The publication gate: with `require_recheck_before_publication`, a campaign is
    published only once a re-check was drawn and every re-check has its outcome."""
    if not config_of(campaign.quality).require_recheck_before_publication:
        return
    counts = (
        await session.execute(
            sa.select(
                sa.func.count(), sa.func.count().filter(col(Recheck.outcome).is_(None))
            ).where(col(Recheck.campaign_id) == campaign.id)
        )
    ).one()
    if counts[0] == 0 or counts[1]:
        raise ConflictError(
            "recheck_pending",
            "The campaign requires re-checks before publication: "
            + (
                "none has been drawn."
                if counts[0] == 0
                else f"{counts[1]} re-check(s) still have no outcome."
            ),
            extra={"rechecks": counts[0], "pending": counts[1]},
        )
