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
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    @classmethod
    def of(
        cls, name: str, seconds: float, latencies: list[float], statuses: Counter[str], forms: int
    ) -> Measurement:
        return cls._from_ms(name, seconds, [x * 1000 for x in latencies], statuses, forms)

    @classmethod
    def merged(cls, parts: list[Measurement]) -> Measurement:
        """The rounds of one subject as one measurement: totals over the summed time."""
        statuses: Counter[str] = Counter()
        for p in parts:
            statuses.update(p.statuses)
        return cls._from_ms(
            parts[0].name,
            sum(p.seconds for p in parts),
            [x for p in parts for x in p.latencies_ms],
            statuses,
            sum(p.forms for p in parts),
        )

    @classmethod
    def _from_ms(
        cls, name: str, seconds: float, ms: list[float], statuses: Counter[str], forms: int
    ) -> Measurement:
        return cls(
            name,
            seconds,
            requests=len(ms),
            forms=forms,
            statuses=dict(statuses),
            p50_ms=percentile(ms, 50),
            p95_ms=percentile(ms, 95),
            p99_ms=percentile(ms, 99),
            latencies_ms=ms,
        )

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def forms_per_s(self) -> float:
        return self.forms / self.seconds

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        del values["latencies_ms"]
        return {
            **values,
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
    rate: float | None = None,
) -> Measurement:
    """Closed loop: each of `concurrency` clients posts the next form as soon as it is answered.

    With `rate` (forms per second in all), each client instead sends on a fixed schedule, its
    share of the rate; latency counts from the scheduled time, so a server that falls behind
    is charged for the wait it causes (no coordinated omission)."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    created = 0
    begun = time.monotonic()
    start = begun + warmup
    end = start + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal created
        headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
        rng = random.Random(i)
        sent = 0
        while True:
            body = fresh(pool[rng.randrange(len(pool))])
            if rate is None:
                t0 = time.monotonic()
            else:
                t0 = begun + (sent * concurrency + i) / rate
                sent += 1
                await asyncio.sleep(max(0.0, t0 - time.monotonic()))
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
    return Measurement.of(name, duration, latencies, statuses, created)


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

    # A batch takes long enough that a new connection per batch costs nothing, and it lets the
    # kernel hand the batches to both workers: kept alive, both clients' connections were
    # usually accepted by one worker (which accepts all that are pending when it wakes), and
    # the other sat idle.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await asyncio.gather(*(client(i, http) for i in range(concurrency)))
    return Measurement.of("app batch", duration, latencies, statuses, created)


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
    return Measurement.of("COPY baseline", duration, latencies, Counter(copied=copied), copied)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """All the measurements, interleaved in rounds; returns them with their ratios.

    The machine is shared and its speed drifts by a factor of two within minutes, so each
    subject is measured in `--rounds` slices, in turn with its baseline (minimal, app, app
    batch, COPY, then again), and the slices of a subject are added up: a slow minute then
    falls on a subject and its baseline alike. Each slice starts on an empty table."""
    url = prepare_database(DATABASE)
    fixture = asyncio.run(make_fixture(url, agencies=10, clients=args.concurrency))
    rng = random.Random(2017)
    pool = [make_form(fixture, rng) for _ in range(2000)]
    batches = [[make_form(fixture, rng) for _ in range(args.batch_size)] for _ in range(8)]
    submit = f"/api/v1/campaigns/{fixture.campaign_id}/submissions"
    slice_s = args.duration / args.rounds
    parts: dict[str, list[Measurement]] = {k: [] for k in ("minimal", "single", "batch", "copy")}
    per_round: list[dict[str, float]] = []

    def measure_server(name: str, target: str, env: dict[str, str], factory: bool) -> Server:
        return Server(
            target, env, workers=args.workers, factory=factory, log=OUT_DIR / f"{name}.log"
        )

    minimal_env = server_env(
        url, MINIMAL_DSN=dsn(url), MINIMAL_CAMPAIGN_ID=str(fixture.campaign_id)
    )
    with (
        measure_server("minimal", "bench.minimal_app:app", minimal_env, False) as minimal,
        measure_server("app", "app.main:create_app", server_env(url), True) as app,
    ):
        minimal.start()
        app.start()
        for n in range(args.rounds):
            kw = {"warmup": args.warmup if n == 0 else 1.0, "duration": slice_s}
            singles = {"concurrency": args.concurrency, **kw}
            batch_kw = {"concurrency": args.batch_concurrency, **kw}
            asyncio.run(truncate_submissions(url))
            parts["minimal"].append(
                asyncio.run(
                    drive_singles(
                        "minimal endpoint",
                        minimal.base + "/",
                        fixture.client_tokens,
                        pool,
                        **singles,
                    )
                )
            )
            asyncio.run(truncate_submissions(url))
            parts["single"].append(
                asyncio.run(
                    drive_singles(
                        "app single", app.base + submit, fixture.client_tokens, pool, **singles
                    )
                )
            )
            asyncio.run(truncate_submissions(url))
            parts["batch"].append(
                asyncio.run(
                    drive_batches(
                        app.base + submit + "/batch",
                        fixture.client_tokens[0],
                        batches,
                        **batch_kw,
                    )
                )
            )
            asyncio.run(truncate_submissions(url))
            parts["copy"].append(asyncio.run(drive_copy(url, fixture, batches, **batch_kw)))
            last = {k: v[-1].forms_per_s for k, v in parts.items()}
            per_round.append(
                {
                    **last,
                    "single_ratio": last["single"] / last["minimal"],
                    "batch_ratio": last["batch"] / last["copy"],
                }
            )
            print(
                f"  round {n + 1}: minimal {last['minimal']:.0f}, app {last['single']:.0f} "
                f"({per_round[-1]['single_ratio']:.1%}); batch {last['batch']:.0f}, COPY "
                f"{last['copy']:.0f} ({per_round[-1]['batch_ratio']:.1%}) forms/s",
                flush=True,
            )
        results = {k: Measurement.merged(v) for k, v in parts.items()}
        for m in results.values():
            print_line(m)

        # Latency below saturation: the same 32 clients on a schedule, at half the rate the
        # app reached above, against the app and the minimal endpoint alike.
        rate = results["single"].forms_per_s * args.paced_share
        for key, base, path in (("minimal_paced", minimal.base, "/"), ("paced", app.base, submit)):
            asyncio.run(truncate_submissions(url))
            results[key] = asyncio.run(
                drive_singles(
                    f"{key.split('_')[0]} at {rate:.0f}/s",
                    base + path,
                    fixture.client_tokens,
                    pool,
                    concurrency=args.concurrency,
                    warmup=args.warmup,
                    duration=args.duration,
                    rate=rate,
                )
            )
            print_line(results[key])
    asyncio.run(truncate_submissions(url))

    single_ratio = results["single"].forms_per_s / results["minimal"].forms_per_s
    batch_ratio = results["batch"].forms_per_s / results["copy"].forms_per_s
    summary = {
        "measurements": {k: v.as_dict() for k, v in results.items()},
        "rounds": per_round,
        "paced_rate": rate,
        "single_ratio": single_ratio,
        "batch_ratio": batch_ratio,
        "single_target_met": single_ratio >= 0.6 and results["single"].p99_ms < 100,
        "batch_target_met": batch_ratio >= 0.35,
    }
    print(
        f"single forms: {single_ratio:.1%} of the minimal endpoint, "
        f"p99 {results['single'].p99_ms:.1f} ms (target >= 60 % and < 100 ms: "
        f"{'met' if summary['single_target_met'] else 'NOT met'}); "
        f"p99 {results['paced'].p99_ms:.1f} ms at {rate:.0f} forms/s offered"
    )
    print(
        f"batches: {batch_ratio:.1%} of COPY (target >= 35 %: "
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
    parser.add_argument(
        "--rounds", type=int, default=3, help="slices each subject's time is cut into"
    )
    parser.add_argument(
        "--paced-share",
        type=float,
        default=0.5,
        help="offered rate of the paced run, as a share of the app's closed-loop throughput",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    summary = run(parser.parse_args())
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "ingest.json").write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
