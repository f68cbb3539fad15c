"""Crash round for events: nothing committed is lost, nothing rolled back is sent.

The API (uvicorn, 2 workers) and two `sipas worker` processes run on `sipas_crash_events` (the
embedded PostgreSQL under `.data/crash/`). A subscription sends `submission.accepted` to a
receiver on 127.0.0.1 that answers 500 to a share of the requests, so retries happen all the
time. Kiosk clients post forms (retrying each until 201, as the API asks), some of them with
invalid answers (refused: their transaction rolls back). Beside them, transactions write events
straight into the outbox and stay open up to 1.5 s, so that others commit before them, then
commit or roll back at random. While all that goes on, the workers and the API
are killed with SIGKILL several times and started again. Then the load stops, everything is
restarted, the workers drain, and:

- every committed form (a row in `submissions`) and every committed late event was delivered at
  least once;
- every delivered event is about a committed form or a committed late event (nothing rolled
  back or refused was sent);
- every delivery of the same event carries the same `webhook-id` and body, and each signature
  verifies with the subscription's secret;
- the workers stop on SIGTERM with exit code 0.

Exits 1 on any violation, printing it.

    .venv/bin/python .ci/crash_events.py [--rounds 3] [--interval 3] [--clients 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.services.events import signing  # noqa: E402
from bench.common import (  # noqa: E402
    PYTHON,
    Fixture,
    Server,
    dsn,
    make_fixture,
    make_form,
    prepare_database,
    server_env,
)
from tests.helpers.receiver import Receiver, receiver, verify  # noqa: E402

DATABASE = "sipas_crash_events"
DATA_DIR = ROOT / ".data" / "crash"
LOG = ROOT / ".data" / "crash-events.log"


class Workers:
    """`sipas worker` processes, each in its own process group."""

    def __init__(self, env: dict[str, str], count: int) -> None:
        self.env = env
        self.count = count
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log = open(LOG, "ab")  # noqa: SIM115 - closed in close()

    def start(self) -> None:
        self.procs = [
            subprocess.Popen(
                [PYTHON, "-m", "app.cli", "worker"],
                cwd=ROOT,
                env=self.env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for _ in range(self.count)
        ]

    def kill(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGKILL)
        for p in self.procs:
            p.wait(10)

    def terminate(self) -> list[int | None]:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for p in self.procs:
            try:
                codes.append(p.wait(30))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(None)
        return codes

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        self.log.close()


async def subscribe(url: str, fixture: Fixture, target: str) -> str:
    secret = signing.new_secret()
    conn = await asyncpg.connect(dsn(url))
    try:
        await conn.execute(
            "INSERT INTO webhook_subscriptions (client_id, url, event_types, secret)"
            " VALUES ($1, $2, $3, $4)",
            fixture.client_ids[0],
            target,
            ["submission.accepted", "plan.updated"],
            secret,
        )
    finally:
        await conn.close()
    return secret


async def kiosk(
    base: str, token: str, fixture: Fixture, stop: asyncio.Event, seed: int, acked: set[str]
) -> None:
    rng = random.Random(seed)
    url = f"{base}/api/v1/campaigns/{fixture.campaign_id}/submissions"
    async with httpx.AsyncClient(
        timeout=10, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        while not stop.is_set():
            form = make_form(fixture, rng)
            if rng.random() < 0.1:  # refused: its transaction rolls back, no event may leave
                form["answers"] = {"no.such.item": 1}
            while not stop.is_set():
                try:
                    r = await client.post(url, json=form)
                    if r.status_code in (201, 422):
                        if r.status_code == 201:
                            acked.add(form["submission_id"])
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)


async def side_transactions(
    url: str, stop: asyncio.Event, committed: set[str], rolled_back: set[str]
) -> None:
    """Transactions that write an event straight into the outbox and stay open a while (so later
    transactions commit before them), then commit or roll back: a late commit must still be
    delivered, a rollback never."""
    rng = random.Random(5)
    while not stop.is_set():
        try:
            conn = await asyncpg.connect(dsn(url))
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(0.5)
            continue
        try:
            while not stop.is_set():
                marker = str(uuid.uuid4())
                keep = rng.random() < 0.5
                tx = conn.transaction()
                await tx.start()
                await conn.execute(
                    "INSERT INTO events (type, payload) VALUES ('plan.updated', $1::jsonb)",
                    json.dumps({"id": marker}),
                )
                await asyncio.sleep(rng.uniform(0.2, 1.5))
                if keep:
                    await tx.commit()
                    committed.add(marker)
                else:
                    await tx.rollback()
                    rolled_back.add(marker)
        except (OSError, asyncpg.PostgresError):
            pass
        finally:
            await conn.close()


async def load(
    server: Server,
    workers: Workers,
    fixture: Fixture,
    url: str,
    late: set[str],
    rolled_back: set[str],
    *,
    rounds: int,
    interval: float,
    clients: int,
) -> set[str]:
    stop = asyncio.Event()
    acked: set[str] = set()
    side = asyncio.create_task(side_transactions(url, stop, late, rolled_back))
    tasks = [side] + [
        asyncio.create_task(
            kiosk(
                server.base,
                fixture.client_tokens[i % len(fixture.client_tokens)],
                fixture,
                stop,
                i,
                acked,
            )
        )
        for i in range(clients)
    ]
    try:
        for n in range(rounds):
            await asyncio.sleep(interval)
            which = ("workers", "api", "both")[n % 3]
            if which in ("workers", "both"):
                await asyncio.to_thread(workers.kill)
            if which in ("api", "both"):
                await asyncio.to_thread(server.kill)
            print(f"  round {n + 1}: SIGKILL to the {which} after {len(acked)} acks")
            await asyncio.sleep(0.5)
            if which in ("workers", "both"):
                workers.start()
            if which in ("api", "both"):
                await asyncio.to_thread(server.start)
        await asyncio.sleep(interval)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    return acked


async def stored_ids(url: str, fixture: Fixture) -> dict[str, str]:
    """Committed forms: server id -> client-made id."""
    conn = await asyncpg.connect(dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT id::text, client_submission_id::text FROM submissions WHERE campaign_id = $1",
            fixture.campaign_id,
        )
    finally:
        await conn.close()
    return {r[0]: r[1] for r in rows}


def delivered(rx: Receiver) -> dict[str, list[tuple[str, bytes]]]:
    """Form id -> every (webhook-id, body) received for it."""
    by_form: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    with rx.lock:
        requests = list(rx.requests)
    for req in requests:
        data = json.loads(req.body)["data"]
        by_form[data["id"]].append((req.headers["webhook-id"], req.body))
    return by_form


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="SIGKILL rounds")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds of load between")
    parser.add_argument("--clients", type=int, default=3)
    args = parser.parse_args()

    started = time.monotonic()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    url = prepare_database(DATABASE, data_dir=DATA_DIR)
    fixture = asyncio.run(make_fixture(url, agencies=4, clients=args.clients))
    LOG.unlink(missing_ok=True)
    env = server_env(
        url,
        WEBHOOK_ALLOW_HTTP="true",
        WEBHOOK_ALLOWED_HOSTS='["127.0.0.1"]',
        WEBHOOK_RETRY_SCHEDULE="[0.2, 0.5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]",
        WEBHOOK_CLAIM_SECONDS="5",
        WORKER_POLL_SECONDS="0.2",
    )
    problems: list[str] = []
    late: set[str] = set()
    rolled_back: set[str] = set()
    rng = random.Random(7)
    with receiver() as rx:
        rx.default = 200
        answer = rx.answer

        def flaky() -> tuple[int, dict[str, str]]:
            status, headers = answer()
            return (500, {}) if rng.random() < 0.15 else (status, headers)

        rx.answer = flaky  # type: ignore[method-assign]
        secret = asyncio.run(subscribe(url, fixture, rx.url))
        server = Server("app.main:create_app", env, workers=2, log=LOG)
        workers = Workers(env, 2)
        try:
            server.start()
            workers.start()
            print(f"crash events on {server.base} (database {DATABASE}), receiver {rx.url}")
            acked = asyncio.run(
                load(
                    server,
                    workers,
                    fixture,
                    url,
                    late,
                    rolled_back,
                    rounds=args.rounds,
                    interval=args.interval,
                    clients=args.clients,
                )
            )
            stored = asyncio.run(stored_ids(url, fixture))
            stored.update({m: m for m in late})
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if set(stored) <= set(delivered(rx)):
                    break
                time.sleep(0.5)
            codes = workers.terminate()
            print(f"  workers stopped on SIGTERM with {codes}")
            if any(c != 0 for c in codes):
                problems.append(f"a worker did not stop cleanly on SIGTERM: {codes}")
        finally:
            workers.close()
            server.stop()
        got = delivered(rx)
        requests = len(rx.requests)
        bad_signatures = sum(not verify(secret, r.headers, r.body) for r in rx.requests)
    missing_acks = [k for k in acked if k not in set(stored.values())]
    undelivered = [i for i in stored if i not in got]
    unknown = [i for i in got if i not in stored]
    split = {i: {w for w, _ in d} for i, d in got.items() if len({w for w, _ in d}) > 1}
    changed = [i for i, d in got.items() if len({b for _, b in d}) > 1]
    repeats = sum(len(d) - 1 for d in got.values())
    print(
        f"  side transactions held open: {len(late)} committed late, {len(rolled_back)} rolled "
        f"back; {sum(m in got for m in late)} of the late ones delivered, "
        f"{sum(m in got for m in rolled_back)} of the rolled-back ones"
    )
    print(
        f"  {len(stored) - len(late)} forms committed ({len(acked)} answered 201); "
        f"{requests} requests received, {len(got)} distinct events, {repeats} repeats "
        "(retries after 500s or kills)"
    )
    if missing_acks:
        problems.append(f"{len(missing_acks)} forms answered 201 are not stored")
    if undelivered:
        problems.append(f"{len(undelivered)} committed forms never delivered: {undelivered[:5]}")
    if unknown:
        problems.append(f"{len(unknown)} events delivered for forms not committed: {unknown[:5]}")
    if split:
        problems.append(f"{len(split)} events arrived under several webhook-ids")
    if changed:
        problems.append(f"{len(changed)} events arrived with different bodies")
    if bad_signatures:
        problems.append(f"{bad_signatures} requests failed signature verification")
    if not repeats:
        problems.append("no event was delivered twice: retries were not exercised")
    elapsed = time.monotonic() - started
    if problems:
        print(f"CRASH EVENTS FAILED ({len(problems)} violations, {elapsed:.0f} s); see {LOG}:")
        for p in problems:
            print("  - " + p)
        return 1
    print(f"crash events passed in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
