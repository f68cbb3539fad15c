"""Forms from every channel: single, batch, reading, export, review and corrections."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import StreamingResponse

from app.api.problems import AUTHED, CONFLICT, GONE, NOT_FOUND, REPLAYED, TOO_MANY
from app.deps import (
    DEFAULT_PAGE,
    Cursor,
    DatabaseDep,
    Limit,
    RateLimiterDep,
    SessionDep,
    SettingsDep,
    SubmissionsReader,
    SubmissionsReviewer,
    SubmissionsWriter,
)
from app.models.submission import (
    Channel,
    CorrectionIn,
    ReviewIn,
    SubmissionBatchIn,
    SubmissionBatchResult,
    SubmissionIn,
    SubmissionPage,
    SubmissionPublic,
    SubmissionState,
    SubmissionVersionPublic,
)
from app.services import submissions

router = APIRouter(tags=["submissions"], responses=AUTHED)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Instead of submission_id: the same key on every retry of one form.",
    ),
]


@router.post(
    "/campaigns/{campaign_id}/submissions",
    summary="Submit one form",
    operation_id="submissions_create",
    description="Validated against the campaign's questionnaire: every problem is listed with "
    "its item pointer. A retry with the same submission_id (or Idempotency-Key) and the same "
    "body answers the first 201 again (with `Idempotent-Replayed: true`); another body is 409. "
    "With an `invitation`, agency and procedure come from the invited dossier.",
    status_code=status.HTTP_201_CREATED,
    response_model=SubmissionPublic,
    responses={**NOT_FOUND, **CONFLICT, **GONE, **TOO_MANY},
)
async def submit(
    session: SessionDep,
    db: DatabaseDep,
    limiter: RateLimiterDep,
    settings: SettingsDep,
    principal: SubmissionsWriter,
    campaign_id: uuid.UUID,
    body: SubmissionIn,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> SubmissionPublic:
    await limiter.enforce(db.side, settings, principal)
    outcome = await submissions.submit_one(
        session, settings, principal, campaign_id, body, idempotency_key
    )
    if outcome.status == "duplicate":
        response.headers[REPLAYED] = "true"
    return outcome.submission


@router.post(
    "/campaigns/{campaign_id}/submissions/batch",
    summary="Submit up to 1000 queued forms; one result per item",
    operation_id="submissions_create_batch",
    description="Each item is created, a duplicate of an earlier one, or an error with its "
    "pointers (`/submissions/<index>/...`). Valid items are committed even when others fail.",
    response_model=SubmissionBatchResult,
    responses={**NOT_FOUND, **CONFLICT, **TOO_MANY},
)
async def submit_batch(
    session: SessionDep,
    db: DatabaseDep,
    limiter: RateLimiterDep,
    settings: SettingsDep,
    principal: SubmissionsWriter,
    campaign_id: uuid.UUID,
    body: SubmissionBatchIn,
) -> SubmissionBatchResult:
    await limiter.enforce(db.side, settings, principal)
    return await submissions.submit_batch(
        session, settings, principal, campaign_id, body.submissions
    )


def _filters(
    campaign_id: uuid.UUID | None,
    agency_id: uuid.UUID | None,
    channel: Channel | None,
    state: SubmissionState | None,
    since: datetime | None,
    until: datetime | None,
) -> submissions.Filters:
    return submissions.Filters(
        campaign_id=campaign_id,
        agency_id=agency_id,
        channel=channel.value if channel else None,
        state=state,
        since=since,
        until=until,
    )


@router.get(
    "/submissions",
    summary="List forms (raw answers, no contact data)",
    description="Pages in commit order: a cursor never skips or repeats a form while new ones "
    "arrive, and the last page's cursor can be polled for forms that arrive later.",
    response_model=SubmissionPage,
)
async def list_submissions(
    session: SessionDep,
    principal: SubmissionsReader,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
    campaign_id: uuid.UUID | None = None,
    agency_id: uuid.UUID | None = None,
    channel: Channel | None = None,
    state: SubmissionState | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> SubmissionPage:
    f = _filters(campaign_id, agency_id, channel, state, since, until)
    return await submissions.list_submissions(session, principal, f, limit=limit, cursor=cursor)


EXPORT_COLUMNS = [
    "id",
    "submission_id",
    "campaign_id",
    "agency_id",
    "sector_id",
    "procedure_id",
    "respondent_type",
    "channel",
    "state",
    "version",
    "is_synthetic",
    "received_at",
    "answers",
]


@router.get(
    "/submissions/export",
    summary="Export forms as CSV (UTF-8 with BOM; answers as JSON)",
    description="The same filters as the list, as one CSV file; contact data is never exported.",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_submissions(
    session: SessionDep,
    principal: SubmissionsReader,
    campaign_id: uuid.UUID | None = None,
    agency_id: uuid.UUID | None = None,
    channel: Channel | None = None,
    state: SubmissionState | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StreamingResponse:
    f = _filters(campaign_id, agency_id, channel, state, since, until)
    rows = await submissions.export_rows(session, principal, f)
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        p = submissions.public(row)
        writer.writerow(
            [
                p.id,
                p.submission_id,
                p.campaign_id,
                p.agency_id,
                p.sector_id or "",
                p.procedure_id or "",
                p.respondent_type or "",
                p.channel.value,
                p.state.value,
                p.version,
                p.is_synthetic,
                p.received_at.isoformat(),
                json.dumps(p.answers, ensure_ascii=False, sort_keys=True),
            ]
        )
    return StreamingResponse(
        iter([buffer.getvalue().encode("utf-8")]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="submissions.csv"'},
    )


@router.get(
    "/submissions/{submission_id}",
    summary="One form",
    description="The form's answers and facts; 404 outside the caller's scope.",
    response_model=SubmissionPublic,
    responses=NOT_FOUND,
)
async def get_submission(
    session: SessionDep, principal: SubmissionsReader, submission_id: uuid.UUID
) -> SubmissionPublic:
    return submissions.public(await submissions.get_submission(session, principal, submission_id))


@router.post(
    "/submissions/{submission_id}/review",
    summary="Review a form: valid, flagged or rejected, with a reason",
    description="Only valid forms count in the index. Flagging or rejecting needs a reason.",
    response_model=SubmissionPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def review(
    session: SessionDep, actor: SubmissionsReviewer, submission_id: uuid.UUID, body: ReviewIn
) -> SubmissionPublic:
    return submissions.public(await submissions.review(session, actor, submission_id, body))


@router.put(
    "/submissions/{submission_id}",
    summary="Correct your own entry before review (the previous version is kept)",
    description="A surveyor replaces the answers of a form they entered while it is not reviewed "
    "yet (409 after); the earlier version stays readable. Audited.",
    response_model=SubmissionPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def correct(
    session: SessionDep,
    settings: SettingsDep,
    actor: SubmissionsWriter,
    submission_id: uuid.UUID,
    body: CorrectionIn,
) -> SubmissionPublic:
    row = await submissions.correct(session, settings, actor, submission_id, body)
    return submissions.public(row)


@router.get(
    "/submissions/{submission_id}/versions",
    summary="Earlier versions of a corrected form",
    description="Every replaced version, oldest first.",
    response_model=list[SubmissionVersionPublic],
    responses=NOT_FOUND,
)
async def versions(
    session: SessionDep, principal: SubmissionsReader, submission_id: uuid.UUID
) -> list[SubmissionVersionPublic]:
    return await submissions.versions(session, principal, submission_id)


@router.get(
    "/campaigns/{campaign_id}/recheck",
    summary="The re-check (phúc tra) list: a repeatable random share of the forms",
    description="A seeded random `share` of the campaign's forms: the same seed draws the same "
    "list, for supervisors to call back.",
    response_model=list[SubmissionPublic],
    responses=NOT_FOUND,
)
async def recheck(
    session: SessionDep,
    principal: SubmissionsReviewer,
    campaign_id: uuid.UUID,
    share: Annotated[float, Query(gt=0, le=1)] = 0.05,
    seed: Annotated[str, Query(min_length=1, max_length=100)] = "phuc-tra",
) -> list[SubmissionPublic]:
    rows = await submissions.recheck_sample(session, principal, campaign_id, share, seed)
    return [submissions.public(r) for r in rows]
