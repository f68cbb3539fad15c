"""Forms from every channel: single, batch, reading, export, review and corrections."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from app.api.files import CSV, attachment, download
from app.api.ids import CampaignId, SubmissionId
from app.api.json_body import JsonRoute
from app.api.paging import PageDep
from app.api.problems import AUTHED, CONFLICT, GONE, NOT_FOUND, REPLAYED, TOO_MANY
from app.deps import (
    DatabaseDep,
    RateLimiterDep,
    SessionDep,
    SettingsDep,
    SubmissionsReader,
    SubmissionsReviewer,
    SubmissionsWriter,
    SubmissionsWriterOrInvited,
)
from app.errors import negotiate_language
from app.models.submission import (
    Channel,
    CorrectionBody,
    CorrectionIn,
    ReviewIn,
    SubmissionBatchIn,
    SubmissionBatchResult,
    SubmissionBody,
    SubmissionDraft,
    SubmissionIn,
    SubmissionPage,
    SubmissionPublic,
    SubmissionState,
    SubmissionVersionPublic,
)
from app.models.timestamps import SaneDatetime
from app.services import limits, submission_export, submissions

# Batches of up to 1000 forms: their bodies are parsed by orjson (`json_body`).
router = APIRouter(tags=["submissions"], responses=AUTHED, route_class=JsonRoute)

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
    description="Validated against the schema and the campaign's questionnaire together: one "
    "422 lists every problem of the form, type errors and answer errors alike, each with a JSON "
    "pointer from the body's root (`/body/channel`, `/body/answers/E1.C1`). A retry with the "
    "same submission_id (or Idempotency-Key) and the same "
    "body answers the first 201 again (with `Idempotent-Replayed: true`); another body is 409. "
    "With an `invitation`, agency and procedure come from the invited dossier, and one "
    "invitation makes one form (`invitation_used` after that). A form carrying a valid "
    "invitation needs no other credential: without an Authorization header the invitation is "
    "the caller (rate-limited per invitation and per source address); without either, 401.",
    status_code=status.HTTP_201_CREATED,
    response_model=SubmissionPublic,
    responses={**NOT_FOUND, **CONFLICT, **GONE, **TOO_MANY},
)
async def submit(
    session: SessionDep,
    db: DatabaseDep,
    limiter: RateLimiterDep,
    settings: SettingsDep,
    principal: SubmissionsWriterOrInvited,
    campaign_id: CampaignId,
    body: SubmissionBody,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> SubmissionPublic:
    if principal.kind != "invitation":  # an invitation was counted when it was read
        await limiter.enforce(db.side, settings, principal)
    # SubmissionBody hands over a body that failed the schema as a draft (see its docstring).
    form = cast(SubmissionIn | SubmissionDraft, body)
    outcome = await submissions.submit_one(
        session, settings, principal, campaign_id, form, idempotency_key
    )
    if outcome.status == "duplicate":
        response.headers[REPLAYED] = "true"
    return outcome.submission


@router.post(
    "/campaigns/{campaign_id}/submissions/batch",
    summary="Submit up to 1000 queued forms; one result per item",
    operation_id="submissions_create_batch",
    description="Each item is created, a duplicate of an earlier one, or an error listing "
    "every problem of the item (type errors and answer errors together), each with a JSON "
    "pointer from the body's root, as in the single call (`/body/submissions/<index>/...`, e.g. "
    "`/body/submissions/3/answers/E1.C1`). Messages follow `Accept-Language` (Vietnamese by "
    "default). Valid items are committed even when others fail.",
    response_model=SubmissionBatchResult,
    responses={**NOT_FOUND, **CONFLICT, **TOO_MANY},
)
async def submit_batch(
    session: SessionDep,
    db: DatabaseDep,
    limiter: RateLimiterDep,
    settings: SettingsDep,
    principal: SubmissionsWriter,
    campaign_id: CampaignId,
    body: SubmissionBatchIn,
    request: Request,
    response: Response,
) -> SubmissionBatchResult:
    await limiter.enforce(db.side, settings, principal)
    limits.check_batch_size(settings, len(body.submissions), "/body/submissions")
    language = negotiate_language(request.headers.get("accept-language"))
    response.headers["Content-Language"] = language
    response.headers["Vary"] = "Accept-Language"
    return await submissions.submit_batch(
        session, settings, principal, campaign_id, body.submissions, language
    )


def _filters(
    campaign_id: uuid.UUID | None = None,
    agency_id: uuid.UUID | None = None,
    channel: Channel | None = None,
    state: SubmissionState | None = None,
    since: SaneDatetime | None = None,
    until: SaneDatetime | None = None,
) -> submissions.Filters:
    """The query filters that the list and the export share."""
    return submissions.Filters(
        campaign_id=campaign_id,
        agency_id=agency_id,
        channel=channel.value if channel else None,
        state=state,
        since=since,
        until=until,
    )


FiltersDep = Annotated[submissions.Filters, Depends(_filters)]


@router.get(
    "/submissions",
    summary="List forms (raw answers, no contact data)",
    description="Pages in commit order: a cursor never skips or repeats a form while new ones "
    "arrive, and the last page's cursor can be polled for forms that arrive later. An agency "
    "manager sees its subtree's forms; a surveyor only the forms they entered, in campaigns "
    "they are assigned to.",
    response_model=SubmissionPage,
)
async def list_submissions(
    session: SessionDep,
    principal: SubmissionsReader,
    page: PageDep,
    filters: FiltersDep,
) -> SubmissionPage:
    return await submissions.list_submissions(session, principal, filters, **asdict(page))


@router.get(
    "/submissions/export",
    summary="Export forms as CSV, one column per questionnaire item (UTF-8 with BOM)",
    description="One row per form, in order of receipt: `id`, `submission_id`, the campaign, "
    "agency, sector and procedure by code (and the agency by name), `respondent_type`, "
    "`channel`, `state`, `version`, `is_synthetic` (1 or 0), `received_at`, then one column "
    "per item of the campaigns' questionnaires, in form order (several choices joined by `;`). "
    "Text that a spreadsheet would take for a formula is prefixed with `'`. The same filters "
    "as the list; contact data is never exported.",
    response_class=StreamingResponse,
    responses=download("text/csv"),
)
async def export_submissions(
    session: SessionDep,
    principal: SubmissionsReader,
    filters: FiltersDep,
) -> StreamingResponse:
    rows = await submissions.export_rows(session, principal, filters)
    return StreamingResponse(
        await submission_export.csv_chunks(session, rows),
        media_type=CSV,
        headers=attachment("submissions.csv"),
    )


@router.get(
    "/submissions/{submission_id}",
    summary="One form",
    description="The form's answers and facts; 404 outside the caller's scope.",
    response_model=SubmissionPublic,
    responses=NOT_FOUND,
)
async def get_submission(
    session: SessionDep, principal: SubmissionsReader, submission_id: SubmissionId
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
    session: SessionDep, actor: SubmissionsReviewer, submission_id: SubmissionId, body: ReviewIn
) -> SubmissionPublic:
    return submissions.public(await submissions.review(session, actor, submission_id, body))


@router.put(
    "/submissions/{submission_id}",
    summary="Correct your own entry before review (the previous version is kept)",
    description="A surveyor replaces the answers of a form they entered while it is not reviewed "
    "yet (409 after); the earlier version stays readable. Audited. Type errors and answer "
    "errors come in one 422, as for a new form.",
    response_model=SubmissionPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def correct(
    session: SessionDep,
    settings: SettingsDep,
    actor: SubmissionsWriter,
    submission_id: SubmissionId,
    body: CorrectionBody,
) -> SubmissionPublic:
    # CorrectionBody hands over a body that failed the schema as a draft (see SubmissionBody).
    correction = cast(CorrectionIn | SubmissionDraft, body)
    row = await submissions.correct(session, settings, actor, submission_id, correction)
    return submissions.public(row)


@router.get(
    "/submissions/{submission_id}/versions",
    summary="Earlier versions of a corrected form",
    description="Every replaced version, oldest first.",
    response_model=list[SubmissionVersionPublic],
    responses=NOT_FOUND,
)
async def versions(
    session: SessionDep, principal: SubmissionsReader, submission_id: SubmissionId
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
    campaign_id: CampaignId,
    share: Annotated[float, Query(gt=0, le=1)] = 0.05,
    seed: Annotated[str, Query(min_length=1, max_length=100)] = "phuc-tra",
) -> list[SubmissionPublic]:
    rows = await submissions.recheck_sample(session, principal, campaign_id, share, seed)
    return [submissions.public(r) for r in rows]
