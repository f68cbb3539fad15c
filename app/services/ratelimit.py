"""Fixed-window counters kept in PostgreSQL, so every worker process sees the same numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.ratelimit import RateCounter


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime

    def retry_after(self, now: datetime) -> int:
        return max(1, int((self.end - now).total_seconds() + 0.999))


def window_for(now: datetime, seconds: int) -> Window:
    epoch = int(now.timestamp())
    start = datetime.fromtimestamp(epoch - epoch % seconds, UTC)
    return Window(start, start + timedelta(seconds=seconds))


async def count(session: AsyncSession, key: str, window: Window) -> int:
    value = await session.scalar(
        sa.select(col(RateCounter.count)).where(
            col(RateCounter.key) == key,
            col(RateCounter.window_start) == window.start,
        )
    )
    return int(value or 0)


async def hit(session: AsyncSession, key: str, window: Window, n: int = 1) -> int:
    """Add `n` to the key's counter in this window and return the new count."""
    add = insert(RateCounter).values(key=key, window_start=window.start, count=n)
    stmt = add.on_conflict_do_update(
        index_elements=["key", "window_start"],
        set_={"count": RateCounter.metadata.tables["rate_counters"].c.count + add.excluded.count},
    ).returning(col(RateCounter.count))
    new = int((await session.execute(stmt)).scalar_one())
    if new == n:  # this call made the window's row: forget the key's older windows
        await session.execute(
            sa.delete(RateCounter).where(
                col(RateCounter.key) == key,
                col(RateCounter.window_start) < window.start,
            )
        )
    return new


async def reset(session: AsyncSession, key: str) -> None:
    await session.execute(sa.delete(RateCounter).where(col(RateCounter.key) == key))
