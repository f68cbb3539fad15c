"""Agencies: the dated tree, and which part of it a caller may see."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import NotFound
from app.models.agency import Agency
from app.services.principal import Principal


async def agency_exists(session: AsyncSession, agency_id: uuid.UUID) -> bool:
    found = await session.scalar(sa.select(sa.literal(1)).where(col(Agency.id) == agency_id))
    return found is not None


def subtree_ids(root_id: uuid.UUID) -> sa.Select[tuple[uuid.UUID]]:
    """A SELECT of the ids of `root_id` and every agency below it (any date)."""
    agencies = Agency.metadata.tables["agencies"]
    tree = sa.select(agencies.c.id).where(agencies.c.id == root_id).cte("subtree", recursive=True)
    tree = tree.union(sa.select(agencies.c.id).join(tree, agencies.c.parent_id == tree.c.id))
    return sa.select(tree.c.id)


async def is_visible(session: AsyncSession, principal: Principal, agency_id: uuid.UUID) -> bool:
    """True when the caller may see this agency: unscoped callers see all of them."""
    if not principal.agency_scoped or principal.agency_id is None:
        return True
    found = await session.scalar(
        sa.select(sa.literal(1)).where(
            sa.literal(agency_id, sa.Uuid).in_(subtree_ids(principal.agency_id))
        )
    )
    return found is not None


async def ensure_visible(session: AsyncSession, principal: Principal, agency_id: uuid.UUID) -> None:
    """404, not 403, for an agency outside the caller's subtree: do not reveal that it exists."""
    if not await is_visible(session, principal, agency_id):
        raise NotFound("agency")
