"""Overload: far more concurrent clients than database connections.

The app runs with a small pool (DB_POOL_SIZE=5, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT=1 per worker)
and `--concurrency` clients (256 by default) post single forms for `--duration` seconds. Every
answer must be quick and be 2xx, 429 or 503 with Retry-After: never a pile of timeouts or 500s.
Prints the status histogram and latency percentiles per status.

    .venv/bin/python -m bench.overload [--concurrency 256] [--duration 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

import httpx

from bench.common import (
    OUT_DIR,
    Server,
    make_fixture,
    make_form,
    percentile,
    prepare_database,
    server_env,
)

DATABASE = "sipas_bench_overload"


async def drive(
    url: str, tokens: list[str], pool: list[dict[str, Any]], args: argparse.Namespace
) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    latency: defaultdict[str, list[float]] = defaultdict(list)
    missing_retry_after = 0
    end = time.monotonic() + args.overload_duration
    limits = httpx.Limits(max_connections=args.overload_concurrency, max_keepalive_connections=0)

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal missing_retry_after
        rng = random.Random(i)
        headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
        while time.monotonic() < end:
            key = uuid.UUID(int=rng.getrandbits(128), version=4)
            body = {**pool[rng.randrange(len(pool))], "submission_id": str(key)}
            t0 = time.monotonic()
            try:
                r = await http.post(url, json=body, headers=headers)
                status = str(r.status_code)
                if r.status_code in (429, 503) and "retry-after" not in r.headers:
                    missing_retry_after += 1
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            latency[status].append((time.monotonic() - t0) * 1000)
            statuses[status] += 1
            if status in ("429", "503"):
                await asyncio.sleep(0.05)  # a real client would wait Retry-After; keep pressure

    async with httpx.AsyncClient(timeout=args.timeout, limits=limits) as http:
        await asyncio.gather(*(client(i, http) for i in range(args.overload_concurrency)))
    total = sum(statuses.values())
    return {
        "concurrency": args.overload_concurrency,
        "duration_s": args.overload_duration,
        "requests": total,
        "statuses": dict(statuses.most_common()),
        "missing_retry_after": missing_retry_after,
        "latency_ms": {
            s: {
                "p50": percentile(v, 50),
                "p95": percentile(v, 95),
                "p99": percentile(v, 99),
                "max": max(v),
            }
            for s, v in latency.items()
        },
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    url = prepare_database(DATABASE)
    fixture = asyncio.run(make_fixture(url, agencies=10, clients=32))
    rng = random.Random(7)
    pool = [make_form(fixture, rng) for _ in range(1000)]
    env = server_env(
        url,
        DB_POOL_SIZE=str(args.pool_size),
        DB_MAX_OVERFLOW="0",
        DB_POOL_TIMEOUT=str(args.pool_timeout),
    )
    with Server(
        "app.main:create_app", env, workers=args.workers, log=OUT_DIR / "overload.log"
    ) as server:
        server.start()
        result = asyncio.run(
            drive(
                f"{server.base}/api/v1/campaigns/{fixture.campaign_id}/submissions",
                fixture.client_tokens,
                pool,
                args,
            )
        )
    bad = {
        s: n
        for s, n in result["statuses"].items()
        if not (s.startswith("2") or s in ("429", "503"))
    }
    result["pool"] = {
        "size": args.pool_size,
        "max_overflow": 0,
        "timeout_s": args.pool_timeout,
        "workers": args.workers,
    }
    result["unacceptable"] = bad
    result["ok"] = not bad and result["missing_retry_after"] == 0
    print(
        f"  overload {args.overload_concurrency} clients, pool {args.pool_size}x{args.workers}: "
        f"{result['requests']} requests, statuses {result['statuses']}, "
        f"missing Retry-After {result['missing_retry_after']}"
    )
    for status, lat in result["latency_ms"].items():
        print(
            f"    {status:<14} p50 {lat['p50']:7.1f}  p95 {lat['p95']:7.1f}  "
            f"p99 {lat['p99']:7.1f}  max {lat['max']:7.1f} ms"
        )
    print(f"  overload: {'OK' if result['ok'] else 'UNACCEPTABLE ANSWERS: ' + str(bad)}")
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overload-concurrency", dest="overload_concurrency", type=int, default=256
    )
    parser.add_argument("--overload-duration", dest="overload_duration", type=float, default=15)
    parser.add_argument("--pool-size", type=int, default=5)
    parser.add_argument("--pool-timeout", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=10, help="client timeout, seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--workers", type=int, default=2)
    result = run(parser.parse_args())
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "overload.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
