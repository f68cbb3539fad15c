"""Ingest benchmark: the real app against its floors, measured in the same run.

1. Single forms: `--concurrency` httpx clients post one valid sipas-2017 form each, again and
   again, to the app (uvicorn, `--workers` processes) and, as the baseline, to
   bench/minimal_app.py (one asyncpg INSERT per form) served the same way. Throughput and
   p50/p95/p99 latency over `--duration` seconds after `--warmup` seconds.
2. Batches: `--batch-concurrency` clients post batches of `--batch-size` forms to the app's
   batch endpoint; the baseline is asyncpg `copy_records_to_table` of the same rows in chunks
   of the same size, on as many connections.

Each measurement starts on an emptied submissions table of a dedicated database
(`sipas_bench_ingest`). Every client-made id is fresh; the request bodies are drawn once,
before the clock starts, so the load generator spends its CPU on HTTP, not on making forms.

    .venv/bin/python -m bench.ingest [--duration 15] [--concurrency 32] ...
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from bench.common import (
    OUT_DIR,
    Fixture,
    Server,
    dsn,
    make_fixture,
    make_form,
    percentile,
    prepare_database,
    server_env,
    truncate_submissions,
)

DATABASE = "sipas_bench_ingest"


@dataclass
class Measurement:
    name: str
    seconds: float
    requests: int = 0
    forms: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    p50_ms: float = float("nan")
    p95_ms: float = float("nan")
    p99_ms: float = float("nan")

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def forms_per_s(self) -> float:
        return self.forms / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "requests_per_s": self.requests_per_s,
            "forms_per_s": self.forms_per_s,
        }


def fresh(form: dict[str, Any]) -> dict[str, Any]:
    return {**form, "submission_id": str(uuid.uuid4())}


async def drive_singles(
    name: str,
    url: str,
    tokens: list[str],
    pool: list[dict[str, Any]],
    *,
    concurrency: int,
    warmup: float,
    duration: float,
) -> Measurement:
    """Closed loop: each of `concurrency` clients posts the next form as soon as it is answered."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    created = 0
    start = time.monotonic() + warmup
    end = start + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal created
        headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
        rng = random.Random(i)
        while True:
            body = fresh(pool[rng.randrange(len(pool))])
            t0 = time.monotonic()
            if t0 >= end:
                return
            try:
                r = await http.post(url, json=body, headers=headers)
                status = str(r.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            t1 = time.monotonic()
            if t0 >= start and t1 <= end:
                latencies.append(t1 - t0)
                statuses[status] += 1
                created += status == "201"

    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(client(i, http) for i in range(concurrency)))
    ms = [x * 1000 for x in latencies]
    return Measurement(
        name,
        duration,
        requests=len(latencies),
        forms=created,
        statuses=dict(statuses),
        p50_ms=percentile(ms, 50),
        p95_ms=percentile(ms, 95),
        p99_ms=percentile(ms, 99),
    )


async def drive_batches(
    url: str,
    token: str,
    batches: list[list[dict[str, Any]]],
    *,
    concurrency: int,
    warmup: float,
    duration: float,
) -> Measurement:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    created = 0
    start = time.monotonic() + warmup
    end = start + duration
    headers = {"Authorization": f"Bearer {token}"}

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal created
        n = i
        while True:
            body = {"submissions": [fresh(f) for f in batches[n % len(batches)]]}
            n += concurrency
            t0 = time.monotonic()
            if t0 >= end:
                return
            try:
                r = await http.post(url, json=body, headers=headers)
                status = str(r.status_code)
                made = r.json()["created"] if r.status_code == 200 else 0
            except httpx.HTTPError as exc:
                status, made = type(exc).__name__, 0
            t1 = time.monotonic()
            if t0 >= start and t1 <= end:
                latencies.append(t1 - t0)
                statuses[status] += 1
                created += made

    async with httpx.AsyncClient(timeout=120) as http:
        await asyncio.gather(*(client(i, http) for i in range(concurrency)))
    ms = [x * 1000 for x in latencies]
    return Measurement(
        "app batch",
        duration,
        requests=len(latencies),
        forms=created,
        statuses=dict(statuses),
        p50_ms=percentile(ms, 50),
        p95_ms=percentile(ms, 95),
        p99_ms=percentile(ms, 99),
    )


COPY_COLUMNS = [
    "campaign_id",
    "client_submission_id",
    "request_hash",
    "agency_id",
    "stratum_id",
    "respondent_type",
    "channel",
    "answers",
    "received_at",
]


