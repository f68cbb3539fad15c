"""Waiting for the feed's horizon, which is the whole server's and not one database's."""

from __future__ import annotations

import asyncio
import time

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine


async def settled(engine: AsyncEngine, within: float = 60.0) -> None:
    """Return once every transaction running now has ended, in any database of the server.

    The event feed shows a transaction's events once no older transaction is running
    (`pg_snapshot_xmin`), and that horizon spans the server: under pytest-xdist another
    worker's test transaction, in its own database, holds it back for a moment. A test that
    commits and then expects the feed to show what it committed waits for this first; alone
    on the server it returns at once."""
    async with engine.connect() as conn:
        mark = int(str(await conn.scalar(sa.text("SELECT pg_current_xact_id()"))))
        await conn.commit()
        deadline = time.monotonic() + within
        while True:
            horizon = await conn.scalar(
                sa.text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
            )
            await conn.rollback()
            if int(str(horizon)) > mark:
                return
            assert time.monotonic() < deadline, "a transaction of the server stayed open"
            await asyncio.sleep(0.02)
