"""The request budget is counted in memory and pushed to the shared PostgreSQL counter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from app.config import Settings
from app.db import Database
from app.errors import AppError
from app.models.identity import Scope
from app.services.principal import Principal
from app.services.ratelimit_guard import ClientRateLimiter
from tests.conftest import make_settings

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)  # one fixed minute window for every call


class FakeClock:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


@pytest.fixture
async def caller(db: Database) -> AsyncIterator[Principal]:
    principal = Principal("client", uuid.uuid4(), "kiosk", frozenset({Scope.submissions_write}))
    yield principal
    async with db.side.begin() as conn:
        await conn.execute(
            sa.text("DELETE FROM rate_counters WHERE key = :k"),
            {"k": f"rate:client:{principal.id}"},
        )


async def shared_count(db: Database, principal: Principal) -> int:
    async with db.side.connect() as conn:
        value = await conn.scalar(
            sa.text("SELECT count FROM rate_counters WHERE key = :k AND window_start = :w"),
            {"k": f"rate:client:{principal.id}", "w": NOW.replace(second=0)},
        )
    return int(value or 0)


async def test_local_count_refuses_at_the_limit_and_pushes_to_the_shared_counter(
    db: Database, database_url: str, caller: Principal
) -> None:
    settings: Settings = make_settings(database_url, client_requests_per_minute=8)
    clock = FakeClock()
    limiter = ClientRateLimiter(clock=clock)

    async def hit() -> None:
        await limiter.enforce(db.side, settings, caller, now=NOW)

    await hit()  # the window's first request is pushed at once
    assert await shared_count(db, caller) == 1
    for _ in range(3):  # then counted in memory while well under the budget
        await hit()
    assert await shared_count(db, caller) == 1
    await hit()  # unpushed requests reach half the headroom (7 left): pushed
    assert await shared_count(db, caller) == 5
    for _ in range(3):  # closer to the limit, pushes come closer together
        await hit()
    assert await shared_count(db, caller) == 8  # the eighth was admitted on the shared count

    with pytest.raises(AppError) as refused:
        await hit()  # over the budget: refused from memory, no push inside the interval
    assert refused.value.status == 429
    assert refused.value.code == "rate_limited"
    assert int(refused.value.headers["Retry-After"]) >= 1
    assert await shared_count(db, caller) == 8

    clock.seconds += 1.0
    with pytest.raises(AppError):
        await hit()  # the interval is due: every request counted so far reaches the database
    assert await shared_count(db, caller) == 10


async def test_a_process_decides_near_the_limit_on_the_shared_count(
    db: Database, database_url: str, caller: Principal
) -> None:
    """Two limiters stand for two worker processes: what one pushed, the other counts."""
    settings = make_settings(database_url, client_requests_per_minute=3)
    clock = FakeClock()
    one, two = ClientRateLimiter(clock=clock), ClientRateLimiter(clock=clock)
    await one.enforce(db.side, settings, caller, now=NOW)  # first of the window: shared 1
    await two.enforce(db.side, settings, caller, now=NOW)  # first for `two`: shared 2
    await one.enforce(db.side, settings, caller, now=NOW)  # near the limit: pushed, shared 3
    assert await shared_count(db, caller) == 3
    with pytest.raises(AppError):  # `two` last saw 2, pushes and sees 4
        await two.enforce(db.side, settings, caller, now=NOW)
    with pytest.raises(AppError):  # `one` knows 3: refused without asking
        await one.enforce(db.side, settings, caller, now=NOW)
    assert await shared_count(db, caller) == 4