def copy_records(fixture: Fixture, forms: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows the app would write for these forms, with fresh client-made ids."""
    by_code = {a.code: a.id for a in fixture.agencies}
    now = datetime.now(UTC)
    rows = []
    for form in forms:
        agency_id = by_code[form["agency_code"]]
        answers = json.dumps(form["answers"], ensure_ascii=False)
        rows.append(
            (
                fixture.campaign_id,
                uuid.uuid4(),
                hashlib.sha256(answers.encode()).hexdigest(),
                agency_id,
                fixture.strata[agency_id],
                form["respondent_type"],
                form["channel"],
                answers,
                now,
            )
        )
    return rows


async def drive_copy(
    url: str,
    fixture: Fixture,
    batches: list[list[dict[str, Any]]],
    *,
    concurrency: int,
    warmup: float,
    duration: float,
) -> Measurement:
    """`copy_records_to_table` of batch-size chunks, one transaction each, on N connections."""
    latencies: list[float] = []
    copied = 0
    start = time.monotonic() + warmup
    end = start + duration

    async def worker(i: int) -> None:
        nonlocal copied
        conn = await asyncpg.connect(dsn(url))
        try:
            n = i
            while True:
                rows = copy_records(fixture, batches[n % len(batches)])
                n += concurrency
                t0 = time.monotonic()
                if t0 >= end:
                    return
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "submissions", records=rows, columns=COPY_COLUMNS
                    )
                t1 = time.monotonic()
                if t0 >= start and t1 <= end:
                    latencies.append(t1 - t0)
                    copied += len(rows)
        finally:
            await conn.close()

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    ms = [x * 1000 for x in latencies]
    return Measurement(
        "COPY baseline",
        duration,
        requests=len(latencies),
        forms=copied,
        statuses={"copied": copied},
        p50_ms=percentile(ms, 50),
        p95_ms=percentile(ms, 95),
        p99_ms=percentile(ms, 99),
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """All four measurements; returns them with their ratios."""
    url = prepare_database(DATABASE)
    fixture = asyncio.run(make_fixture(url, agencies=10, clients=args.concurrency))
    rng = random.Random(2017)
    pool = [make_form(fixture, rng) for _ in range(2000)]
    batches = [[make_form(fixture, rng) for _ in range(args.batch_size)] for _ in range(8)]
    submit = f"/api/v1/campaigns/{fixture.campaign_id}/submissions"
    kw = {"warmup": args.warmup, "duration": args.duration}
    results: dict[str, Measurement] = {}

    def measure_server(name: str, target: str, env: dict[str, str], factory: bool) -> Server:
        return Server(
            target, env, workers=args.workers, factory=factory, log=OUT_DIR / f"{name}.log"
        )

    # (a) the floor: one INSERT per request, same server, same clients
    asyncio.run(truncate_submissions(url))
    env = server_env(url, MINIMAL_DSN=dsn(url), MINIMAL_CAMPAIGN_ID=str(fixture.campaign_id))
    with measure_server("minimal", "bench.minimal_app:app", env, False) as server:
        server.start()
        results["minimal"] = asyncio.run(
            drive_singles(
                "minimal endpoint",
                server.base + "/",
                fixture.client_tokens,
                pool,
                concurrency=args.concurrency,
                **kw,
            )
        )
    print_line(results["minimal"])

    # the app: single forms, then batches
    asyncio.run(truncate_submissions(url))
    with measure_server("app", "app.main:create_app", server_env(url), True) as server:
        server.start()
        results["single"] = asyncio.run(
            drive_singles(
                "app single",
                server.base + submit,
                fixture.client_tokens,
                pool,
                concurrency=args.concurrency,
                **kw,
            )
        )
        print_line(results["single"])
        asyncio.run(truncate_submissions(url))
        results["batch"] = asyncio.run(
            drive_batches(
                server.base + submit + "/batch",
                fixture.client_tokens[0],
                batches,
                concurrency=args.batch_concurrency,
                **kw,
            )
        )
    print_line(results["batch"])

    # (b) the floor for batches: COPY of the same rows
    asyncio.run(truncate_submissions(url))
    results["copy"] = asyncio.run(
        drive_copy(url, fixture, batches, concurrency=args.batch_concurrency, **kw)
    )
    print_line(results["copy"])
    asyncio.run(truncate_submissions(url))

    single_ratio = results["single"].forms_per_s / results["minimal"].forms_per_s
    batch_ratio = results["batch"].forms_per_s / results["copy"].forms_per_s
    summary = {
        "measurements": {k: v.as_dict() for k, v in results.items()},
        "single_ratio": single_ratio,
        "batch_ratio": batch_ratio,
        "single_target_met": single_ratio >= 0.5 and results["single"].p99_ms < 100,
        "batch_target_met": batch_ratio >= 0.25,
    }
    print(
        f"single forms: {single_ratio:.1%} of the minimal endpoint, "
        f"p99 {results['single'].p99_ms:.1f} ms (target >= 50 % and < 100 ms: "
        f"{'met' if summary['single_target_met'] else 'NOT met'})"
    )
    print(
        f"batches: {batch_ratio:.1%} of COPY (target >= 25 %: "
        f"{'met' if summary['batch_target_met'] else 'NOT met'})"
    )
    return summary


def print_line(m: Measurement) -> None:
    print(
        f"  {m.name:<18} {m.forms_per_s:9.1f} forms/s  {m.requests_per_s:8.1f} req/s  "
        f"p50 {m.p50_ms:7.1f}  p95 {m.p95_ms:7.1f}  p99 {m.p99_ms:7.1f} ms  {m.statuses}",
        flush=True,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=15, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=3, help="seconds before measuring")
    parser.add_argument("--concurrency", type=int, default=32, help="single-form clients")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--batch-concurrency", type=int, default=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    summary = run(parser.parse_args())
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "ingest.json").write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
