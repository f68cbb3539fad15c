"""Load N synthetic, valid forms straight into PostgreSQL with COPY.

An open campaign on a built-in questionnaire (`--questionnaire`: sipas-2017, the default, or
dossier-rating-2018, whose nine indicators score 0-2) over `--agencies` made-up agencies, or with
`--province` the demo province's own measured departments and districts (one stratum each), and
`--forms` submissions drawn as the demo campaigns draw theirs: each agency has its own level of
satisfaction per element, answers are skewed towards satisfied and about 4 % of criteria are
"no answer". State `valid`, written with asyncpg `copy_records_to_table` in chunks. The database
is on the embedded server unless `--url` names another; it is created and migrated if needed
(`--fresh` drops it first).

    .venv/bin/python -m bench.generate --forms 100000 --database sipas_bench
    .venv/bin/python -m bench.generate --forms 100000 --province --questionnaire dossier-rating-2018
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from app.config import async_url
from app.db import ensure_database
from app.schema import upgrade
from bench.common import Fixture, dsn, make_fixture, make_form, prepare_database

COLUMNS = [
    "campaign_id",
    "client_submission_id",
    "request_hash",
    "agency_id",
    "stratum_id",
    "respondent_type",
    "channel",
    "state",
    "is_synthetic",
    "answers",
    "received_at",
]
CHANNELS = ("post_office", "web", "kiosk")


def records(fixture: Fixture, rng: random.Random, n: int) -> list[tuple[Any, ...]]:
    by_code = {a.code: a.id for a in fixture.agencies}
    start = datetime(2020, 11, 1, 8, tzinfo=UTC)
    rows = []
    for _ in range(n):
        form = make_form(fixture, rng)
        agency_id = by_code[form["agency_code"]]
        answers = json.dumps(form["answers"], ensure_ascii=False)
        rows.append(
            (
                fixture.campaign_id,
                uuid.UUID(form["submission_id"]),
                hashlib.sha256(answers.encode()).hexdigest(),
                agency_id,
                fixture.strata[agency_id],
                form["respondent_type"],
                rng.choice(CHANNELS),
                "valid",
                True,
                answers,
                start + timedelta(minutes=rng.randint(0, 60 * 24 * 40)),
            )
        )
    return rows


async def load(url: str, fixture: Fixture, forms: int, chunk: int, seed: int) -> int:
    rng = random.Random(seed)
    conn = await asyncpg.connect(dsn(url))
    try:
        done = 0
        while done < forms:
            rows = records(fixture, rng, min(chunk, forms - done))
            async with conn.transaction():
                await conn.copy_records_to_table("submissions", records=rows, columns=COLUMNS)
            done += len(rows)
        await conn.execute("ANALYZE submissions")
        return done
    finally:
        await conn.close()


async def fold(url: str, campaign_id: uuid.UUID, batch: int | None) -> float:
    """Fold the campaign's loaded forms into its roll-ups (what `sipas worker` does after
    commit), `batch` forms per transaction (None: all at once), until none is left; the seconds
    it took. A fold stops below the oldest transaction running anywhere on the server (another
    benchmark's load, a test): it is then tried again. Returns at once for a campaign without
    roll-ups."""
    conn = await asyncpg.connect(dsn(url))
    try:
        t0 = time.perf_counter()
        while await conn.fetchval("SELECT index_cells_tail($1)", campaign_id):
            if not await conn.fetchval("SELECT index_cells_fold($1, $2)", campaign_id, batch):
                await asyncio.sleep(0.05)  # held back by a transaction still running
        return time.perf_counter() - t0
    finally:
        await conn.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    if args.url:
        url = async_url(args.url)
        asyncio.run(ensure_database(url))
        upgrade(url)
    else:
        url = prepare_database(args.database, fresh=args.fresh)
    fixture = asyncio.run(
        make_fixture(
            url,
            agencies=args.agencies,
            clients=1,
            questionnaire=args.questionnaire,
            province=args.province,
        )
    )
    t0 = time.monotonic()
    n = asyncio.run(load(url, fixture, args.forms, args.chunk, args.seed))
    copy_s = time.monotonic() - t0
    result = {
        "database": args.database if not args.url else "(--url)",
        "campaign_id": str(fixture.campaign_id),
        "forms": n,
        "agencies": len(fixture.agencies),
        "questionnaire": args.questionnaire,
        "province": args.province,
        "seconds": time.monotonic() - started,
        "forms_per_s": n / copy_s,
    }
    print(
        f"loaded {n} {args.questionnaire} forms into campaign {fixture.campaign_id} "
        f"({len(fixture.agencies)} agencies{' of the demo province' if args.province else ''}) in "
        f"{copy_s:.1f} s ({n / copy_s:.0f} forms/s, drawing included); "
        f"{result['seconds']:.1f} s in all"
    )
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--forms", type=int, default=100_000)
    parser.add_argument("--database", default="sipas_bench")
    parser.add_argument("--url", help="a PostgreSQL URL instead of the embedded server")
    parser.add_argument("--agencies", type=int, default=40, help="made-up agencies")
    parser.add_argument(
        "--province", action="store_true", help="the demo province's agencies instead"
    )
    parser.add_argument(
        "--questionnaire", default="sipas-2017", choices=["sipas-2017", "dossier-rating-2018"]
    )
    parser.add_argument("--chunk", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--fresh", action="store_true", help="drop the database first")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
