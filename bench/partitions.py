"""One campaign's cold index among many campaigns, against the same campaign alone (issue 15).

Two databases on the embedded server: `sipas_bench_part_alone` holds one campaign of `--forms`
forms; `sipas_bench_part_many` holds `--campaigns` campaigns of `--forms` forms each (every one
with its own agencies, drawn by bench.generate). The measured campaign is the first of each, with
its roll-ups installed before its forms are loaded, loaded with the same seed in both. For each
database, `--rounds` times: a fresh app process (nothing cached in it), then
`GET /campaigns/{id}/index?group_by=item:E1.C1` (a criterion's answers: no roll-up holds a
breakdown by a criterion, so it scans the campaign's forms) and `group_by=agency` (the
roll-ups), each cold. The figure is the ratio of the
median cold times, many ÷ alone; partitioning by campaign should hold it near 1 (target ≤ 1.2).

    .venv/bin/python -m bench.partitions                                  # 10 × 50,000
    .venv/bin/python -m bench.partitions --campaigns 10 --forms 500000    # the issue's size (long)

Writes its own section of bench/RESULTS.md per size (between its markers), leaving the others.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.config import Settings
from app.db import create_database, session_scope
from app.services.index import rollups
from bench import generate
from bench.common import OUT_DIR, Fixture, Server, dsn, machine, make_fixture, prepare_database
from bench.common import server_env as _server_env

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
# Forms per COPY statement of the load: the roll-up triggers' work per cell touched is shared by
# the statement's forms, so large statements load the measured campaign several times faster.
LOAD_CHUNK = 50_000


def _markers(campaigns: int, forms: int) -> tuple[str, str]:
    """One section per size, so that a longer run sits beside the default one."""
    tag = f"bench.partitions {campaigns}x{forms}"
    return f"<!-- {tag}: begin -->", f"<!-- {tag}: end -->"


AGENCIES = 40
# A breakdown that scans the forms (no roll-up holds one by a criterion), and one from roll-ups.
SCAN = "item:E1.C1"
VIEWS = (SCAN, "agency")


async def _install(url: str, campaign_id: uuid.UUID) -> None:
    settings = Settings(_env_file=None, database_url=url, environment="test")
    db = create_database(url, settings)
    try:
        async with session_scope(db) as session:
            await rollups.install(session, campaign_id)
    finally:
        await db.dispose()


async def _analyze(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn(url))
    try:
        await conn.execute("VACUUM (ANALYZE) submissions")
        await conn.execute("VACUUM (ANALYZE) index_rollups")
        forms = await conn.fetchval("SELECT count(*) FROM submissions")
        parts = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'submissions'::regclass"
        )
        return {"forms": int(forms), "partitions": int(parts)}
    finally:
        await conn.close()


def _database(name: str, campaigns: int, forms: int, seed: int) -> tuple[str, Fixture]:
    url = prepare_database(name, fresh=True)
    target: Fixture | None = None
    for i in range(campaigns):
        fixture = asyncio.run(make_fixture(url, agencies=AGENCIES, clients=1))
        if target is None:
            target = fixture
            asyncio.run(_install(url, fixture.campaign_id))
        t0 = time.monotonic()
        # The measured campaign gets the same seed in both databases: the same forms.
        asyncio.run(generate.load(url, fixture, forms, LOAD_CHUNK, seed + i))
        # the roll-ups' fold after commit (only the measured campaign has them)
        asyncio.run(generate.fold(url, fixture.campaign_id, rollups.FOLD_BATCH))
        print(f"  {name}: campaign {i + 1}/{campaigns} loaded in {time.monotonic() - t0:.1f} s")
    if target is None:
        raise SystemExit("--campaigns must be at least 1")
    return url, target


def _cold(url: str, fixture: Fixture, log: str) -> dict[str, float]:
    """A fresh app process, then each view once: its cold time in seconds."""
    server = Server(
        "app.main:create_app", _server_env(url), workers=1, log=OUT_DIR / f"partitions-{log}.log"
    )
    server.start()
    try:
        path = f"/api/v1/campaigns/{fixture.campaign_id}/index"
        headers = {"Authorization": f"Bearer {fixture.admin_token}"}
        out = {}
        with httpx.Client(base_url=server.base, headers=headers, timeout=3600) as client:
            for view in VIEWS:
                t0 = time.perf_counter()
                response = client.get(path, params={"group_by": view})
                out[view] = time.perf_counter() - t0
                if response.status_code != 200:
                    raise RuntimeError(f"{view}: {response.status_code} {response.text[:300]}")
        return out
    finally:
        server.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    alone_url, alone = _database("sipas_bench_part_alone", 1, args.forms, args.seed)
    many_url, many = _database("sipas_bench_part_many", args.campaigns, args.forms, args.seed)
    sizes = {"alone": asyncio.run(_analyze(alone_url)), "many": asyncio.run(_analyze(many_url))}
    times: dict[str, dict[str, list[float]]] = {
        "alone": {v: [] for v in VIEWS},
        "many": {v: [] for v in VIEWS},
    }
    for r in range(args.rounds):  # alternated, so that drift of the machine hits both alike
        for label, url, fixture in (("alone", alone_url, alone), ("many", many_url, many)):
            for view, seconds in _cold(url, fixture, label).items():
                times[label][view].append(seconds)
        print(
            f"  round {r + 1}/{args.rounds}: "
            + ", ".join(
                f"{label} {view} {times[label][view][-1]:.2f} s"
                for label in times
                for view in VIEWS
            )
        )
    medians = {
        label: {v: statistics.median(t) for v, t in views.items()} for label, views in times.items()
    }
    ratios = {v: medians["many"][v] / medians["alone"][v] for v in VIEWS}
    return {
        "campaigns": args.campaigns,
        "forms": args.forms,
        "rounds": args.rounds,
        "sizes": sizes,
        "times": times,
        "medians": medians,
        "ratios": ratios,
        "seconds": time.monotonic() - started,
    }


def render(result: dict[str, Any], command: str) -> list[str]:
    box = machine()
    n, m = result["campaigns"], result["forms"]
    met = {True: "**met**", False: "**not met**"}
    begin, end = _markers(n, m)
    lines = [
        begin,
        f"## Partitions: one campaign's cold index among {n} campaigns of {m:,} forms "
        "(`bench.partitions`)",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {box['nproc']} cores, {box['memory']}, {box['cpu']}; Python {box['python']}",
        f"- command: `{command}`",
        f"- databases: alone = 1 campaign of {m:,} forms ({result['sizes']['alone']['forms']:,} "
        f"forms, {result['sizes']['alone']['partitions']} partition); many = {n} campaigns of "
        f"{m:,} ({result['sizes']['many']['forms']:,} forms, "
        f"{result['sizes']['many']['partitions']} partitions); the measured campaign is the "
        "same in both (same agencies count, same seed), with roll-ups",
        f"- cold = the first request of a fresh app process; median of {result['rounds']} "
        "rounds, alternating the two databases",
        "",
        "| view | alone, cold | many, cold | many ÷ alone | target ≤ 1.2 |",
        "|---|---|---|---|---|",
    ]
    for view in VIEWS:
        alone = result["medians"]["alone"][view]
        many = result["medians"]["many"][view]
        ratio = result["ratios"][view]
        what = "forms scan" if view == SCAN else "roll-ups"
        lines.append(
            f"| `group_by={view}` ({what}) | {alone:.3f} s | {many:.3f} s | {ratio:.2f} | "
            f"{met[ratio <= 1.2]} |"
        )
    lines += [
        "",
        "Longer variant (the issue's size): `.venv/bin/python -m bench.partitions --campaigns 10 "
        "--forms 500000`.",
        end,
    ]
    return lines


def splice(lines: list[str]) -> None:
    """Replace this benchmark's section of RESULTS.md (or append it), keeping the rest."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = "\n".join(lines)
    begin, end = lines[0], lines[-1]
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--campaigns", type=int, default=10, help="campaigns in the big database")
    parser.add_argument("--forms", type=int, default=50_000, help="forms per campaign")
    parser.add_argument("--rounds", type=int, default=3, help="cold reads per database")
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    result = run(args)
    command = "python -m bench.partitions " + shlex.join(sys.argv[1:])
    lines = render(result, command.strip())
    print("\n".join(lines))
    if not args.no_write:
        splice(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
