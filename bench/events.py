"""Events benchmark: what the outbox costs ingestion, and how fast webhooks go out.

1. The outbox in the statement: the app's own INSERT of forms (a single form with its audit
   event, and a batch of `--batch-size` forms) run directly on the database, with and without
   the CTE that writes their `submission.accepted` events, interleaved in `--rounds` slices;
   time per committed statement. Events are always written (the pull feed needs them), so this
   is the outbox's whole cost on the writing path.
2. Ingestion with subscribers: the app (uvicorn, `--workers`) takes single forms and batches
   with no subscription and no worker, then with three subscriptions and a `sipas worker`
   delivering every form to a local receiver as it arrives, in turn, in `--rounds` slices.
3. Delivery rate: a backlog of events for one subscription, drained by one and by two
   `sipas worker` processes into a local receiver (Python's threaded http.server, keep-alive,
   answering 200 at once: the receiver shares the machine and is part of what is measured).

Writes a section of bench/RESULTS.md.

    .venv/bin/python -m bench.events [--rounds 3] [--duration 6] [--concurrency 16] ...
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import sqlalchemy as sa

from app.config import Settings
from app.db import create_database
from app.services import audit, events, submissions
from app.services.events import signing
from app.services.submissions import writes
from bench.common import (
    OUT_DIR,
    PYTHON,
    ROOT,
    Fixture,
    Server,
    dsn,
    make_fixture,
    make_form,
    prepare_database,
    replace_section,
    server_env,
    truncate_submissions,
)
from bench.ingest import Measurement, drive_batches, drive_singles, fresh
from tests.helpers.receiver import receiver

DATABASE = "sipas_bench_events"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Events and webhooks"


# ---- 1. the outbox in the statement ------------------------------------------------------------


def _without_events(text: str) -> str:
    """The same statement without its events CTE."""
    cte = "), evt AS (" + events.submissions_accepted_sql("ins")
    if cte not in text:
        raise RuntimeError("the forms' INSERT no longer writes its events as a CTE")
    return text.replace(cte, "")


def _prepared(fixture: Fixture, rng: random.Random) -> submissions.Prepared:
    form = make_form(fixture, rng)
    agency = next(a for a in fixture.agencies if a.code == form["agency_code"])
    answers = json.dumps(form["answers"], sort_keys=True, ensure_ascii=False)
    key = uuid.uuid4()
    values = {
        "campaign_id": fixture.campaign_id,
        "client_submission_id": key,
        "request_hash": hashlib.sha256(answers.encode()).hexdigest(),
        "agency_id": agency.id,
        "sector_id": None,
        "procedure_id": None,
        "stratum_id": fixture.strata.get(agency.id),
        "frame_unit_id": None,
        "respondent_type": form["respondent_type"],
        "channel": "kiosk",
        "client_id": None,
        "surveyor_id": None,
        "device_id": None,
        "answers": answers,
        "received_at": datetime.now(UTC),
    }
    return submissions.Prepared(key, values["request_hash"], values, None)


async def statement_costs(
    url: str, fixture: Fixture, *, rounds: int, singles: int, batches: int, size: int
) -> dict[str, Any]:
    """Milliseconds per committed statement, with and without the events CTE, interleaved."""
    settings = Settings(_env_file=None, database_url=url, environment="test")
    db = create_database(url, settings)
    rng = random.Random(11)
    single_with = str(writes._INSERT_AUDITED.element)
    batch_with = str(writes._INSERT)
    texts = {
        ("single", True): sa.text(single_with),
        ("single", False): sa.text(_without_events(single_with)),
        ("batch", True): sa.text(batch_with),
        ("batch", False): sa.text(_without_events(batch_with)),
    }
    spent: dict[tuple[str, bool], float] = dict.fromkeys(texts, 0.0)
    counts: dict[tuple[str, bool], int] = dict.fromkeys(texts, 0)
    audit_params = audit.row_params(
        audit.event_values(None, "submission.create", object_type="submission")
    )
    try:
        for _ in range(rounds):
            for with_events in (False, True):
                for _ in range(singles):
                    params = {**writes._arrays([_prepared(fixture, rng)]), **audit_params}
                    async with db.sessionmaker() as s:
                        t0 = time.perf_counter()
                        await s.execute(texts[("single", with_events)], params)
                        await s.commit()
                        spent[("single", with_events)] += time.perf_counter() - t0
                    counts[("single", with_events)] += 1
                for _ in range(batches):
                    rows = [_prepared(fixture, rng) for _ in range(size)]
                    params = writes._arrays(rows)
                    async with db.sessionmaker() as s:
                        t0 = time.perf_counter()
                        await s.execute(texts[("batch", with_events)], params)
                        await s.commit()
                        spent[("batch", with_events)] += time.perf_counter() - t0
                    counts[("batch", with_events)] += 1
    finally:
        await db.dispose()
    ms = {
        f"{k}_{'with' if w else 'without'}": spent[(k, w)] / counts[(k, w)] * 1000 for k, w in texts
    }
    return {
        **ms,
        "single_ratio": ms["single_with"] / ms["single_without"],
        "batch_ratio": ms["batch_with"] / ms["batch_without"],
        "singles": counts[("single", True)],
        "batches": counts[("batch", True)],
    }


# ---- 2 and 3: the app, the worker, a receiver --------------------------------------------------


async def _sql(url: str, statement: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn(url))
    try:
        return await conn.fetchval(statement, *args)
    finally:
        await conn.close()


async def set_subscriptions(url: str, fixture: Fixture, target: str | None, n: int) -> None:
    """Exactly `n` subscriptions to `target` (none when n is 0); the dispatcher starts at the
    newest event, so only what follows is delivered."""
    conn = await asyncpg.connect(dsn(url))
    try:
        await conn.execute("DELETE FROM webhook_subscriptions")
        await conn.execute(
            "UPDATE webhook_dispatch SET (tx_id, seq) = (SELECT coalesce(max(tx_id), 0),"
            " coalesce(max(seq), 0) FROM events) WHERE id = 1"
        )
        for _ in range(n):
            await conn.execute(
                "INSERT INTO webhook_subscriptions (client_id, url, event_types, secret)"
                " VALUES ($1, $2, $3, $4)",
                fixture.client_ids[0],
                target,
                ["submission.accepted"],
                signing.new_secret(),
            )
    finally:
        await conn.close()


async def post_batches(
    url: str, token: str, batches: list[list[dict[str, Any]]], count: int
) -> None:
    async with httpx.AsyncClient(timeout=120) as http:
        for n in range(count):
            body = {"submissions": [fresh(f) for f in batches[n % len(batches)]]}
            r = await http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
            r.raise_for_status()


def start_workers(env: dict[str, str], n: int, log: Path) -> list[subprocess.Popen[bytes]]:
    out = open(log, "ab")  # noqa: SIM115 - the processes hold it; closed with them
    return [
        subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [PYTHON, "-m", "app.cli", "worker"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for _ in range(n)
    ]


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)


def run(args: argparse.Namespace) -> dict[str, Any]:
    url = prepare_database(DATABASE)
    fixture = asyncio.run(make_fixture(url, agencies=10, clients=args.concurrency))
    rng = random.Random(2017)
    print("events: the outbox in the statement", flush=True)
    stmt = asyncio.run(
        statement_costs(
            url, fixture, rounds=args.rounds, singles=200, batches=10, size=args.batch_size
        )
    )
    print(
        f"  single form {stmt['single_without']:.2f} -> {stmt['single_with']:.2f} ms "
        f"({stmt['single_ratio']:.2f}x); batch of {args.batch_size} "
        f"{stmt['batch_without']:.1f} -> {stmt['batch_with']:.1f} ms ({stmt['batch_ratio']:.2f}x)",
        flush=True,
    )
    pool = [make_form(fixture, rng) for _ in range(2000)]
    batches = [[make_form(fixture, rng) for _ in range(args.batch_size)] for _ in range(8)]
    submit = f"/api/v1/campaigns/{fixture.campaign_id}/submissions"
    slice_s = args.duration / args.rounds
    parts: dict[str, list[Measurement]] = {
        k: [] for k in ("single_off", "single_on", "batch_off", "batch_on")
    }
    env = server_env(
        url,
        WEBHOOK_ALLOW_HTTP="true",
        WEBHOOK_ALLOWED_HOSTS='["127.0.0.1"]',
        WORKER_POLL_SECONDS="0.2",
        WORKER_CONCURRENCY="16",
    )
    log = OUT_DIR / "events-worker.log"
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    delivery: dict[str, float] = {}
    with (
        receiver() as rx,
        Server("app.main:create_app", env, workers=args.workers, log=OUT_DIR / "events.log") as app,
    ):
        app.start()
        print("events: ingestion without and with subscribers", flush=True)
        for n in range(args.rounds):
            kw = {"warmup": args.warmup if n == 0 else 1.0, "duration": slice_s}
            for on in (False, True):
                asyncio.run(truncate_submissions(url))
                asyncio.run(set_subscriptions(url, fixture, rx.url, 3 if on else 0))
                procs = start_workers(env, 1, log) if on else []
                try:
                    suffix = "on" if on else "off"
                    parts[f"single_{suffix}"].append(
                        asyncio.run(
                            drive_singles(
                                f"single {suffix}",
                                app.base + submit,
                                fixture.client_tokens,
                                pool,
                                concurrency=args.concurrency,
                                **kw,
                            )
                        )
                    )
                    parts[f"batch_{suffix}"].append(
                        asyncio.run(
                            drive_batches(
                                app.base + submit + "/batch",
                                fixture.client_tokens[0],
                                batches,
                                concurrency=args.batch_concurrency,
                                **kw,
                            )
                        )
                    )
                finally:
                    stop_workers(procs)
            last = {k: v[-1].forms_per_s for k, v in parts.items()}
            print(
                f"  round {n + 1}: singles {last['single_off']:.0f} -> {last['single_on']:.0f}, "
                f"batches {last['batch_off']:.0f} -> {last['batch_on']:.0f} forms/s",
                flush=True,
            )

        print("events: delivery rate", flush=True)
        for workers in (1, 2):
            asyncio.run(set_subscriptions(url, fixture, rx.url, 1))
            asyncio.run(
                post_batches(
                    app.base + submit + "/batch",
                    fixture.client_tokens[0],
                    batches,
                    -(-args.backlog // args.batch_size),
                )
            )
            total = int(
                asyncio.run(
                    _sql(
                        url,
                        "SELECT count(*) FROM events e, webhook_dispatch d"
                        " WHERE d.id = 1 AND (e.tx_id, e.seq) > (d.tx_id, d.seq)",
                    )
                )
            )
            received = len(rx.requests)
            t0 = time.monotonic()
            procs = start_workers(env, workers, log)
            try:
                while len(rx.requests) - received < total and time.monotonic() - t0 < 300:
                    time.sleep(0.05)
                elapsed = time.monotonic() - t0
            finally:
                stop_workers(procs)
            done = len(rx.requests) - received
            delivery[f"workers_{workers}"] = done / elapsed
            delivery[f"events_{workers}"] = done
            print(
                f"  {workers} worker(s): {done} of {total} events in {elapsed:.1f} s "
                f"({done / elapsed:.0f}/s, including the workers' start-up)",
                flush=True,
            )
    merged = {k: Measurement.merged(v) for k, v in parts.items()}
    return {
        "statement": stmt,
        "ingest": {k: v.as_dict() for k, v in merged.items()},
        "single_ratio": merged["single_on"].forms_per_s / merged["single_off"].forms_per_s,
        "batch_ratio": merged["batch_on"].forms_per_s / merged["batch_off"].forms_per_s,
        "delivery": delivery,
        "args": vars(args),
    }


def render(r: dict[str, Any]) -> str:
    s, i, d, a = r["statement"], r["ingest"], r["delivery"], r["args"]
    return "\n".join(
        [
            SECTION,
            "",
            f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; command: "
            f"`python -m bench.events --rounds {a['rounds']} --duration {a['duration']:g} "
            f"--concurrency {a['concurrency']}`; same machine and embedded PostgreSQL as above, "
            f"shared with other work: load average {r['load'][0]:.1f} before and "
            f"{r['load'][1]:.1f} after the run on 2 cores, so compare figures within this "
            "section (each ratio is of slices taken in turn), not with the sections above",
            "",
            "The outbox in the writing statement (each form's `submission.accepted` is a CTE of "
            "the INSERT that stores it; milliseconds per committed statement, interleaved):",
            "",
            "| | without events | with events | ratio |",
            "|---|---:|---:|---:|",
            f"| single form (with its audit event), {s['singles']} statements | "
            f"{s['single_without']:.2f} | {s['single_with']:.2f} | {s['single_ratio']:.2f} |",
            f"| batch of {a['batch_size']}, {s['batches']} statements | {s['batch_without']:.1f} "
            f"| {s['batch_with']:.1f} | {s['batch_ratio']:.2f} |",
            "",
            "Ingestion through the API with no subscription and no worker, then with three "
            "subscriptions and a `sipas worker` delivering each form three times to a local "
            f"receiver as it arrives ({a['concurrency']} clients for single forms, "
            f"{a['batch_concurrency']} for batches of {a['batch_size']}; forms/s, slices in turn):",
            "",
            "| | no subscribers | 3 subscribers, worker running | ratio |",
            "|---|---:|---:|---:|",
            f"| single forms | {i['single_off']['forms_per_s']:.0f} | "
            f"{i['single_on']['forms_per_s']:.0f} | {r['single_ratio']:.2f} |",
            f"| batches | {i['batch_off']['forms_per_s']:.0f} | "
            f"{i['batch_on']['forms_per_s']:.0f} | {r['batch_ratio']:.2f} |",
            "",
            "Delivery rate (a backlog of events for one subscription, drained into a local "
            "Python receiver that shares the two cores; signing, the target check, the HTTP "
            "POST and the outcome's commit each time, from the workers' start):",
            "",
            "| workers | events | events/s |",
            "|---:|---:|---:|",
            f"| 1 | {d['events_1']:.0f} | {d['workers_1']:.0f} |",
            f"| 2 | {d['events_2']:.0f} | {d['workers_2']:.0f} |",
            "",
            "Reading the figures. Events are written whether or not anyone subscribes (the pull "
            "feed serves them), so the first table is the whole cost of the outbox on the "
            "writing path: for a single form it is lost in the round trip, for a batch it is "
            f"{(s['batch_with'] - s['batch_without']) / a['batch_size'] * 1000:.0f} µs per form "
            "(one more row, its JSON payload and two index entries, in the same statement). In "
            "the second table the worker, the receiver and the load generator share the two "
            "cores with uvicorn and PostgreSQL, so its ratios include the CPU that delivery "
            "itself takes (three POSTs signed and recorded per form); on separate machines the "
            "ingestion side pays only the first table's cost. Delivery is bounded here by the "
            "Python receiver and the shared cores; a second worker adds throughput since "
            "claims never overlap (FOR UPDATE SKIP LOCKED).",
            "",
        ]
    )


def write_section(text: str) -> None:
    replace_section(RESULTS, SECTION, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=9.0, help="seconds per subject, in all")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch-concurrency", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backlog", type=int, default=3000)
    args = parser.parse_args()
    before = os.getloadavg()[0]
    result = run(args)
    result["load"] = (before, os.getloadavg()[0])
    (OUT_DIR / "events.json").write_text(json.dumps(result, indent=2, default=str))
    write_section(render(result))
    print(f"wrote the events section of {RESULTS}")


if __name__ == "__main__":
    main()
