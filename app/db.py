"""Database access: the async engine, the per-request session and the constraint naming."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config import Settings
from app.replica import Replica


@dataclass(slots=True)
class Database:
    """The request engine, and a small one for short writes made beside a request's own
    transaction (rate counters). Keeping them apart means a request that holds a connection
    never waits on its own pool for a second one, which deadlocks the pool under load."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    side: AsyncEngine
    # The read replica (DATABASE_READ_URL), for reads that may lag; None without one.
    replica: Replica | None = None

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self.side.dispose()
        if self.replica is not None:
            await self.replica.engine.dispose()


def create_database(url: str, settings: Settings) -> Database:
    """The request engine does not ping a connection at checkout: the ping was a round trip on
    every request. A connection PostgreSQL dropped (restart, failover) fails the one request
    that meets it with a disconnect error, which SQLAlchemy answers by invalidating the whole
    pool and app.errors by a 503 with Retry-After; the retry gets a fresh connection. The side
    engine, used about once a second, keeps pinging."""
    engine = _request_engine(url, settings, "sipas", settings.db_pool_timeout)
    side = create_async_engine(
        url,
        pool_size=2,
        max_overflow=8,
        pool_timeout=settings.db_pool_timeout,
        pool_pre_ping=True,
        connect_args=_connect_args("sipas-side"),
    )
    return Database(
        engine,
        async_sessionmaker(engine, expire_on_commit=False),
        side,
        create_replica(settings),
    )


def create_replica(settings: Settings) -> Replica | None:
    """The engine on DATABASE_READ_URL, if set: as the request engine, but its connections are
    given up on after DATABASE_READ_CONNECT_TIMEOUT, and each read's first round trip (the
    replay position app.replica asks) doubles as the ping."""
    url = settings.database_read_url
    if url is None:
        return None
    timeout = settings.database_read_connect_timeout
    engine = _request_engine(url, settings, "sipas-read", timeout, connect_timeout=timeout)
    return Replica(
        engine,
        async_sessionmaker(engine, expire_on_commit=False),
        retry_seconds=settings.database_read_retry_seconds,
        connect_timeout=timeout,
    )


def _request_engine(
    url: str,
    settings: Settings,
    application_name: str,
    pool_timeout: float,
    connect_timeout: float | None = None,
) -> AsyncEngine:
    """An engine for requests' sessions: its pool sized by DB_POOL_SIZE and DB_MAX_OVERFLOW,
    with no ping at checkout (create_database says why)."""
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=False,
        connect_args=_connect_args(application_name, connect_timeout),
    )


def _connect_args(application_name: str, timeout: float | None = None) -> dict[str, Any]:
    """asyncpg's: each connection names its engine to PostgreSQL (pg_stat_activity) and works
    in UTC; `timeout` gives up on a connection attempt after that many seconds."""
    server_settings = {"application_name": application_name, "timezone": "UTC"}
    if timeout is None:
        return {"server_settings": server_settings}
    return {"timeout": timeout, "server_settings": server_settings}


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@asynccontextmanager
async def _maintenance(url: str) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    """A connection to the server's `postgres` database, and the name of the one `url` names."""
    name = make_url(url).database
    if not name:
        raise ValueError("the database URL names no database")
    conn = await asyncpg.connect(_asyncpg_dsn(url, "postgres"))
    try:
        yield conn, name
    finally:
        await conn.close()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def ensure_database(url: str) -> bool:
    """Create the database that `url` names if it does not exist; True when it was created."""
    async with _maintenance(url) as (conn, name):
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        await conn.execute(f"CREATE DATABASE {_quoted(name)} ENCODING 'UTF8' TEMPLATE template0")
        return True


async def drop_database(url: str) -> None:
    async with _maintenance(url) as (conn, name):
        await conn.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")


@asynccontextmanager
async def session_scope(db: Database) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the body ends normally, rolled back on any exception."""
    async with db.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()
