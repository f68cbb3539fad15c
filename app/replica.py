"""Reads that may lag, served by a read replica (DATABASE_READ_URL) when it is fit to answer.

Which reads: published reports (`/reports...`, `/campaigns/{id}/reports...`), the public API
(`/public/v1`) and site (`/public`), and the live index, rankings and change when the caller
asks `?consistency=eventual`. Every other read, and every write, uses the primary.

Read-your-writes: a successful write answered while a replica is configured carries the
primary's WAL position after its commit, as the response header `Sipas-Min-Lsn` and the
cookie `sipas_min_lsn`. A read that sends either back is served by the replica only once the
replica has replayed at least that far (`pg_last_wal_replay_lsn()`); until then, by the
primary. A read without a token accepts whatever the replica has replayed.

Fallback: a replica that cannot be reached (refused, timed out, dropped) is skipped for
DATABASE_READ_RETRY_SECONDS (a circuit breaker: requests in that window do not wait on it),
and its reads go to the primary; each fallback is logged and counted in /metrics. Every
response of a route that may read from the replica says which server answered in
`Sipas-Read-Source: replica|primary`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics

logger = logging.getLogger("sipas.replica")

SOURCE_HEADER = "Sipas-Read-Source"
LSN_HEADER = "Sipas-Min-Lsn"
LSN_COOKIE = "sipas_min_lsn"
# How long the write token is worth keeping: far longer than any sane replication lag.
LSN_COOKIE_SECONDS = 300
WRITE_METHODS = {b"POST", b"PUT", b"PATCH", b"DELETE"}
_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


class Consistency(StrEnum):
    strong = "strong"
    eventual = "eventual"


class Source(StrEnum):
    replica = "replica"
    primary = "primary"


def parse_lsn(text: str | None) -> int | None:
    """`16/B374D848` as one number; None for anything else."""
    match = _LSN.match(text.strip()) if text else None
    if match is None:
        return None
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


# The replica's position, or the server's own when it is not a standby (promoted, or a
# DATABASE_READ_URL that names the primary itself).
_PROBE = sa.text(
    """SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                    ELSE pg_current_wal_lsn() END)::text"""
)
# Where the primary has flushed its WAL. A commit returns once its record is flushed (with
# synchronous_commit on, PostgreSQL's default and the service's), so read after the commit this
# is at or past it; and it never names WAL the standby cannot yet receive, as the insert
# position can for seconds on an idle server.
_PRIMARY_LSN = sa.text("SELECT pg_current_wal_flush_lsn()::text")


@dataclass(slots=True)
class Replica:
    """The replica's engine, and the circuit breaker in front of it (one per process)."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    retry_seconds: float
    connect_timeout: float
    open_until: float = 0.0  # time.monotonic() before which the replica is not tried

    def available(self) -> bool:
        return time.monotonic() >= self.open_until

    def trip(self, error: BaseException) -> None:
        """The replica failed: skip it for retry_seconds."""
        self.open_until = time.monotonic() + self.retry_seconds
        metrics.REPLICA_FAILURES.inc()
        logger.warning(
            "read replica unavailable; reads go to the primary",
            extra={"error": type(error).__name__, "retry_seconds": self.retry_seconds},
        )

    async def _admit(self, session: AsyncSession, min_lsn: int | None) -> str:
        """`served` when the replica may answer; `down` when it cannot be reached in time,
        `behind` when it has not yet replayed the caller's own write. The one round trip that
        asks the replay position also proves the pooled connection alive, so a replica that went
        away is found here, before the handler reads, and not halfway through it."""
        try:
            async with asyncio.timeout(self.connect_timeout):
                position = parse_lsn(await session.scalar(_PROBE))
        except Exception as exc:  # whatever stops the replica, the primary answers
            self.trip(exc)
            with contextlib.suppress(Exception):  # the connection is gone already, or never was
                await session.invalidate()
            return "down"
        if min_lsn is not None and (position is None or position < min_lsn):
            return "behind"
        return "served"

    @asynccontextmanager
    async def session(self, min_lsn: int | None) -> AsyncIterator[AsyncSession | None]:
        """A session on the replica, or None when the primary must answer (the reason is
        counted in /metrics)."""
        reason = "down"
        session = None
        if self.available():
            session = self.sessionmaker()
            reason = await self._admit(session, min_lsn)
        metrics.REPLICA_READS.labels(reason).inc()
        if session is None or reason != "served":
            if session is not None:
                await session.close()
            yield None
            return
        try:
            yield session
            await session.commit()
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError):
                self.trip(exc)  # the replica went away mid-read: the next reads avoid it
            raise
        finally:
            await session.close()


async def primary_lsn(side: AsyncEngine) -> str | None:
    """Where the primary's WAL stands now (after the caller's commit), or None if unknown."""
    try:
        async with side.connect() as conn:
            value = await conn.scalar(_PRIMARY_LSN)
    except (sa.exc.DBAPIError, OSError, TimeoutError):
        logger.warning("could not read the primary's WAL position", exc_info=True)
        return None
    return str(value) if value else None


class ReadRoutingMiddleware:
    """Adds `Sipas-Read-Source` to the responses of routes that chose a server, and, with a
    replica configured, the write token (`Sipas-Min-Lsn` header and cookie) to successful
    writes, read once the handler's transaction has committed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                source = (scope.get("state") or {}).get("read_source")
                if source:
                    headers.append((SOURCE_HEADER.lower().encode(), str(source).encode()))
                if (
                    scope.get("method", "").encode() in WRITE_METHODS
                    and 200 <= message["status"] < 300
                ):
                    headers.extend(await _write_token(scope))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, tagged)


async def _write_token(scope: Scope) -> list[tuple[bytes, bytes]]:
    app = scope.get("app")
    db = getattr(getattr(app, "state", None), "db", None)
    if db is None or db.replica is None:
        return []
    lsn = await primary_lsn(db.side)
    if lsn is None:
        return []
    cookie = f"{LSN_COOKIE}={lsn}; Max-Age={LSN_COOKIE_SECONDS}; Path=/; HttpOnly; SameSite=Lax"
    return [(LSN_HEADER.lower().encode(), lsn.encode()), (b"set-cookie", cookie.encode())]
