"""Review at scale: reviewing `--forms` received forms by a filter in one call, against
reviewing them one call per form.

Loads `--forms` synthetic sipas-2017 forms (COPY, `bench.generate`), sets them `received`, and
on a fresh uvicorn process (1 worker) times:
- bulk: `POST /campaigns/{id}/submissions/review` with `{"filter": {}, "state": "valid"}`: every
  received form in one call and one transaction (one audit and one event per form);
- single: `POST /submissions/{id}/review` for `--singles` forms, sequentially from one client
  (a reviewer's script), and the same spread over `--concurrency` clients; the per-form time is
  multiplied out to `--forms`.
Between the two the forms are set back to `received` and the table vacuumed. Replaces its own
section of bench/RESULTS.md.

    .venv/bin/python -m bench.review [--forms 10000] [--singles 500] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import generate
from bench.common import (
    OUT_DIR,
    Server,
    dsn,
    machine,
    make_fixture,
    prepare_database,
    replace_section,
    server_env,
)

DATABASE = "sipas_bench_review"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Review at scale"


async def _sql(url: str, statement: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn(url))
    try:
        return await conn.fetch(statement, *args)
    finally:
        await conn.close()


def _reset(url: str, campaign: str) -> None:
    asyncio.run(
        _sql(
            url,
            "UPDATE submissions SET state = 'received', review_reason = NULL"
            " WHERE campaign_id = $1::uuid",
            campaign,
        )
    )
    asyncio.run(_sql(url, "VACUUM ANALYZE submissions"))


async def _singles(base: str, token: str, ids: list[str], concurrency: int) -> float:
    queue = list(ids)
    headers = {"Authorization": f"Bearer {token}"}

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            form_id = queue.pop()
            response = await client.post(
                f"/api/v1/submissions/{form_id}/review", json={"state": "valid"}
            )
            response.raise_for_status()

    t0 = time.monotonic()
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=600) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return time.monotonic() - t0


def run(args: argparse.Namespace) -> dict[str, Any]:
    url = prepare_database(DATABASE)
    fixture = asyncio.run(make_fixture(url))
    campaign = str(fixture.campaign_id)
    asyncio.run(generate.load(url, fixture, args.forms, 5000, 17))
    _reset(url, campaign)
    server = Server(
        "app.main:create_app", server_env(url), workers=1, log=OUT_DIR / "review-app.log"
    )
    server.start()
    try:
        headers = {"Authorization": f"Bearer {fixture.admin_token}"}
        with httpx.Client(base_url=server.base, headers=headers, timeout=3600) as client:
            t0 = time.monotonic()
            response = client.post(
                f"/api/v1/campaigns/{campaign}/submissions/review",
                json={"filter": {}, "state": "valid"},
            )
            bulk = time.monotonic() - t0
            response.raise_for_status()
            reviewed = response.json()["reviewed"]
        counts = asyncio.run(
            _sql(
                url,
                "SELECT (SELECT count(*) FROM audit_events WHERE action = 'submission.review'),"
                " (SELECT count(*) FROM events WHERE type = 'submission.reviewed')",
            )
        )[0]
        _reset(url, campaign)
        rows = asyncio.run(
            _sql(
                url,
                "SELECT id::text FROM submissions WHERE campaign_id = $1::uuid ORDER BY id"
                " LIMIT $2",
                campaign,
                args.singles * 2,
            )
        )
        ids = [r[0] for r in rows]
        sequential = asyncio.run(_singles(server.base, fixture.admin_token, ids[: args.singles], 1))
        concurrent = asyncio.run(
            _singles(server.base, fixture.admin_token, ids[args.singles :], args.concurrency)
        )
    finally:
        server.stop()
    return {
        "forms": args.forms,
        "reviewed": reviewed,
        "audit_events": counts[0],
        "reviewed_events": counts[1],
        "bulk_s": bulk,
        "singles": args.singles,
        "sequential_s": sequential,
        "concurrent_s": concurrent,
        "concurrency": args.concurrency,
    }


def render(r: dict[str, Any], command: str) -> str:
    box = machine()
    n = r["forms"]
    seq_each = r["sequential_s"] / r["singles"]
    con_each = r["concurrent_s"] / r["singles"]
    seq_all, con_all = seq_each * n, con_each * n
    return "\n".join(
        [
            SECTION,
            "",
            f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {box['nproc']} cores, {box['memory']}, {box['cpu']}; "
            f"Python {box['python']}",
            f"- command: `{command}`; uvicorn with 1 worker on 127.0.0.1, the embedded "
            "PostgreSQL on the same machine",
            "",
            "| | forms | seconds | forms/s | bulk is faster by |",
            "|---|---:|---:|---:|---:|",
            f"| bulk review by filter, one call | {r['reviewed']} | {r['bulk_s']:.2f} | "
            f"{r['reviewed'] / r['bulk_s']:.0f} | (baseline) |",
            f"| single reviews, 1 client ({r['singles']} timed, × {n // r['singles']}) | {n} | "
            f"{seq_all:.1f} | {1 / seq_each:.0f} | **{seq_all / r['bulk_s']:.0f}×** |",
            f"| single reviews, {r['concurrency']} clients ({r['singles']} timed) | {n} | "
            f"{con_all:.1f} | {1 / con_each:.0f} | **{con_all / r['bulk_s']:.0f}×** |",
            "",
            f"The bulk call wrote {r['audit_events']} audit events (`submission.review`) and "
            f"{r['reviewed_events']} `submission.reviewed` events, one per form, in the same "
            "transaction as the state change: three statements whatever the number of forms. "
            "Single reviews are timed on a share of the forms and multiplied out; each is a "
            "request that locks, checks, updates, audits and emits one form.",
            "",
        ]
    )


def write_section(text: str) -> None:
    replace_section(RESULTS, SECTION, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--forms", type=int, default=10_000)
    parser.add_argument("--singles", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    result = run(args)
    (OUT_DIR / "review.json").write_text(json.dumps(result, indent=2))
    command = " ".join(["python -m bench.review", *map(shlex.quote, sys.argv[1:])])
    write_section(render(result, command))
    print(f"wrote the review section of {RESULTS}")


if __name__ == "__main__":
    main()
