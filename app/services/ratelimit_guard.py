"""Per-caller request rates, counted in PostgreSQL so every worker process shares the count.

The count is kept in its own short transaction, not the request's: a counter row locked until
a slow request commits would serialise every request of a busy client.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.config import Settings
from app.errors import AppError
from app.services import ratelimit
from app.services.principal import Principal


async def enforce_client_rate(
    engine: AsyncEngine, settings: Settings, principal: Principal
) -> None:
    """429 with Retry-After once the caller passes its requests-per-minute budget."""
    now = datetime.now(UTC)
    window = ratelimit.window_for(now, 60)
    async with AsyncSession(engine) as session, session.begin():
        # A counter lost in a crash costs nothing; waiting for its fsync costs every request.
        await session.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
        count = await ratelimit.hit(session, f"rate:{principal.kind}:{principal.id}", window)
    if count > settings.client_requests_per_minute:
        retry = window.retry_after(now)
        raise AppError(
            "rate_limited",
            f"More than {settings.client_requests_per_minute} requests this minute; "
            f"retry in {retry} s.",
            429,
            headers={"Retry-After": str(retry)},
        )
