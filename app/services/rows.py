"""Reading one row by its primary key, or the usual 404."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound

M = TypeVar("M")


async def fetch(session: AsyncSession, model: type[M], key: Any, what: str) -> M:
    """The row of `model` with this primary key; `NotFound(what)` when there is none. No access
    rule is applied: callers check rights first (`app.services.access`)."""
    row = await session.get(model, key)
    if row is None:
        raise NotFound(what)
    return row
