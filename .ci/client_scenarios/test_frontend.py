"""A third-party frontend: fetch the questionnaire, submit a form, and show a refused form's
errors beside the fields they name."""

from __future__ import annotations

import uuid
from typing import Any

FRONTEND_SCOPES = ["campaigns:read", "questionnaires:read", "agencies:read", "submissions:write"]


def answer_for(item: Any, agency_code: str) -> Any:
    """What a respondent might answer, by the item's type as the definition declares it."""
    from sipas_client.models import ItemType

    kind = item.type_
    options = list(item.options or [])
    if kind is ItemType.SATISFACTION5:
        return 5
    if kind is ItemType.SCORE012:
        return 2
    if kind is ItemType.YES_NO:
        return "no"
    if kind is ItemType.INTENSITY3:
        return "nhieu"
    if kind is ItemType.SINGLE_CHOICE and options:
        return options[0].code
    if kind is ItemType.MULTIPLE_CHOICE and options:
        return [options[0].code]
    if kind is ItemType.FREE_TEXT:
        return "Cán bộ tận tình, hướng dẫn rõ ràng."
    if kind is ItemType.REFERENCE and str(item.ref) == "agency":
        return agency_code
    return None


def test_questionnaire_submit_and_map_a_refusal_to_fields(api: Any, machine: Any) -> None:
    from sipas_client.api.agencies import agencies_get
    from sipas_client.api.campaigns import campaigns_get, campaigns_list
    from sipas_client.api.questionnaires import questionnaires_get
    from sipas_client.api.submissions import submissions_create
    from sipas_client.models import (
        AgencyPublic,
        CampaignPage,
        CampaignPublic,
        CampaignState,
        Channel,
        Problem,
        QuestionnaireVersion,
        SubmissionIn,
        SubmissionInAnswers,
        SubmissionPublic,
    )

    frontend = machine("Frontend", FRONTEND_SCOPES)

    page = campaigns_list.sync(client=frontend, state=CampaignState.OPEN)
    assert isinstance(page, CampaignPage)
    campaign = next(c for c in page.items if c.code == "TQ-SIPAS-2020")
    detail = campaigns_get.sync(campaign.id, client=frontend)
    assert isinstance(detail, CampaignPublic)
    agency = agencies_get.sync(detail.agency_ids[0], client=frontend)
    assert isinstance(agency, AgencyPublic)

    version = questionnaires_get.sync_detailed(detail.questionnaire_id, client=frontend)
    assert version.status_code == 200
    assert isinstance(version.parsed, QuestionnaireVersion)
    etag = version.headers["etag"]
    again = questionnaires_get.sync_detailed(
        detail.questionnaire_id, client=frontend, if_none_match=etag
    )
    assert again.status_code == 304

    definition = version.parsed.definition
    items = [item for section in definition.sections for item in section.items]
    assert len(items) > 20
    answers = {item.id: answer_for(item, agency.code) for item in items}
    form = SubmissionIn(
        channel=Channel.WEB,
        agency_code=agency.code,
        submission_id=uuid.uuid4(),
        answers=SubmissionInAnswers.from_dict(answers),
    )
    created = submissions_create.sync_detailed(campaign.id, client=frontend, body=form)
    assert created.status_code == 201, created.content
    assert isinstance(created.parsed, SubmissionPublic)
    assert created.parsed.answers.to_dict()["E1.C1"] == 5

    criteria = [i.id for i in items if i.type_.value == "satisfaction5"]
    bad_answers = {**answers, criteria[0]: 9, criteria[1]: "rất tốt"}
    bad = SubmissionIn(
        channel=Channel.WEB,
        agency_code=agency.code,
        submission_id=uuid.uuid4(),
        answers=SubmissionInAnswers.from_dict(bad_answers),
    )
    refused = submissions_create.sync_detailed(campaign.id, client=frontend, body=bad)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.parsed
    assert isinstance(problem, Problem)
    assert problem.errors, "a 422 names its fields"
    by_field = {e.pointer.removeprefix("/body/answers/"): e.detail for e in problem.errors}
    assert {criteria[0], criteria[1]} <= set(by_field), by_field
    assert all(e.code and e.detail for e in problem.errors)
