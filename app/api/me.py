"""GET /me: who the token belongs to and what it may do."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from pydantic import BaseModel

from app.api.problems import INVALID, UNAUTHORIZED
from app.deps import CurrentPrincipal, SessionDep
from app.errors import PermissionDenied
from app.models.identity import PasswordChange
from app.services import users

router = APIRouter(prefix="/me", tags=["users"])


class MePublic(BaseModel):
    kind: str
    id: uuid.UUID
    name: str
    role: str | None
    scopes: list[str]
    agency_id: uuid.UUID | None
    campaign_id: uuid.UUID | None
    client_id: str | None


@router.get(
    "",
    description="Who the bearer token belongs to (a staff user or a machine client), its role, "
    "agency, campaign and the scopes it holds.",
    summary="The caller: user or client, role, scopes",
    responses=UNAUTHORIZED,
)
async def me(principal: CurrentPrincipal) -> MePublic:
    return MePublic(
        kind=principal.kind,
        id=principal.id,
        name=principal.name,
        role=principal.role.value if principal.role else None,
        scopes=sorted(s.value for s in principal.scopes),
        agency_id=principal.agency_id,
        campaign_id=principal.campaign_id,
        client_id=principal.client_public_id,
    )


@router.post(
    "/password",
    summary="Change your own password (revokes your other tokens)",
    description="Staff only: the current password is checked; every other token of the user is "
    "revoked. Machine clients rotate their secret instead (403).",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**UNAUTHORIZED, **INVALID},
)
async def change_password(
    principal: CurrentPrincipal, session: SessionDep, body: PasswordChange
) -> None:
    if principal.kind != "user":
        raise PermissionDenied("Machine clients have no password; rotate the secret instead.")
    await users.change_own_password(session, principal, body)
