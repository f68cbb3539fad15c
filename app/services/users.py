"""Staff accounts: admins create, change and deactivate them."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import Conflict, ConflictError, FieldError, Invalid
from app.models.base import touch
from app.models.identity import (
    PasswordChange,
    Role,
    User,
    UserCreate,
    UserPage,
    UserPublic,
    UserUpdate,
)
from app.security import hash_password, verify_password
from app.services import audit, rows, updates
from app.services.paging import cursor_str, decode_cursor, keyset_page
from app.services.principal import Principal

# Changing any of these revokes the user's tokens at once.
_REVOKING_FIELDS = {"role", "agency_id", "is_active", "password"}


def public(user: User) -> UserPublic:
    return UserPublic.model_validate(user)


_snapshot = updates.fields("username", "display_name", "role", "agency_id", "is_active")


async def _check_agency(session: AsyncSession, role: Role, agency_id: uuid.UUID | None) -> None:
    if role == Role.agency_manager and agency_id is None:
        raise Invalid(
            "An agency manager must be attached to an agency.",
            [FieldError("/body/agency_id", "required for the agency_manager role", "missing")],
        )
    if agency_id is not None:
        from app.services.agencies import require_agency  # the agencies service owns that table

        await require_agency(session, agency_id)


async def create_user(session: AsyncSession, actor: Principal | None, data: UserCreate) -> User:
    await _check_agency(session, data.role, data.agency_id)
    if await rows.taken(session, col(User.username), data.username):
        raise Conflict("username_taken", f"The username {data.username!r} is already in use.")
    user = User(
        username=data.username,
        display_name=data.display_name,
        role=data.role,
        agency_id=data.agency_id,
        password_hash=hash_password(data.password),
    )
    await audit.record_created(session, actor, user, "user", _snapshot)
    return user


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    return await rows.fetch(session, User, user_id, "user")


async def update_user(
    session: AsyncSession, actor: Principal, user_id: uuid.UUID, data: UserUpdate
) -> User:
    user = await get_user(session, user_id)
    changes = updates.sent(data)
    if user.id == actor.id and (
        changes.get("is_active") is False or changes.get("role", Role.admin) != Role.admin
    ):
        raise ConflictError(
            "cannot_demote_self", "You cannot deactivate or demote your own account."
        )
    role = Role(changes.get("role") or user.role)
    agency_id = changes.get("agency_id", user.agency_id)
    await _check_agency(session, role, agency_id)
    password = changes.pop("password", None)
    changed = updates.apply_changes(user, changes, _snapshot)
    if password is not None:
        user.password_hash = hash_password(password)
    revoking = set(changes) | ({"password"} if password else set())
    if revoking & _REVOKING_FIELDS:
        user.token_version += 1
    touch(user)
    summary = changed.diff()
    if password is not None:
        summary["password_changed"] = True
    await audit.record_change(
        session, actor, user, "user.update", object_type="user", summary=summary
    )
    return user


async def change_own_password(
    session: AsyncSession, actor: Principal, data: PasswordChange
) -> None:
    user = await get_user(session, actor.id)
    if not verify_password(data.current_password, user.password_hash):
        raise Invalid(
            "The current password is wrong.",
            [FieldError("/body/current_password", "does not match", "wrong_password")],
        )
    user.password_hash = hash_password(data.new_password)
    user.token_version += 1
    touch(user)
    await audit.record_change(
        session,
        actor,
        user,
        "user.password_change",
        object_type="user",
        summary={"password_changed": True},
    )


async def list_users(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    role: Role | None = None,
    is_active: bool | None = None,
    agency_id: uuid.UUID | None = None,
) -> UserPage:
    query = sa.select(User).order_by(col(User.username))
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(col(User.username) > cursor_str(after, "username"))
    if role is not None:
        query = query.where(col(User.role) == role)
    if is_active is not None:
        query = query.where(col(User.is_active) == is_active)
    if agency_id is not None:
        query = query.where(col(User.agency_id) == agency_id)
    rows, next_cursor = await keyset_page(
        session, query, limit=limit, key=lambda u: {"username": u.username}
    )
    return UserPage(
        items=[public(r) for r in rows],
        next_cursor=next_cursor,
    )
