"""Staff users: admin only."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, status

from app.api.ids import UserId
from app.api.paging import PageDep
from app.api.problems import AUTHED, CONFLICT, NOT_FOUND
from app.deps import SessionDep, UsersAdmin
from app.models.identity import Role, UserCreate, UserPage, UserPublic, UserUpdate
from app.services import users


@dataclass
class UserFilters:
    role: Role | None = None
    is_active: bool | None = None
    agency_id: uuid.UUID | None = None


router = APIRouter(prefix="/users", tags=["users"], responses=AUTHED)


@router.get(
    "",
    description="Pages with `limit` and `cursor`. Needs `users:admin`.",
    summary="List staff users",
    response_model=UserPage,
)
async def list_users(
    session: SessionDep,
    _: UsersAdmin,
    page: PageDep,
    filters: Annotated[UserFilters, Depends()],
) -> UserPage:
    return await users.list_users(session, **asdict(page), **asdict(filters))


@router.post(
    "",
    summary="Create a staff user",
    description="A user with a role and, for agency roles, an agency. The username must be new "
    "(409). Audited.",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=CONFLICT,
)
async def create_user(session: SessionDep, actor: UsersAdmin, body: UserCreate) -> UserPublic:
    return users.public(await users.create_user(session, actor, body))


@router.get(
    "/{user_id}",
    description="Needs `users:admin`; 404 when no user has this id.",
    summary="One staff user",
    response_model=UserPublic,
    responses=NOT_FOUND,
)
async def get_user(session: SessionDep, _: UsersAdmin, user_id: UserId) -> UserPublic:
    return users.public(await users.get_user(session, user_id))


@router.patch(
    "/{user_id}",
    summary="Change, deactivate or reset the password of a staff user",
    description="Changing the role, agency, active flag or password revokes the user's tokens.",
    response_model=UserPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def update_user(
    session: SessionDep, actor: UsersAdmin, user_id: UserId, body: UserUpdate
) -> UserPublic:
    return users.public(await users.update_user(session, actor, user_id, body))
