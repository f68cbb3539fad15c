"""What a rating form reads with an invitation's token alone (the token is the credential)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from app.api.etag import NOT_MODIFIED, json_with_etag
from app.api.problems import NOT_FOUND, TOO_MANY
from app.api.questionnaires import QuestionnaireVersion, version_public
from app.deps import DatabaseDep, RateLimiterDep, SessionDep, SettingsDep
from app.models.dossier import InvitationDetails
from app.services import invitations

router = APIRouter(prefix="/invitations", tags=["invitations"], responses={**TOO_MANY})

API_PREFIX = "/api/v1"

Token = Annotated[
    str,
    Path(
        max_length=64,
        description="The invitation's token, as the one-stop system got it (`inv_...`).",
    ),
]


@router.get(
    "/{token}",
    summary="What a rating form needs to know of an invitation",
    description="No credential but the token: the campaign, its questionnaire, the agency and "
    "procedure rated, the dossier, the expiry, whether the invitation was used (and when), "
    "whether a form can be sent with it now, and where to send it. Rate-limited per source "
    "address. A token this service did not issue is 404.",
    response_model=InvitationDetails,
    responses=NOT_FOUND,
)
async def get_invitation(
    session: SessionDep,
    db: DatabaseDep,
    limiter: RateLimiterDep,
    settings: SettingsDep,
    token: Token,
) -> InvitationDetails:
    await invitations.throttle_source(limiter, db.side, settings)
    return await invitations.details(session, settings, token, API_PREFIX)


@router.get(
    "/{token}/questionnaire",
    summary="The questionnaire to render for an invitation",
    description="As `GET /questionnaires/{id}`, readable with the invitation's token alone.",
    response_model=QuestionnaireVersion,
    responses={**NOT_FOUND, **NOT_MODIFIED},
)
async def get_questionnaire(
    request: Request,
    session: SessionDep,
    db: DatabaseDep,
    limiter: RateLimiterDep,
    settings: SettingsDep,
    token: Token,
) -> Response:
    await invitations.throttle_source(limiter, db.side, settings)
    row = await invitations.questionnaire(session, settings, token)
    return json_with_etag(request, version_public(row))
