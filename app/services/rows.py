"""Reading one row by its primary key, or the usual 404."""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Select
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


async def one(session: AsyncSession, query: Select[M], what: str, *, lock: bool = False) -> M:
    """The one row `query` selects (locked `FOR UPDATE` when `lock`); `NotFound(what)` when
    there is none. The query carries the access rule (`app.services.access`)."""
    if lock:
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        raise NotFound(what)
    return row


def where_given(query: Select[M], *filters: tuple[Any, object | None]) -> Select[M]:
    """`query` narrowed to `column == value` for each optional filter that was given."""
    for column, value in filters:
        if value is not None:
            query = query.where(column == value)
    return query


async def taken(session: AsyncSession, column: Any, value: object) -> bool:
    """Whether a row already holds `value` in the unique `column` (a code, a username)."""
    return await session.scalar(sa.select(sa.exists().where(column == value))) is True
