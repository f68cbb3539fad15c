"""The request engine's pool when PostgreSQL drops a connection (a restart, a failover)."""

from __future__ import annotations

import uuid

import httpx
import sqlalchemy as sa

from app.db import Database, create_database
from app.main import create_app
from app.models.identity import Role, User
from tests.conftest import make_settings
from tests.factories import bearer
from tests.helpers.problems import assert_problem


async def test_a_dropped_connection_is_a_503_once_then_the_pool_reconnects(
    database_url: str, db: Database
) -> None:
    """Checkouts are not pinged: the request that meets the dead connection answers 503 with
    Retry-After, SQLAlchemy invalidates the pool, and the next request works."""
    settings = make_settings(database_url, db_pool_size=1, db_max_overflow=0)
    own = create_database(database_url, settings)
    app = create_app(settings, database=own)
    nobody = User(
        id=uuid.uuid4(),
        username="nobody",
        display_name="Nobody",
        role=Role.analyst,
        password_hash="x",
    )
    token = bearer(settings, nobody)  # a well-signed token whose user does not exist: 401
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert_problem(await c.get("/api/v1/me", headers=token), 401, "unauthorized")
            async with own.engine.connect() as conn:  # the pool's only connection
                pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
            async with db.side.begin() as other:
                await other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            lost = await c.get("/api/v1/me", headers=token)
            assert_problem(lost, 503, "database_unavailable")
            assert lost.headers["retry-after"] == "2"
            assert_problem(await c.get("/api/v1/me", headers=token), 401, "unauthorized")
    finally:
        await own.dispose()
