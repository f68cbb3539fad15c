"""What only real, separate transactions show: a refresh token spent twice at once, and a burst
of parallel guesses at one account. These tests commit, then clean up."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import Database
from app.main import create_app
from app.models.identity import Role, User
from tests.factories import PASSWORD, make_user

TOKEN_URL = "/api/v1/auth/token"


@pytest.fixture
async def committed_user(db: Database) -> AsyncIterator[User]:
    async with AsyncSession(db.engine, expire_on_commit=False) as s:
        user = await make_user(s, Role.analyst)
        await s.commit()
    yield user
    async with db.engine.begin() as conn:  # its sessions and refresh tokens go with it
        await conn.execute(sa.text("DELETE FROM users WHERE id = :u"), {"u": user.id})
        await conn.execute(
            sa.text("DELETE FROM rate_counters WHERE key LIKE :k"), {"k": f"%{user.username}%"}
        )


@pytest.fixture
async def real_client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its own per-request transactions, from an address of its own."""
    app = create_app(settings, database=db)
    peer = f"192.0.2.{uuid.uuid4().int % 250 + 1}"
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(peer, 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.text("DELETE FROM rate_counters WHERE key LIKE :k"), {"k": f"%{peer}"}
        )


async def test_a_refresh_token_spent_twice_at_once_rotates_once_and_ends_the_session(
    real_client: httpx.AsyncClient, committed_user: User, db: Database
) -> None:
    form = {"grant_type": "password", "username": committed_user.username, "password": PASSWORD}
    grant = (await real_client.post(TOKEN_URL, data=form)).json()
    spend = {"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
    answers = await asyncio.gather(*(real_client.post(TOKEN_URL, data=spend) for _ in range(4)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 400, 400, 400], [a.text for a in answers]
    assert {a.json()["error"] for a in answers if a.status_code == 400} == {"invalid_grant"}
    async with db.engine.connect() as conn:
        reason = await conn.scalar(
            sa.text("SELECT revoked_reason FROM auth_sessions WHERE user_id = :u"),
            {"u": committed_user.id},
        )
    assert reason == "reuse"  # the losers were reuses: nobody keeps the session
    winner = next(a for a in answers if a.status_code == 200).json()
    again = {"grant_type": "refresh_token", "refresh_token": winner["refresh_token"]}
    assert (await real_client.post(TOKEN_URL, data=again)).status_code == 400


async def test_parallel_guesses_at_one_account_never_pass_the_budget(
    real_client: httpx.AsyncClient, committed_user: User, settings: Settings
) -> None:
    form = {"grant_type": "password", "username": committed_user.username, "password": "guess"}
    burst = settings.login_max_failures * 2
    answers = await asyncio.gather(*(real_client.post(TOKEN_URL, data=form) for _ in range(burst)))
    checked = [a for a in answers if a.status_code == 400]
    refused = [a for a in answers if a.status_code == 429]
    assert len(checked) == settings.login_max_failures
    assert len(refused) == burst - settings.login_max_failures
