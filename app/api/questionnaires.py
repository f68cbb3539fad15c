"""Questionnaire versions: what a frontend fetches to render a form."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status

from app.api.etag import NOT_MODIFIED, json_with_etag
from app.api.ids import QuestionnaireId
from app.api.paging import PageDep
from app.api.problems import AUTHED, CONFLICT, NOT_FOUND
from app.deps import (
    QuestionnairesReader,
    QuestionnairesWriter,
    SessionDep,
)
from app.models.base import DocumentedAs
from app.models.questionnaire import (
    Questionnaire,
    QuestionnaireCreate,
    QuestionnairePage,
    QuestionnairePublic,
)
from app.services import questionnaires
from app.services.instrument import Questionnaire as QuestionnaireDefinition

# The definition is stored and checked as free JSON (the service reports every problem with its
# pointer); the document types it as the instrument model, so a frontend's generated client
# knows sections, items, options and labels. Declared here because the instrument model lives
# with the services, which the models never import.
Definition = Annotated[dict[str, Any], DocumentedAs(QuestionnaireDefinition)]


class QuestionnaireVersion(QuestionnairePublic):
    """One questionnaire version, with its complete definition."""

    definition: Definition


class QuestionnaireVersionCreate(QuestionnaireCreate):
    definition: Definition


router = APIRouter(prefix="/questionnaires", tags=["questionnaires"], responses=AUTHED)


def version_public(row: Questionnaire) -> QuestionnaireVersion:
    """The version with every item's labelled options (`questionnaires.public`)."""
    return QuestionnaireVersion.model_validate(questionnaires.public(row).model_dump())


@dataclass
class QuestionnaireFilters:
    code: str | None = None


@router.get(
    "",
    description="Summaries without definitions, paged; `code` keeps one instrument's versions.",
    summary="List questionnaire versions",
    response_model=QuestionnairePage,
)
async def list_questionnaires(
    session: SessionDep,
    _: QuestionnairesReader,
    page: PageDep,
    filters: Annotated[QuestionnaireFilters, Depends()],
) -> QuestionnairePage:
    return await questionnaires.list_questionnaires(session, **asdict(page), **asdict(filters))


@router.get(
    "/{questionnaire_id}",
    summary="One questionnaire version, complete enough to render the form",
    description="Sections, items with their types, labels (Vietnamese and English), options and "
    "required flags, and the index rules. Answers with an ETag; a caller holding it "
    "gets 304.",
    response_model=QuestionnaireVersion,
    responses={**NOT_FOUND, **NOT_MODIFIED},
)
async def get_questionnaire(
    request: Request,
    session: SessionDep,
    _: QuestionnairesReader,
    questionnaire_id: QuestionnaireId,
) -> Response:
    return json_with_etag(
        request, version_public(await questionnaires.get(session, questionnaire_id))
    )


@router.post(
    "",
    summary="Create a questionnaire version (validated: ids unique, elements have items, "
    "weights sum to 1)",
    description="The definition is checked as a whole and every problem is reported with its "
    "pointer (`/body/definition/...`). The version is one more than the latest of the"
    " same code. Audited.",
    status_code=status.HTTP_201_CREATED,
    response_model=QuestionnaireVersion,
)
async def create_questionnaire(
    session: SessionDep, actor: QuestionnairesWriter, body: QuestionnaireVersionCreate
) -> QuestionnaireVersion:
    return version_public(await questionnaires.create(session, actor, body.definition))


@router.put(
    "/{questionnaire_id}",
    summary="Replace the definition of a version no campaign has opened on",
    description="Refused with 409 once a campaign has opened on the version (it is frozen then). "
    "Audited.",
    response_model=QuestionnaireVersion,
    responses={**NOT_FOUND, **CONFLICT},
)
async def replace_questionnaire(
    session: SessionDep,
    actor: QuestionnairesWriter,
    questionnaire_id: QuestionnaireId,
    body: QuestionnaireVersionCreate,
) -> QuestionnaireVersion:
    return version_public(
        await questionnaires.replace(session, actor, questionnaire_id, body.definition)
    )
