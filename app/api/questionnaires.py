"""Questionnaire versions: what a frontend fetches to render a form."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from app.api.etag import NOT_MODIFIED, json_with_etag
from app.api.problems import AUTHED, CONFLICT, NOT_FOUND
from app.deps import (
    DEFAULT_PAGE,
    Cursor,
    Limit,
    QuestionnairesReader,
    QuestionnairesWriter,
    SessionDep,
)
from app.models.questionnaire import (
    Questionnaire,
    QuestionnaireCreate,
    QuestionnairePage,
    QuestionnairePublic,
)
from app.services import questionnaires

router = APIRouter(prefix="/questionnaires", tags=["questionnaires"], responses=AUTHED)


def _public(row: Questionnaire) -> QuestionnairePublic:
    return questionnaires.public(row)


@router.get("", summary="List questionnaire versions", response_model=QuestionnairePage)
async def list_questionnaires(
    session: SessionDep,
    _: QuestionnairesReader,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
    code: str | None = None,
) -> QuestionnairePage:
    return await questionnaires.list_questionnaires(session, limit=limit, cursor=cursor, code=code)


@router.get(
    "/{questionnaire_id}",
    summary="One questionnaire version, complete enough to render the form",
    response_model=QuestionnairePublic,
    responses={**NOT_FOUND, **NOT_MODIFIED},
)
async def get_questionnaire(
    request: Request, session: SessionDep, _: QuestionnairesReader, questionnaire_id: uuid.UUID
) -> Response:
    return json_with_etag(request, _public(await questionnaires.get(session, questionnaire_id)))


@router.post(
    "",
    summary="Create a questionnaire version (validated: ids unique, elements have items, "
    "weights sum to 1)",
    status_code=status.HTTP_201_CREATED,
    response_model=QuestionnairePublic,
)
async def create_questionnaire(
    session: SessionDep, actor: QuestionnairesWriter, body: QuestionnaireCreate
) -> QuestionnairePublic:
    return _public(await questionnaires.create(session, actor, body.definition))


@router.put(
    "/{questionnaire_id}",
    summary="Replace the definition of a version no campaign has opened on",
    response_model=QuestionnairePublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def replace_questionnaire(
    session: SessionDep,
    actor: QuestionnairesWriter,
    questionnaire_id: uuid.UUID,
    body: QuestionnaireCreate,
) -> QuestionnairePublic:
    return _public(await questionnaires.replace(session, actor, questionnaire_id, body.definition))
