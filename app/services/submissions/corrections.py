"""Review, corrections and re-checks of stored forms.

Rules:
- A reviewer moves a form between states only as `REVIEWABLE` allows, saying why to flag or
  reject it; a published (or archived) campaign's forms are final.
- A surveyor corrects their own entry until it is reviewed; the correction passes the same
  checks as a new form (`checks.prepare`, without the received_at window) and the previous
  version is kept (`versions`).
- The re-check (phúc tra) list is a repeatable random share of a campaign's forms.
"""

from __future__ import annotations

import json
import uuid
from typing import cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.errors import ConflictError, FieldError, Invalid, PermissionDenied, field_errors
from app.models.agency import Agency
from app.models.base import touch
from app.models.campaign import Campaign, CampaignState
from app.models.quality import WINDOW_RULES
from app.models.submission import (
    CorrectionIn,
    RespondentType,
    ReviewIn,
    Submission,
    SubmissionDraft,
    SubmissionIn,
    SubmissionState,
    SubmissionVersion,
    SubmissionVersionPublic,
)
from app.services import access, audit, events
from app.services.principal import Principal
from app.services.submissions.checks import form_errors, open_for_writing, prepare
from app.services.submissions.common import REVIEWABLE
from app.services.submissions.read import get_submission

# The columns a correction takes anew from the prepared form besides the answers and the
# stratum (which follows from the agency): a version keeps what they held before.
_REWRITTEN = ("agency_id", "sector_id", "procedure_id", "respondent_type")


async def review(
    session: AsyncSession, actor: Principal, submission_id: uuid.UUID, data: ReviewIn
) -> Submission:
    row = await get_submission(session, actor, submission_id, lock=True)
    current = SubmissionState(row.state)
    if data.state not in REVIEWABLE.get(current, set()):
        raise ConflictError(
            "review_not_allowed", f"A {current.value} form cannot become {data.state.value}."
        )
    if data.state in (SubmissionState.rejected, SubmissionState.flagged) and not data.reason:
        raise Invalid(
            "Say why.", [FieldError("/body/reason", "required to flag or reject", "missing")]
        )
    campaign = await session.get(Campaign, row.campaign_id)
    if campaign is not None and campaign.state in (CampaignState.published, CampaignState.archived):
        raise ConflictError("campaign_locked", "The campaign is published: its forms are final.")
    row.state = data.state
    row.review_reason = data.reason
    touch(row)
    await session.flush()
    await events.submission_reviewed(session, row, current.value)
    await audit.record(
        session,
        actor,
        "submission.review",
        object_type="submission",
        object_id=row.id,
        summary={"from": current.value, "to": data.state.value, "reason": data.reason},
    )
    return row


async def correct(
    session: AsyncSession,
    settings: Settings,
    actor: Principal,
    submission_id: uuid.UUID,
    data: CorrectionIn | SubmissionDraft,
) -> Submission:
    """A surveyor fixes their own entry before review; the previous version is kept. A body
    that failed the schema is refused with its answers' errors too (`form_errors`)."""
    row = await get_submission(session, actor, submission_id, lock=True)
    if not access.may_correct(actor, row):
        raise PermissionDenied("Only the surveyor who entered a form may correct it.")
    if row.state != SubmissionState.received:
        raise ConflictError(
            "already_reviewed", "The form has been reviewed: it can no longer be corrected."
        )
    ctx = await open_for_writing(session, settings, actor, row.campaign_id)
    if isinstance(data, SubmissionDraft):
        type_errors = field_errors(data.errors, ("body",))
        raise Invalid(
            "The request is not valid; see errors.",
            form_errors(ctx.instrument, data.raw, type_errors, "/body"),
            code="validation_failed",
        )
    replacement = SubmissionIn(
        submission_id=row.client_submission_id,
        agency_code=data.agency_code
        or await session.scalar(sa.select(col(Agency.code)).where(col(Agency.id) == row.agency_id)),
        sector_code=data.sector_code,
        procedure_code=data.procedure_code,
        # the table's check constraint holds a stored value to the same two
        respondent_type=data.respondent_type
        if data.respondent_type is not None
        else cast(RespondentType | None, row.respondent_type),
        channel=row.channel,
        device_id=row.device_id,
        received_at=row.received_at,
        answers=data.answers,
    )
    prepared = await prepare(ctx, replacement, row.client_submission_id, "/body", fresh=False)
    previous = {name: getattr(row, name) for name in ("version", "answers", *_REWRITTEN)}
    session.add(
        SubmissionVersion(
            campaign_id=row.campaign_id, submission_id=row.id, replaced_by=actor.id, **previous
        )
    )
    before = {"answers": row.answers, "agency_id": row.agency_id, "version": row.version}
    row.answers = json.loads(prepared.values["answers"])  # with what _one_source filled in
    # Screened again: the per-form flags are the new answers'; the window ones stay.
    kept = {k: v for k, v in (row.flags or {}).items() if k in WINDOW_RULES}
    row.flags = {**kept, **json.loads(prepared.values["flags"])}
    for name in (*_REWRITTEN, "stratum_id"):
        setattr(row, name, prepared.values[name])
    row.version += 1
    touch(row)
    await audit.record_change(
        session,
        actor,
        row,
        "submission.correct",
        object_type="submission",
        summary=audit.diff(
            before, {"answers": row.answers, "agency_id": row.agency_id, "version": row.version}
        ),
    )
    return row


async def versions(
    session: AsyncSession, principal: Principal, submission_id: uuid.UUID
) -> list[SubmissionVersionPublic]:
    row = await get_submission(session, principal, submission_id)
    history = (
        await session.scalars(
            sa.select(SubmissionVersion)
            .where(col(SubmissionVersion.submission_id) == row.id)
            .order_by(col(SubmissionVersion.version))
        )
    ).all()
    return [SubmissionVersionPublic.model_validate(v) for v in history]


async def recheck_sample(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID, share: float, seed: str
) -> list[Submission]:
    """The re-check (phúc tra) list: a repeatable random share of the campaign's forms.

    Each form's place comes from a hash of the seed and its id, so the same seed always picks
    the same forms and a larger share only adds to a smaller one's list."""
    await access.require_campaign(session, principal, campaign_id)
    readable = access.readable_submissions(principal).where(
        col(Submission.campaign_id) == campaign_id
    )
    counted = readable.with_only_columns(sa.func.count(), maintain_column_froms=True)
    total = await session.scalar(counted) or 0
    size = int(-(-total * share // 1)) if total else 0  # ceil
    order = sa.func.md5(sa.literal(seed) + sa.cast(col(Submission.id), sa.Text))
    query = readable.order_by(order).limit(size)
    return list((await session.scalars(query)).all())
