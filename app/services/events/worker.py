"""The delivery worker (`sipas worker`): fan-out, delivery, the periodic checks and the index
roll-ups' folding, in a loop.

Each step is its own short transaction (`transaction()` yields a session committed on exit),
so no transaction stays open while a request is on the network and the feed's horizon is never
held back by the worker. Several copies may run: the dispatcher row and the deliveries are
claimed with SKIP LOCKED. `stop()` (SIGTERM, SIGINT) lets the deliveries in flight finish and
be recorded, hands back claims never attempted, and returns."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.services.events import delivery
from app.services.events.progress import check_behind_target
from app.services.index import rollups

log = logging.getLogger("sipas.worker")

Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Counts:
    """What this worker did, by outcome (for its log and the tests)."""

    by_outcome: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str) -> None:
        self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + 1


class Worker:
    def __init__(
        self,
        transaction: Transaction,
        settings: Settings,
        http: httpx.AsyncClient,
        *,
        now: Callable[[], datetime] = wall_clock,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.transaction = transaction
        self.settings = settings
        self.http = http
        self.now = now
        self.rand = rand
        self.counts = Counts()
        self._stopping = asyncio.Event()
        self._last_check: datetime | None = None

    def stop(self) -> None:
        self._stopping.set()

    async def fan_out(self, rounds: int = 10) -> int:
        """Fan out what has committed, a bounded number of batches at a time, so that under a
        steady stream of new events the worker still gets to deliver between rounds."""
        total = 0
        for _ in range(rounds):
            async with self.transaction() as session:
                read = await delivery.fan_out(session, self.now())
            total += read or 0
            if read is None or read < delivery.FAN_OUT_LIMIT:
                break
        return total

    async def periodic(self) -> None:
        """The behind-target check, at most once a minute."""
        now = self.now()
        if self._last_check is not None and now - self._last_check < timedelta(minutes=1):
            return
        self._last_check = now
        async with self.transaction() as session:
            await check_behind_target(session, self.settings, now.date())

    async def deliver(self) -> int:
        """Claim a batch of due deliveries, attempt them together, record the outcomes."""
        now = self.now()
        async with self.transaction() as session:
            claimed = await delivery.claim(
                session, self.settings, now, self.settings.worker_concurrency
            )
        if not claimed:
            return 0
        try:
            results = await delivery.attempt_all(self.http, self.settings, claimed, self.now())
        except BaseException:
            with contextlib.suppress(Exception):
                async with self.transaction() as session:
                    await delivery.release(session, claimed, self.now())
            raise
        async with self.transaction() as session:
            for outcome in await delivery.record_all(
                session, self.settings, results, rand=self.rand
            ):
                self.counts.add(outcome)
        return len(claimed)

    async def fold(self) -> int:
        """Fold the forms committed since the last round into the index roll-ups, one batch
        per campaign (reads are exact before it: they count the tail from the forms)."""
        async with self.transaction() as session:
            return await rollups.fold_all(session)

    async def run_once(self) -> int:
        await self.fan_out()
        await self.periodic()
        folded = await self.fold()
        return await self.deliver() + folded

    async def run(self) -> None:
        log.info("webhook worker started")
        while not self._stopping.is_set():
            try:
                busy = await self.run_once()
            except Exception:  # a database outage: log, wait, go on
                log.exception("worker step failed")
                busy = 0
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stopping.wait(), timeout=self.settings.worker_poll_seconds
                    )
        log.info("webhook worker stopped: %s", self.counts.by_outcome)


async def run_worker(settings: Settings, url: str) -> None:
    """The `sipas worker` process: until SIGTERM or SIGINT."""
    import signal

    from app.db import create_database, session_scope

    db = create_database(url, settings)

    @contextlib.asynccontextmanager
    async def transaction() -> AsyncIterator[AsyncSession]:
        async with session_scope(db) as session:
            yield session

    async with delivery.http_client(settings) as http:
        worker = Worker(transaction, settings, http)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        try:
            await worker.run()
        finally:
            await db.dispose()
