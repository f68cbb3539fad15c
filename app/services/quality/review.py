"""Review at scale: many forms in one call and one transaction, and the queue by risk.

A bulk review is three statements whatever its size: the UPDATE of every form it may change
(locked, and only those whose state may become the new one), one audit event per changed form
in one multi-row INSERT, and one `submission.reviewed` event per form in one INSERT.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import ConflictError, FieldError, Invalid
from app.models.campaign import CampaignState
from app.models.quality import (
    BulkReviewIn,
    BulkReviewItem,
    BulkReviewResult,
    QueueItem,
    ReviewFilter,
    ReviewQueue,
)
from app.models.submission import Submission, SubmissionState
from app.services import access, audit, events
from app.services.principal import Principal
from app.services.submissions import REVIEWABLE

_SUMMARY = "CAST(CAST(:audit_summary AS text) AS jsonb)"
# One audit event per reviewed form, its own previous state added to the shared summary.
_AUDIT = sa.text(
    audit.insert_per_row(
        "unnest(CAST(:ids AS uuid[]), CAST(:froms AS text[])) AS u(id, from_state)",
        "u.id::text",
    ).replace(_SUMMARY, f"{_SUMMARY} || jsonb_build_object('from', u.from_state)")
)
assert "u.from_state" in str(_AUDIT)  # noqa: S101 - the replacement above must have matched


_FLAGS = Submission.metadata.tables["submissions"].c.flags


def _filtered(
    principal: Principal, campaign_id: uuid.UUID, f: ReviewFilter
) -> sa.Select[Submission]:
    query = access.readable_submissions(principal).where(
        col(Submission.campaign_id) == campaign_id, col(Submission.state) == f.state
    )
    if f.agency_id is not None:
        query = query.where(col(Submission.agency_id).in_(access.subtree(f.agency_id)))
    if f.surveyor_id is not None:
        query = query.where(col(Submission.surveyor_id) == f.surveyor_id)
    if f.flag is not None:
        query = query.where(_FLAGS.has_key(f.flag.value))
    if f.clean is True:
        query = query.where(col(Submission.flags) == sa.text("'{}'::jsonb"))
    elif f.clean is False:
        query = query.where(col(Submission.flags) != sa.text("'{}'::jsonb"))
    if f.since is not None:
        query = query.where(col(Submission.received_at) >= f.since)
    if f.until is not None:
        query = query.where(col(Submission.received_at) < f.until)
    return query


async def bulk_review(
    session: AsyncSession, actor: Principal, campaign_id: uuid.UUID, data: BulkReviewIn
) -> BulkReviewResult:
    """Review the forms named by `ids` or matched by `filter`; a per-item result.

    With ids, each id is `reviewed`, `not_allowed` (its state cannot become the new one) or
    `not_found` (no such form, or outside the caller's scope); with a filter, the forms it
    matched are listed as reviewed."""
    if (data.ids is None) == (data.filter is None):
        raise Invalid(
            "Name the forms by ids or by a filter, not both.",
            [FieldError("/body/ids", "give exactly one of ids and filter", "one_of")],
        )
    if data.state in (SubmissionState.rejected, SubmissionState.flagged) and not data.reason:
        raise Invalid(
            "Say why.", [FieldError("/body/reason", "required to flag or reject", "missing")]
        )
    if data.state == SubmissionState.received:
        raise Invalid(
            "A review makes a form valid, flagged or rejected.",
            [FieldError("/body/state", "not a review outcome", "invalid_state")],
        )
    campaign = await access.readable_campaign(session, actor, campaign_id, lock=True)
    if campaign.state in (CampaignState.published, CampaignState.archived):
        raise ConflictError("campaign_locked", "The campaign is published: its forms are final.")
    movable = [s for s, targets in REVIEWABLE.items() if data.state in targets]
    if data.ids is not None:
        source = access.readable_submissions(principal=actor).where(
            col(Submission.campaign_id) == campaign_id,
            col(Submission.id) == sa.any_(sa.cast(sa.literal(data.ids), sa.ARRAY(sa.Uuid))),
        )
    else:
        assert data.filter is not None  # noqa: S101 - checked above
        source = _filtered(actor, campaign_id, data.filter)
    target = (
        source.with_only_columns(col(Submission.id), col(Submission.state))
        .where(col(Submission.state).in_([s.value for s in movable]))
        .with_for_update()
        .cte("target")
    )
    now = datetime.now(UTC)
    changed = (
        await session.execute(
            sa.update(Submission)
            .where(col(Submission.id) == target.c.id)
            .values(state=data.state.value, review_reason=data.reason, updated_at=now)
            .returning(
                col(Submission.id),
                target.c.state,
                col(Submission.client_submission_id),
                col(Submission.agency_id),
            )
        )
    ).all()
    reviewed = {row[0]: row[1] for row in changed}
    if changed:
        event = audit.event_values(
            actor,
            "submission.review",
            object_type="submission",
            summary={"to": data.state.value, "reason": data.reason, "bulk": True},
        )
        await session.execute(
            _AUDIT,
            {
                "ids": [row[0] for row in changed],
                "froms": [row[1] for row in changed],
                **audit.row_params(event),
            },
        )
        await events.emit_many(
            session,
            [
                events.reviewed(
                    (row[0], row[2]),
                    (campaign_id, row[3]),
                    (row[1], data.state.value, data.reason),
                    now,
                )
                for row in changed
            ],
        )
    # The request itself, whatever it changed (each changed form has its own event above).
    await audit.record(
        session,
        actor,
        "submission.review_many",
        object_type="campaign",
        object_id=campaign_id,
        summary={
            "to": data.state.value,
            "reason": data.reason,
            "ids": len(data.ids) if data.ids is not None else None,
            "filter": data.filter.model_dump(mode="json", exclude_none=True)
            if data.filter is not None
            else None,
            "reviewed": len(reviewed),
        },
    )
    items: list[BulkReviewItem] = []
    if data.ids is not None:
        others = set(data.ids) - reviewed.keys()
        seen: set[uuid.UUID] = set()
        if others:
            seen = set(
                (
                    await session.scalars(
                        access.readable_submissions(actor)
                        .with_only_columns(col(Submission.id))
                        .where(
                            col(Submission.campaign_id) == campaign_id,
                            col(Submission.id).in_(others),
                        )
                    )
                ).all()
            )
        for form_id in dict.fromkeys(data.ids):
            if form_id in reviewed:
                items.append(_reviewed(form_id, reviewed[form_id]))
            else:
                items.append(
                    BulkReviewItem(
                        id=form_id, status="not_allowed" if form_id in seen else "not_found"
                    )
                )
    else:
        items = [_reviewed(form_id, state) for form_id, state in reviewed.items()]
    return BulkReviewResult(reviewed=len(reviewed), skipped=len(items) - len(reviewed), items=items)


def _reviewed(form_id: uuid.UUID, previous: str) -> BulkReviewItem:
    return BulkReviewItem.model_validate(
        {"id": form_id, "status": "reviewed", "from": SubmissionState(previous)}
    )


_RISK = sa.literal_column(
    "(SELECT count(*) FROM jsonb_object_keys(submissions.flags))", sa.Integer
).label("risk")


async def review_queue(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID, *, limit: int
) -> ReviewQueue:
    """The forms waiting for a review (received or flagged), riskiest first: by their number
    of flags, then oldest first."""
    await access.require_campaign(session, principal, campaign_id)
    query = (
        access.readable_submissions(principal)
        .with_only_columns(
            col(Submission.id),
            sa.label("submission_id", col(Submission.client_submission_id)),
            col(Submission.agency_id),
            col(Submission.surveyor_id),
            col(Submission.channel),
            col(Submission.state),
            col(Submission.received_at),
            _RISK,
            col(Submission.flags),
        )
        .where(
            col(Submission.campaign_id) == campaign_id,
            col(Submission.state).in_(
                [SubmissionState.received.value, SubmissionState.flagged.value]
            ),
        )
        .order_by(sa.desc("risk"), col(Submission.received_at), col(Submission.id))
        .limit(limit)
    )
    rows = (await session.execute(query)).all()
    return ReviewQueue(items=[QueueItem.model_validate(r) for r in rows])
