"""The provincial one-stop system reports a returned dossier and gets a rating invitation; the
citizen opens the invitation and submits the rating with it as the only credential."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta, timezone
from typing import Any

import pytest

HANOI = timezone(timedelta(hours=7))

ONE_STOP_SCOPES = ["dossiers:write"]
# In the demo catalogue: the birth-registration procedure.
PROCEDURE = "1.001193"


def dossier_campaign(admin: Any) -> tuple[Any, str, datetime]:
    """The open campaign that rates dossiers (as the demo opens one), an agency it covers and
    a return time within its period, found through the API as an operator would."""
    from sipas_client.api.agencies import agencies_get
    from sipas_client.api.campaigns import campaigns_list
    from sipas_client.models import AgencyPublic, CampaignPage, CampaignState

    page = campaigns_list.sync(client=admin, state=CampaignState.OPEN)
    assert isinstance(page, CampaignPage)
    for campaign in page.items:
        if campaign.rates_dossiers and campaign.agency_ids:
            agency = agencies_get.sync(campaign.agency_ids[0], client=admin)
            assert isinstance(agency, AgencyPublic)
            now = datetime.now(HANOI)
            day = min(max(now.date(), campaign.period_start), campaign.period_end)
            returned = datetime.combine(day, time(10), tzinfo=HANOI)
            if day == now.date():
                # Today: a moment ago (10:00 may still be ahead, and the future is refused),
                # but not before today began.
                returned = max(now - timedelta(minutes=1), datetime.combine(day, time(0), HANOI))
            return campaign, agency.code, returned
    pytest.fail("the demo has no open campaign that rates dossiers (with agencies in its scope)")


def test_dossier_invitation_and_a_citizen_rating(
    api: Any, base_url: str, admin: Any, machine: Any
) -> None:
    from sipas_client import Client
    from sipas_client.api.dossiers import dossiers_create, dossiers_get
    from sipas_client.api.invitations import invitations_get, invitations_get_questionnaire
    from sipas_client.api.submissions import submissions_create
    from sipas_client.models import (
        Channel,
        DossierEvent,
        DossierResult,
        InvitationDetails,
        QuestionnaireVersion,
        SubmissionIn,
        SubmissionInAnswers,
        SubmissionPublic,
    )

    campaign, agency_code, returned_at = dossier_campaign(admin)
    one_stop = machine("One-stop", ONE_STOP_SCOPES)
    code = f"000.00.23.H57-{uuid.uuid4().hex[:12]}"
    event = DossierEvent(
        code=code,
        procedure_code=PROCEDURE,
        agency_code=agency_code,
        returned_at=returned_at,
    )
    reported = dossiers_create.sync_detailed(client=one_stop, body=event)
    assert reported.status_code == 201, reported.content
    assert isinstance(reported.parsed, DossierResult)
    if not reported.parsed.invitations:
        pytest.fail(f"no invitation for a dossier of {agency_code} in {campaign.code}")
    (invitation,) = [i for i in reported.parsed.invitations if i.campaign_id == campaign.id]
    again = dossiers_get.sync(code, client=one_stop)
    assert isinstance(again, DossierResult)
    assert [i.token for i in again.invitations] == [i.token for i in reported.parsed.invitations]

    with Client(base_url=base_url) as citizen:
        # What the form needs to know, then the questionnaire to render: the token alone.
        opened = invitations_get.sync_detailed(invitation.token, client=citizen)
        assert opened.status_code == 200, opened.content
        assert isinstance(opened.parsed, InvitationDetails)
        assert opened.parsed.usable
        assert not opened.parsed.used
        assert opened.parsed.dossier_code == code
        shown = invitations_get_questionnaire.sync_detailed(invitation.token, client=citizen)
        assert shown.status_code == 200, shown.content
        assert isinstance(shown.parsed, QuestionnaireVersion)
        definition = shown.parsed.definition
        items = [item for section in definition.sections for item in section.items]
        answers = {
            i.id: {"satisfaction5": 4, "score012": 2}[i.type_.value]
            for i in items
            if i.type_.value in ("satisfaction5", "score012")
        }
        assert answers
        rating = SubmissionIn(
            channel=Channel.WEB,
            invitation=invitation.token,
            submission_id=uuid.uuid4(),
            answers=SubmissionInAnswers.from_dict(answers),
        )
        # The invitation is the credential: no Authorization header is sent.
        created = submissions_create.sync_detailed(
            invitation.campaign_id, client=citizen, body=rating
        )
        assert created.status_code == 201, created.content
        assert isinstance(created.parsed, SubmissionPublic)
        used = submissions_create.sync_detailed(
            invitation.campaign_id,
            client=citizen,
            body=SubmissionIn(
                channel=Channel.WEB,
                invitation=invitation.token,
                submission_id=uuid.uuid4(),
                answers=SubmissionInAnswers.from_dict(answers),
            ),
        )
        # Used once: the same invitation again is refused, naming it.
        assert used.status_code == 409, used.content
        assert used.headers["content-type"].startswith("application/problem+json")
        assert [e.pointer for e in used.parsed.errors] == ["/body/invitation"]
