"""Per-caller request rates: counted in each process's memory, shared through PostgreSQL.

A transaction per request only to count it cost more than many of the requests themselves. So
each process counts its callers' requests in memory, per caller and minute window, and pushes
what it has counted to the shared counter (`ratelimit.hit`) now and then. A push is its own
short transaction on the side engine, never the request's: a counter row locked until a slow
request commits would serialise every request of a busy client.

A request is refused when the shared count last seen plus what this process counted since
passes the budget. The process pushes:
- on a caller's first request in a window, then at most once per `SYNC_SECONDS` while the
  caller keeps sending;
- at once when its unpushed requests reach half of the budget left as it last saw it: it never
  spends more than half of that headroom on a guess, so pushes come closer together as the
  count nears the limit (about log2(budget) of them in a window that fills it), and the request
  that could cross the limit is decided on the shared count.
Once the shared count is known to be over the budget the process refuses on its own (a window's
count only grows) and pushes only when the interval is due.

Bounded overshoot: a process does not see what the other processes counted since their last
push, so a window can admit beyond the budget what the other workers admitted and have not
pushed yet: at most one sync interval's worth of the caller's requests per worker (workers x one
interval), and never more than half the headroom each of them last saw. Counts held in memory
are lost when a process stops; that only ever errs towards admitting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.config import Settings
from app.errors import AppError
from app.services import ratelimit
from app.services.principal import Principal

SYNC_SECONDS = 1.0
WINDOW_SECONDS = 60
# Past this many tallies, those of ended windows are dropped when a new caller arrives.
_PRUNE_AT = 4096


@dataclass(slots=True)
class _Tally:
    """One caller's window as this process knows it."""

    window: ratelimit.Window
    shared: int = 0  # the shared count at this process's last push (its pushed requests included)
    pushing: int = 0  # requests in a push still under way
    pending: int = 0  # requests counted here and not pushed yet
    pushed_at: float = -math.inf


class ClientRateLimiter:
    """A process's request counts. One per application; `clock` is monotonic seconds."""

    def __init__(
        self,
        sync_seconds: float = SYNC_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sync_seconds = sync_seconds
        self._clock = clock
        self._tallies: dict[str, _Tally] = {}

    async def enforce(
        self,
        engine: AsyncEngine,
        settings: Settings,
        principal: Principal,
        *,
        now: datetime | None = None,
    ) -> None:
        """429 with Retry-After once the caller passes its requests-per-minute budget."""
        key = f"rate:{principal.kind}:{principal.id}"
        await self.enforce_key(engine, key, settings.client_requests_per_minute, now=now)

    async def enforce_key(
        self, engine: AsyncEngine, key: str, limit: int, *, now: datetime | None = None
    ) -> None:
        """429 with Retry-After once `key` passes `limit` requests this minute (an invitation,
        or the public site's callers by source address)."""
        now = now or datetime.now(UTC)
        tally = self._tally(key, ratelimit.window_for(now, WINDOW_SECONDS))
        tally.pending += 1
        unpushed = tally.pushing + tally.pending
        count = tally.shared + unpushed
        due = self._clock() - tally.pushed_at >= self._sync_seconds
        if due or (tally.shared < limit and 2 * unpushed >= limit - tally.shared):
            count = await self._push(engine, key, tally)
        if count > limit:
            retry = tally.window.retry_after(now)
            raise AppError(
                "rate_limited",
                f"More than {limit} requests this minute; retry in {retry} s.",
                429,
                headers={"Retry-After": str(retry)},
            )

    def _tally(self, key: str, window: ratelimit.Window) -> _Tally:
        tally = self._tallies.get(key)
        if tally is not None and tally.window == window:
            return tally
        if tally is None and len(self._tallies) >= _PRUNE_AT:
            self._tallies = {k: t for k, t in self._tallies.items() if t.window == window}
        # An ended window's unpushed requests are dropped: they no longer count against anyone.
        tally = self._tallies[key] = _Tally(window)
        return tally

    async def _push(self, engine: AsyncEngine, key: str, tally: _Tally) -> int:
        """Add this process's pending requests to the shared count; returns the new count."""
        n, tally.pending = tally.pending, 0
        tally.pushing += n
        tally.pushed_at = self._clock()
        try:
            async with AsyncSession(engine) as session, session.begin():
                # A counter lost in a crash costs nothing; waiting for its fsync costs requests.
                await session.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
                count = await ratelimit.hit(session, key, tally.window, n)
        except BaseException:
            tally.pending += n  # counted again at the next push
            raise
        finally:
            tally.pushing -= n
        tally.shared = max(tally.shared, count)
        return count
