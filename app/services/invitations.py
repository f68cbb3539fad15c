"""A citizen's rating through an invitation: the token is the only credential it needs.

The one-stop system gets a signed token per dossier (services.dossiers). Whoever holds it may
read what the rating form needs (`details`, `questionnaire`) and send one form for its campaign
without any other credential (`authenticate`): the invitation then stands as the caller, with
the one scope submissions:write, and the audit log names it as the actor. Claiming it for the
form, and refusing a second form, stays where forms are written (services.submissions).

Security decisions:
- Anonymous calls are counted per source address (INVITATION_SOURCE_REQUESTS_PER_MINUTE)
  before the token is even read, so guessing tokens from one address is throttled; a known
  invitation is also counted on its own (INVITATION_REQUESTS_PER_MINUTE), whatever the address.
- A token this service did not sign, or whose invitation is gone, is a 401 for a form and a 404
  for a look-up; an invitation that exists but is used, expired or for another campaign is
  answered as such (the holder of a genuine token may learn that much).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from app.config import Settings
from app.context import current_request
from app.errors import NotFound, Unauthorized
from app.models.agency import Agency
from app.models.campaign import Campaign, CampaignState
from app.models.catalogue import Procedure
from app.models.dossier import Dossier, Invitation, InvitationDetails
from app.models.identity import Scope
from app.models.questionnaire import Questionnaire
from app.security import read_invitation
from app.services.dossiers import form_url
from app.services.principal import Principal
from app.services.ratelimit_guard import ClientRateLimiter


def _source_key() -> str:
    ctx = current_request()
    return f"rate:source:{(ctx.client_ip if ctx else None) or 'unknown'}"


async def throttle_source(
    limiter: ClientRateLimiter, engine: AsyncEngine, settings: Settings
) -> None:
    """429 once the calling address passes its budget of calls without a bearer token."""
    await limiter.enforce_key(engine, _source_key(), settings.invitation_source_requests_per_minute)


async def _find(session: AsyncSession, settings: Settings, token: str) -> Invitation | None:
    invitation_id = read_invitation(token, settings.secret_key.get_secret_value())
    if invitation_id is None:
        return None
    # By id alone (the token names no campaign): the key (id, campaign_id) leads with it.
    found: Invitation | None = await session.scalar(
        sa.select(Invitation).where(col(Invitation.id) == invitation_id)
    )
    return found


async def authenticate(
    session: AsyncSession,
    engine: AsyncEngine,
    limiter: ClientRateLimiter,
    settings: Settings,
    token: str | None,
) -> Principal:
    """The invitation a form carries, as the caller of a request that sent no bearer token."""
    await throttle_source(limiter, engine, settings)
    if not token:
        raise Unauthorized("A bearer token, or a valid invitation in the form, is required.")
    invitation = await _find(session, settings, token)
    if invitation is None:
        raise Unauthorized("The invitation is not one this service issued; no other credential.")
    await limiter.enforce_key(
        engine, f"rate:invitation:{invitation.id}", settings.invitation_requests_per_minute
    )
    return Principal(
        kind="invitation",
        id=invitation.id,
        name="invitation",
        scopes=frozenset({Scope.submissions_write}),
    )


async def details(
    session: AsyncSession, settings: Settings, token: str, api_prefix: str
) -> InvitationDetails:
    """Everything a rating form needs to know of the invitation a token names."""
    invitation_id = read_invitation(token, settings.secret_key.get_secret_value())
    if invitation_id is None:
        raise NotFound("invitation")
    row = (
        await session.execute(
            sa.select(
                Invitation,
                col(Campaign.name),
                col(Campaign.state),
                col(Questionnaire.id),
                col(Questionnaire.code),
                col(Questionnaire.version),
                col(Agency.code),
                col(Agency.name),
                col(Procedure.code),
                col(Procedure.name),
                col(Dossier.code),
            )
            .join(Campaign, col(Campaign.id) == col(Invitation.campaign_id))
            .join(Questionnaire, col(Questionnaire.id) == col(Campaign.questionnaire_id))
            .join(Agency, col(Agency.id) == col(Invitation.agency_id))
            .join(Procedure, col(Procedure.id) == col(Invitation.procedure_id))
            .join(Dossier, col(Dossier.id) == col(Invitation.dossier_id))
            .where(col(Invitation.id) == invitation_id)
        )
    ).first()
    if row is None:
        raise NotFound("invitation")
    invitation = row[0]
    expired = invitation.expires_at <= datetime.now(UTC)
    used = invitation.used_at is not None
    return InvitationDetails(
        campaign_id=invitation.campaign_id,
        campaign_name=row[1],
        questionnaire_id=row[3],
        questionnaire_code=row[4],
        questionnaire_version=row[5],
        agency_code=row[6],
        agency_name=row[7],
        procedure_code=row[8],
        procedure_name=row[9],
        dossier_code=row[10],
        expires_at=invitation.expires_at,
        expired=expired,
        used=used,
        used_at=invitation.used_at,
        usable=not used and not expired and row[2] == CampaignState.open,
        form_url=form_url(settings, token),
        questionnaire_url=f"{api_prefix}/invitations/{token}/questionnaire",
        submit_url=f"{api_prefix}/campaigns/{invitation.campaign_id}/submissions",
    )


async def questionnaire(session: AsyncSession, settings: Settings, token: str) -> Questionnaire:
    """The questionnaire of the invitation's campaign, to render the form."""
    invitation = await _find(session, settings, token)
    if invitation is None:
        raise NotFound("invitation")
    found = await session.scalar(
        sa.select(Questionnaire)
        .join(Campaign, col(Campaign.questionnaire_id) == col(Questionnaire.id))
        .where(col(Campaign.id) == invitation.campaign_id)
    )
    if found is None:  # pragma: no cover - foreign keys guarantee it
        raise NotFound("questionnaire")
    return found
