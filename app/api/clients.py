"""Machine clients: admin only. The secret is shown once, when created or rotated."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, status

from app.api.ids import ClientId
from app.api.paging import PageDep
from app.api.problems import AUTHED, CONFLICT, NOT_FOUND
from app.deps import SessionDep, UsersAdmin
from app.models.identity import (
    ClientCreate,
    ClientPage,
    ClientPublic,
    ClientUpdate,
    ClientWithSecret,
)
from app.services import clients


@dataclass
class ClientFilters:
    include_revoked: bool = False


router = APIRouter(prefix="/clients", tags=["clients"], responses=AUTHED)


@router.get(
    "",
    description="Pages with `limit` and `cursor`. Needs `users:admin`.",
    summary="List machine clients",
    response_model=ClientPage,
)
async def list_clients(
    session: SessionDep,
    _: UsersAdmin,
    page: PageDep,
    filters: Annotated[ClientFilters, Depends()],
) -> ClientPage:
    return await clients.list_clients(session, **asdict(page), **asdict(filters))


@router.post(
    "",
    summary="Register a machine client (the secret is in this response only)",
    description="The client gets scopes from the set allowed to machines, optionally a campaign "
    "or an agency; keep the returned secret, it is shown once. Audited.",
    status_code=status.HTTP_201_CREATED,
    response_model=ClientWithSecret,
)
async def create_client(
    session: SessionDep, actor: UsersAdmin, body: ClientCreate
) -> ClientWithSecret:
    return await clients.create_client(session, actor, body)


@router.get(
    "/{client_id}",
    description="Needs `users:admin`; 404 when no client has this id. The secret is never shown "
    "again.",
    summary="One machine client",
    response_model=ClientPublic,
    responses=NOT_FOUND,
)
async def get_client(session: SessionDep, _: UsersAdmin, client_id: ClientId) -> ClientPublic:
    return clients.public(await clients.get_client(session, client_id))


@router.patch(
    "/{client_id}",
    summary="Rename a client, change its scopes or expiry",
    description="Changing the scopes revokes the client's tokens.",
    response_model=ClientPublic,
    responses=NOT_FOUND,
)
async def update_client(
    session: SessionDep, actor: UsersAdmin, client_id: ClientId, body: ClientUpdate
) -> ClientPublic:
    return clients.public(await clients.update_client(session, actor, client_id, body))


@router.post(
    "/{client_id}/rotate-secret",
    summary="Issue a new secret and revoke every token of the old one",
    description="The new secret is in this response only; tokens issued with the old one stop "
    "working at once. Audited.",
    response_model=ClientWithSecret,
    responses={**NOT_FOUND, **CONFLICT},
)
async def rotate_secret(
    session: SessionDep, actor: UsersAdmin, client_id: ClientId
) -> ClientWithSecret:
    return await clients.rotate_secret(session, actor, client_id)


@router.post(
    "/{client_id}/revoke",
    summary="Revoke a client for good, and its tokens at once",
    description="A revoked client can no longer get tokens; this cannot be undone. Audited.",
    response_model=ClientPublic,
    responses=NOT_FOUND,
)
async def revoke_client(
    session: SessionDep, actor: UsersAdmin, client_id: ClientId
) -> ClientPublic:
    return clients.public(await clients.revoke_client(session, actor, client_id))
