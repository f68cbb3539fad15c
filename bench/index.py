"""The live campaign index at growing sizes, against one hand-written SQL aggregate.

    .venv/bin/python -m bench.index [--sizes 100000,1000000] [--repeats 10] [--budget 120]

One database of its own (`sipas_bench_index`, recreated), one open campaign over 40 agencies on
sipas-2017 with its index roll-ups installed (as opening a campaign does), forms added
incrementally with `bench.generate` (COPY, then the fold of the loaded forms into the roll-ups,
as `sipas worker` does after commit; the load time includes both) up to each size, then
`VACUUM (ANALYZE) submissions`. At each size:

- baseline: one SQL statement over the same raw answers the index needs, the count per
  (agency, item, answer code) of the valid forms with `jsonb_each`, run with asyncpg;
- app: `GET /api/v1/campaigns/{id}/index?group_by=agency` (the total and every agency's cell)
  over HTTP against uvicorn (1 worker, a fresh process per size) with an admin token: cold,
  warm (unchanged data), and fresh (one new valid form written before each read, so nothing
  cached can answer); and `group_by=respondent_type`, a breakdown the roll-ups do not hold
  (read from the forms), cold and warm;
- report: `GET /api/v1/reports/{id}` of a snapshot published once, early (see `--report-forms`).

Cold is the first request on a fresh server process (app) or a fresh connection (baseline); the
OS page cache cannot be evicted here, and the table was just written, so cold means "no warm
pool, no plan cache", not "from disk". Warm is p50/p95 of up to `--repeats` further requests,
stopped early once `--budget` seconds are spent on that measurement (at least `--min-repeats`):
at a few minutes per request the number actually made is reported next to each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shlex
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.config import Settings
from app.db import create_database, session_scope
from app.models.campaign import CampaignState
from app.services import campaigns
from app.services.index import rollups
from bench import generate
from bench.common import (
    OUT_DIR,
    Fixture,
    Server,
    dsn,
    machine,
    make_fixture,
    percentile,
    prepare_database,
    replace_section,
    server_env,
)

DATABASE = "sipas_bench_index"
AGENCIES = 40
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Live index"

# The raw counts the index starts from, per agency: what pass 1 of the app counts, by hand.
BASELINE_SQL = """
SELECT s.agency_id, a.key, a.value #>> '{}' AS code, count(*)
FROM submissions s CROSS JOIN LATERAL jsonb_each(s.answers) a
WHERE s.campaign_id = $1 AND s.state = 'valid'
GROUP BY 1, 2, 3
"""


@dataclass(frozen=True)
class View:
    """One breakdown (and filters) of the index, and its hand-written SQL over the raw answers:
    the count per (cell, item, answer code) of the valid forms, with `jsonb_each`."""

    name: str
    params: dict[str, str]
    cell: str  # SQL for the cell key
    where: str = ""  # extra conditions on s (and ag for the level)

    def sql(self) -> str:
        join = "JOIN agencies ag ON ag.id = s.agency_id" if "ag." in self.cell + self.where else ""
        return f"""
SELECT {self.cell} AS cell, a.key, a.value #>> '{{}}' AS code, count(*)
FROM submissions s {join} CROSS JOIN LATERAL jsonb_each(s.answers) a
WHERE s.campaign_id = $1 AND s.state = 'valid' {self.where}
GROUP BY 1, 2, 3
"""


VIEWS = (
    View("agency", {"group_by": "agency"}, "s.agency_id"),
    View("level", {"group_by": "level"}, "ag.level"),
    View("sector", {"group_by": "sector"}, "s.sector_id"),
    View("procedure", {"group_by": "procedure"}, "s.procedure_id"),
    View("channel", {"group_by": "channel"}, "s.channel"),
    View("respondent_type", {"group_by": "respondent_type"}, "s.respondent_type"),
    View("item:R.GENDER", {"group_by": "item:R.GENDER"}, "s.answers ->> 'R.GENDER'"),
    View("item:R.AGE", {"group_by": "item:R.AGE"}, "s.answers ->> 'R.AGE'"),
    View(
        "agency, channel=web, respondent_type=individual",
        {"group_by": "agency", "channel": "web", "respondent_type": "individual"},
        "s.agency_id",
        "AND s.channel = 'web' AND s.respondent_type = 'individual'",
    ),
    View(
        "item:R.AGE, channel=kiosk",
        {"group_by": "item:R.AGE", "channel": "kiosk"},
        "s.answers ->> 'R.AGE'",
        "AND s.channel = 'kiosk'",
    ),
    View(
        "respondent_type, level=department",
        {"group_by": "respondent_type", "level": "department"},
        "s.respondent_type",
        "AND ag.level = 'department'",
    ),
)


@dataclass
class Timing:
    cold_s: float
    warm_s: list[float]

    def summary(self) -> dict[str, Any]:
        return {
            "cold_ms": self.cold_s * 1000,
            "warm_p50_ms": percentile(self.warm_s, 50) * 1000,
            "warm_p95_ms": percentile(self.warm_s, 95) * 1000,
            "warm_n": len(self.warm_s),
        }


def _repeat(once: Any, repeats: int, budget: float, minimum: int) -> list[float]:
    """Call `once()` (which returns seconds) up to `repeats` times within `budget` seconds."""
    out: list[float] = []
    started = time.monotonic()
    while len(out) < repeats:
        if len(out) >= minimum and time.monotonic() - started >= budget:
            break
        out.append(once())
    return out


async def _baseline(
    url: str, campaign_id: uuid.UUID, args: argparse.Namespace, sql: str = BASELINE_SQL
) -> Timing:
    conn = await asyncpg.connect(dsn(url))  # a fresh connection: no plan or catalogue cache
    try:

        async def once() -> float:
            t0 = time.perf_counter()
            rows = await conn.fetch(sql, campaign_id)
            if not rows:
                raise RuntimeError("the baseline counted nothing")
            return time.perf_counter() - t0

        cold = await once()
        warm: list[float] = []
        started = time.monotonic()
        while len(warm) < args.repeats:
            if len(warm) >= args.min_repeats and time.monotonic() - started >= args.budget:
                break
            warm.append(await once())
        return Timing(cold, warm)
    finally:
        await conn.close()


def _get(client: httpx.Client, path: str, **params: str) -> float:
    t0 = time.perf_counter()
    r = client.get(path, params=params)
    elapsed = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"GET {path} answered {r.status_code}: {r.text[:300]}")
    return elapsed


def _one_more_form(url: str, fixture: Fixture, seed: int) -> None:
    asyncio.run(generate.load(url, fixture, 1, 1, seed))


def _app(
    url: str, fixture: Fixture, report_id: uuid.UUID, args: argparse.Namespace, size: int
) -> dict[str, Any]:
    """A fresh uvicorn process: the report read, then the index, each cold then warm."""
    index_path = f"/api/v1/campaigns/{fixture.campaign_id}/index"
    report_path = f"/api/v1/reports/{report_id}"
    server = Server(
        "app.main:create_app", server_env(url), workers=1, log=OUT_DIR / "index-app.log"
    )
    server.start()
    server.sample_rss()
    try:
        headers = {"Authorization": f"Bearer {fixture.admin_token}"}
        with httpx.Client(base_url=server.base, headers=headers, timeout=3600) as client:
            report_cold = _get(client, report_path)
            index_cold = _get(client, index_path, group_by="agency")
            print(f"  {size}: app cold {index_cold:.2f} s", flush=True)
            index_warm = _repeat(
                lambda: _get(client, index_path, group_by="agency"),
                args.repeats,
                args.budget,
                args.min_repeats,
            )
            seeds = itertools.count(size * 10)

            def fresh_read() -> float:
                _one_more_form(url, fixture, next(seeds))
                return _get(client, index_path, group_by="agency")

            index_fresh = _repeat(fresh_read, args.repeats, args.budget, args.min_repeats)
            other_cold = _get(client, index_path, group_by="respondent_type")
            other_warm = _repeat(
                lambda: _get(client, index_path, group_by="respondent_type"),
                args.repeats,
                args.budget,
                args.min_repeats,
            )
            views: dict[str, dict[str, Any]] = {}
            for view in VIEWS:
                if view.name == "agency":
                    views[view.name] = Timing(index_cold, index_warm).summary()
                    continue
                cold = _get(client, index_path, **view.params)
                warm = _repeat(
                    lambda v=view: _get(client, index_path, **v.params),
                    args.repeats,
                    args.budget,
                    args.min_repeats,
                )
                views[view.name] = Timing(cold, warm).summary()
                print(f"  {size}: app {view.name} cold {cold * 1000:.0f} ms", flush=True)
            report_warm = _repeat(lambda: _get(client, report_path), args.repeats, 60, 1)
    finally:
        server.stop()
    return {
        "index": Timing(index_cold, index_warm).summary(),
        "fresh": Timing(index_fresh[0], index_fresh).summary(),
        "other": Timing(other_cold, other_warm).summary(),
        "report": Timing(report_cold, report_warm).summary(),
        "views": views,
        "peak_rss_mib": server.peak_rss / 2**20,
    }


async def _install(url: str, campaign_id: uuid.UUID, facets: tuple[str, ...] | None = None) -> None:
    settings = Settings(_env_file=None, database_url=url, environment="test")
    db = create_database(url, settings)
    try:
        async with session_scope(db) as session:
            await rollups.install(session, campaign_id, facets)
    finally:
        await db.dispose()


async def _vacuum(url: str) -> float:
    conn = await asyncpg.connect(dsn(url))
    try:
        t0 = time.monotonic()
        await conn.execute("VACUUM (ANALYZE) submissions")
        return time.monotonic() - t0
    finally:
        await conn.close()


async def _table_mb(url: str) -> float:
    conn = await asyncpg.connect(dsn(url))
    try:
        # a partitioned table holds no rows itself: its partitions do
        size = await conn.fetchval(
            "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('submissions')"
        )
        return float(size) / 2**20
    finally:
        await conn.close()


async def _publish(url: str, campaign_id: uuid.UUID) -> uuid.UUID:
    """Close the campaign and publish it as the system would; returns the report id."""
    settings = Settings(_env_file=None, database_url=url, environment="test")
    db = create_database(url, settings)
    try:
        async with session_scope(db) as session:
            await campaigns.transition(session, None, campaign_id, CampaignState.closed, "bench")
        async with session_scope(db) as session:
            report = await campaigns.publish(session, None, campaign_id, "bench")
            return report.id
    finally:
        await db.dispose()


WRITE_DATABASE = "sipas_bench_index_writes"
WRITE_SUBJECTS = (
    ("bare", "COPY into a campaign without roll-ups (baseline)"),
    ("all", "COPY into a campaign with roll-ups of every breakdown (the default)"),
    (
        "base",
        "COPY into a campaign with roll-ups of agency × sector × channel × respondent type only",
    ),
)
# The subjects whose forms are folded after the load.
FOLDED = ("all", "base")


def write_cost(args: argparse.Namespace) -> dict[str, Any]:
    """COPY of the same kind of forms, with and without roll-ups, in interleaved slices, then
    the fold of what was loaded.

    Three campaigns of the same 40-agency shape in one database: one without roll-ups, one with
    the default roll-ups, one with the base combination only (no procedure or respondent-fact
    facets). The records are drawn before the clock starts; each slice is `--write-forms` forms
    in COPY statements of 5000, one transaction each. Forms are written bare (migration 0013f):
    the roll-ups' work is the fold after commit, timed afterwards over every form loaded, in
    transactions of `--fold-batch` forms, as `sipas worker` runs it."""
    url = prepare_database(WRITE_DATABASE, fresh=True)
    fixtures = {
        name: asyncio.run(make_fixture(url, agencies=AGENCIES)) for name, _ in WRITE_SUBJECTS
    }
    asyncio.run(_install(url, fixtures["all"].campaign_id))
    asyncio.run(_install(url, fixtures["base"].campaign_id, ()))
    rng = random.Random(args.seed)
    seconds = {name: 0.0 for name, _ in WRITE_SUBJECTS}
    slices: dict[str, list[float]] = {name: [] for name, _ in WRITE_SUBJECTS}

    async def copy(rows: list[tuple[Any, ...]], chunk: int) -> float:
        conn = await asyncpg.connect(dsn(url))
        try:
            t0 = time.perf_counter()
            for start in range(0, len(rows), chunk):
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "submissions", records=rows[start : start + chunk], columns=generate.COLUMNS
                    )
            return time.perf_counter() - t0
        finally:
            await conn.close()

    for round_ in range(args.write_rounds):
        for name, _ in WRITE_SUBJECTS:
            rows = generate.records(fixtures[name], rng, args.write_forms)
            elapsed = asyncio.run(copy(rows, 5000))
            seconds[name] += elapsed
            slices[name].append(args.write_forms / elapsed)
            print(f"  writes round {round_ + 1} {name}: {slices[name][-1]:.0f} forms/s", flush=True)
    # single forms: one COPY statement of one form each, in turn
    single: dict[str, float] = dict.fromkeys(seconds, 0.0)

    async def one_by_one(rows: list[tuple[Any, ...]]) -> float:
        conn = await asyncpg.connect(dsn(url))
        try:
            t0 = time.perf_counter()
            for row in rows:
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "submissions", records=[row], columns=generate.COLUMNS
                    )
            return time.perf_counter() - t0
        finally:
            await conn.close()

    for _ in range(args.write_rounds):
        for name in seconds:
            rows = generate.records(fixtures[name], rng, args.write_singles)
            single[name] += asyncio.run(one_by_one(rows))
    singles = args.write_rounds * args.write_singles
    forms = args.write_rounds * (args.write_forms + args.write_singles)
    fold_s = {
        name: asyncio.run(generate.fold(url, fixtures[name].campaign_id, args.fold_batch))
        for name in FOLDED
    }
    for name in FOLDED:
        print(f"  writes: fold {name}: {forms / fold_s[name]:.0f} forms/s", flush=True)
    rate = {name: args.write_rounds * args.write_forms / seconds[name] for name in seconds}
    # load and fold one after the other: the rate at which forms end up in the cells
    through = {name: 1 / (1 / rate[name] + fold_s[name] / forms) for name in FOLDED}
    return {
        "forms_per_subject": forms,
        "slice_forms": args.write_forms,
        "rounds": args.write_rounds,
        "fold_batch": args.fold_batch,
        "forms_per_s": rate,
        "slices_forms_per_s": slices,
        "single_ms": {name: 1000 * single[name] / singles for name in seconds},
        "singles": singles,
        "fold_forms_per_s": {name: forms / fold_s[name] for name in FOLDED},
        "through_forms_per_s": through,
        "ratio_all": rate["all"] / rate["bare"],
        "ratio_base": rate["base"] / rate["bare"],
        "ratio_through_all": through["all"] / rate["bare"],
        "ratio_through_base": through["base"] / rate["bare"],
    }


def _load(url: str, fixture: Fixture, count: int, seed: int, chunk: int) -> float:
    """COPY `count` forms, then fold them into the roll-ups (the worker's job after commit):
    the seconds of both."""
    t0 = time.monotonic()
    asyncio.run(generate.load(url, fixture, count, chunk, seed))
    fold_s = asyncio.run(generate.fold(url, fixture.campaign_id, rollups.FOLD_BATCH))
    copy_s = time.monotonic() - t0 - fold_s
    print(f"  loaded {count} forms in {copy_s:.1f} s, folded in {fold_s:.1f} s")
    return time.monotonic() - t0


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = sorted({int(s) for s in str(args.sizes).split(",") if s.strip()})
    if not sizes or sizes[0] < args.report_forms:
        raise SystemExit(f"--sizes must all be at least --report-forms ({args.report_forms})")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    writes = write_cost(args)
    print(
        f"writes: roll-ups {writes['ratio_all']:.0%} of bare COPY "
        f"(base only {writes['ratio_base']:.0%})",
        flush=True,
    )
    url = prepare_database(DATABASE, fresh=True)
    fixture = asyncio.run(make_fixture(url, agencies=AGENCIES, clients=1))
    asyncio.run(_install(url, fixture.campaign_id))
    loaded = 0
    steps: list[dict[str, Any]] = []

    # The published snapshot: same shape (40 agencies, the whole tree) at any size, so one is
    # enough; publishing computes the index six times over the forms, too slow to repeat.
    t0 = time.monotonic()
    load_s = _load(url, fixture, args.report_forms, seed=args.seed, chunk=args.load_chunk)
    loaded = args.report_forms
    asyncio.run(_vacuum(url))
    report_id = asyncio.run(_publish(url, fixture.campaign_id))
    publish = {"forms": loaded, "seconds": time.monotonic() - t0 - load_s}
    print(f"published report {report_id} over {loaded} forms in {publish['seconds']:.1f} s")
    pending_load = load_s

    for i, size in enumerate(sizes):
        step_started = time.monotonic()
        load_s = pending_load + _load(
            url, fixture, size - loaded, seed=args.seed + 1 + i, chunk=args.load_chunk
        )
        pending_load = 0.0
        added = size - loaded
        loaded = size
        vacuum_s = asyncio.run(_vacuum(url))
        table_mb = asyncio.run(_table_mb(url))
        print(
            f"index {size}: loaded {added} more forms in {load_s:.1f} s, vacuum {vacuum_s:.1f} s, "
            f"table {table_mb:.0f} MiB",
            flush=True,
        )
        base = asyncio.run(_baseline(url, fixture.campaign_id, args)).summary()
        print(f"  {size}: baseline cold {base['cold_ms'] / 1000:.2f} s", flush=True)
        view_base: dict[str, dict[str, Any]] = {}
        for view in VIEWS:
            view_base[view.name] = (
                base
                if view.name == "agency"
                else asyncio.run(_baseline(url, fixture.campaign_id, args, view.sql())).summary()
            )
            print(
                f"  {size}: baseline {view.name} cold {view_base[view.name]['cold_ms']:.0f} ms",
                flush=True,
            )
        app = _app(url, fixture, report_id, args, size)
        step = {
            "forms": size,
            "added": added,
            "load_s": load_s,
            "vacuum_s": vacuum_s,
            "table_mib": table_mb,
            "baseline": base,
            "app": app["index"],
            "fresh": app["fresh"],
            "other": app["other"],
            "report": app["report"],
            "peak_rss_mib": app["peak_rss_mib"],
            "views": {
                v.name: {
                    "app": app["views"][v.name],
                    "baseline": view_base[v.name],
                    "cold_ratio": app["views"][v.name]["cold_ms"] / view_base[v.name]["cold_ms"],
                }
                for v in VIEWS
            },
            "cold_ratio": app["index"]["cold_ms"] / base["cold_ms"],
            "warm_p50_ratio": app["index"]["warm_p50_ms"] / base["warm_p50_ms"],
            "seconds": time.monotonic() - step_started,
        }
        steps.append(step)
        print(
            f"  {size}: app cold {step['app']['cold_ms']:.0f} ms, warm p50/p95 "
            f"{step['app']['warm_p50_ms']:.0f}/{step['app']['warm_p95_ms']:.0f} ms "
            f"(n={step['app']['warm_n']}); baseline cold {base['cold_ms']:.0f} ms, warm p50 "
            f"{base['warm_p50_ms']:.0f} ms; app/baseline cold {step['cold_ratio']:.2f}; report "
            f"cold {step['report']['cold_ms']:.1f} ms, warm p95 {step['report']['warm_p95_ms']:.1f}"
            f" ms; fresh p50/p95 {step['fresh']['warm_p50_ms']:.0f}/"
            f"{step['fresh']['warm_p95_ms']:.0f} ms; respondent_type cold "
            f"{step['other']['cold_ms']:.0f} ms, warm p95 {step['other']['warm_p95_ms']:.1f} ms; "
            f"step {step['seconds']:.0f} s",
            flush=True,
        )

    growth = [
        {
            "from": a["forms"],
            "to": b["forms"],
            "size": b["forms"] / a["forms"],
            "app_cold": b["app"]["cold_ms"] / a["app"]["cold_ms"],
            "app_warm_p50": b["app"]["warm_p50_ms"] / a["app"]["warm_p50_ms"],
            "app_fresh_p50": b["fresh"]["warm_p50_ms"] / a["fresh"]["warm_p50_ms"],
            "baseline_cold": b["baseline"]["cold_ms"] / a["baseline"]["cold_ms"],
            "baseline_warm_p50": b["baseline"]["warm_p50_ms"] / a["baseline"]["warm_p50_ms"],
            "report_warm_p50": b["report"]["warm_p50_ms"] / a["report"]["warm_p50_ms"],
        }
        for a, b in itertools.pairwise(steps)
    ]
    at_1m = next((s for s in steps if s["forms"] == 1_000_000), None)
    result = {
        "database": DATABASE,
        "agencies": AGENCIES,
        "sizes": sizes,
        "repeats": args.repeats,
        "budget_s": args.budget,
        "publish": publish,
        "writes": writes,
        "steps": steps,
        "growth": growth,
        "target_cold_1m_met": None if at_1m is None else at_1m["cold_ratio"] <= 1.0,
        "target_warm_met": all(
            s["app"]["warm_p95_ms"] < 100 and s["other"]["warm_p95_ms"] < 100 for s in steps
        ),
        "seconds": time.monotonic() - started,
    }
    (OUT_DIR / "index.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def render(result: dict[str, Any]) -> list[str]:
    """The RESULTS.md section."""
    met = {True: "**met**", False: "**not met**", None: "**not measured** (no 1M step)"}
    steps, growth = result["steps"], result["growth"]
    lines = [
        f"{SECTION}: every view from the roll-ups vs its hand-written SQL aggregate",
        "",
        f"`GET /api/v1/campaigns/{{id}}/index?group_by=agency` over HTTP to uvicorn (1 worker, a "
        f"fresh process per size), {result['agencies']} agencies, valid sipas-2017 forms loaded "
        "with `bench.generate` (COPY) and added incrementally, then `VACUUM (ANALYZE)`. Baseline: "
        "one asyncpg statement counting the same raw answers per (agency, item, code) with "
        "`jsonb_each` over the valid forms. Cold = first request on a fresh server process (app) "
        "or connection (baseline); the table is in the OS page cache either way (it cannot be "
        f"evicted here). Warm = p50/p95 of up to {result['repeats']} repeats, cut after "
        f"{result['budget_s']:g} s per measurement (n = repeats made). Report = "
        "`GET /api/v1/reports/{id}` of a snapshot published once over "
        f"{result['publish']['forms']:,} forms (publishing took {result['publish']['seconds']:.0f}"
        " s).",
        "",
        "| forms | table MiB | load s | app cold ms | app warm p50 / p95 ms (n) "
        "| app fresh p50 / p95 ms (n) | baseline cold ms | baseline warm p50 / p95 ms (n) "
        "| app / baseline cold | by respondent_type cold ms, warm p95 ms "
        "| report cold ms | report warm p50 / p95 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in steps:
        a, b, r, fr, o = s["app"], s["baseline"], s["report"], s["fresh"], s["other"]
        lines.append(
            f"| {s['forms']:,} | {s['table_mib']:,.0f} | {s['load_s']:.0f} | {_ms(a['cold_ms'])} | "
            f"{_ms(a['warm_p50_ms'])} / {_ms(a['warm_p95_ms'])} ({a['warm_n']}) | "
            f"{_ms(fr['warm_p50_ms'])} / {_ms(fr['warm_p95_ms'])} ({fr['warm_n']}) | "
            f"{_ms(b['cold_ms'])} | {_ms(b['warm_p50_ms'])} / {_ms(b['warm_p95_ms'])} "
            f"({b['warm_n']}) | **{s['cold_ratio']:.2f}×** | "
            f"{_ms(o['cold_ms'])}, {_ms(o['warm_p95_ms'])} | "
            f"{_ms(r['cold_ms'])} | {_ms(r['warm_p50_ms'])} / {_ms(r['warm_p95_ms'])} |"
        )
    if growth:
        lines += [
            "",
            "Growth between sizes (time at the larger size / time at the smaller; linear = the "
            "size factor):",
            "",
            "| from → to | size × | app cold × | app warm p50 × | app fresh p50 × "
            "| baseline cold × | baseline warm p50 × | report warm p50 × |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for g in growth:
            lines.append(
                f"| {g['from']:,} → {g['to']:,} | {g['size']:.1f} | {g['app_cold']:.2f} | "
                f"{g['app_warm_p50']:.2f} | {g['app_fresh_p50']:.2f} | {g['baseline_cold']:.2f} | "
                f"{g['baseline_warm_p50']:.2f} | {g['report_warm_p50']:.2f} |"
            )
    lines += _matrix(result) + _writes(result["writes"])
    last = steps[-1]
    slower = [v.name for v in VIEWS if last["views"][v.name]["cold_ratio"] > 1.0]
    warm = [v.name for v in VIEWS if last["views"][v.name]["app"]["warm_p95_ms"] >= 100]
    lines += [
        "",
        f"Views at {last['forms']:,} forms: cold no slower than their SQL aggregate: "
        + ("**met** for every view" if not slower else f"**not met** for {', '.join(slower)}")
        + "; repeated reads under 100 ms p95: "
        + ("**met** for every view" if not warm else f"**not met** for {', '.join(warm)}")
        + f". Write cost: COPY into a campaign with the default roll-ups at "
        f"{result['writes']['ratio_all']:.0%} of bare COPY (target 50 %; forms are folded "
        f"after commit), base combination only {result['writes']['ratio_base']:.0%}; load "
        f"and fold one after the other {result['writes']['ratio_through_all']:.0%} "
        f"(base only {result['writes']['ratio_through_base']:.0%}).",
    ]
    lines += [
        "",
        "Targets: the index at 1M forms no slower than the SQL aggregate cold: "
        f"{met[result['target_cold_1m_met']]}; under 100 ms p95 for repeated reads of a "
        "breakdown by agency and by respondent type (both from the roll-ups), growing "
        f"far below linearly: {met[result['target_warm_met']]}. "
        f"The index step took {result['seconds']:.0f} s.",
        "",
    ]
    return lines


def _matrix(result: dict[str, Any]) -> list[str]:
    """Every view at every size: the app cold and warm, against its own SQL aggregate."""
    steps = result["steps"]
    head = "| view | " + " | ".join(
        f"{s['forms']:,}: app cold ms | app warm p95 ms | SQL aggregate cold ms | app / SQL"
        for s in steps
    )
    lines = [
        "",
        "Every view (`GET .../index?group_by=...&filters`) against the hand-written SQL aggregate "
        "of the same view: the count per (cell, item, answer code) of the valid forms with "
        "`jsonb_each`, grouped by the view's cell and restricted by its filters, one asyncpg "
        "statement on a fresh connection. App cold = the first request of that view on the "
        "fresh server process (nothing cached for it); warm = p95 of the repeats (the result "
        "cache). The bench's forms carry no sector or procedure (one cell each).",
        "",
        head + " |",
        "|---|" + "---:|---:|---:|---:|" * len(steps),
    ]
    for view in VIEWS:
        cells = []
        for s in steps:
            v = s["views"][view.name]
            cells.append(
                f"{_ms(v['app']['cold_ms'])} | {_ms(v['app']['warm_p95_ms'])} | "
                f"{_ms(v['baseline']['cold_ms'])} | **{v['cold_ratio']:.2f}×**"
            )
        lines.append(f"| {view.name} | " + " | ".join(cells) + " |")
    rss_met = all(s["peak_rss_mib"] < 1024 for s in steps)
    lines += [
        "",
        "Resident memory of the service (one uvicorn worker), the largest sampled every 0.1 s "
        "while it served the reads above: "
        + "; ".join(f"{s['forms']:,} forms {s['peak_rss_mib']:.0f} MiB" for s in steps)
        + f" (budget 1 GiB per worker: **{'met' if rss_met else 'not met'}**).",
    ]
    if len(steps) > 1:
        a, b = steps[0], steps[-1]
        lines += [
            "",
            f"Growth from {a['forms']:,} to {b['forms']:,} forms (×{b['forms'] / a['forms']:.0f}),"
            " app cold × / SQL aggregate cold ×: "
            + "; ".join(
                f"{v.name} {_growth(a, b, v.name, 'app')} / {_growth(a, b, v.name, 'baseline')}"
                for v in VIEWS
            )
            + ".",
        ]
    return lines


def _growth(a: dict[str, Any], b: dict[str, Any], view: str, side: str) -> str:
    return f"{b['views'][view][side]['cold_ms'] / a['views'][view][side]['cold_ms']:.2f}"


def _writes(w: dict[str, Any]) -> list[str]:
    fold = w["fold_forms_per_s"]
    through = w["through_forms_per_s"]
    lines = [
        "",
        f"Write cost of the roll-ups: COPY of pre-drawn valid forms in statements of 5000, "
        f"{w['rounds']} rounds of {w['slice_forms']:,} forms per subject, the subjects in turn "
        "(bare, all, base) so that the shared machine's drift falls on each alike; a database "
        "of its own. Forms are written bare and folded into the roll-ups after commit (migration "
        f"0013f): the fold of every form loaded ({w['forms_per_subject']:,} per subject) ran "
        f"afterwards in transactions of {w['fold_batch']:,} forms, as `sipas worker` runs it. "
        "Until a form is folded, reads count it from the forms (the tail), so reads are exact "
        "either way.",
        "",
        "| subject | COPY forms/s | per slice | of bare COPY | fold forms/s | load then fold |",
        "|---|---:|---|---:|---:|---:|",
    ]
    bare = w["forms_per_s"]["bare"]
    for name, label in WRITE_SUBJECTS:
        rate = w["forms_per_s"][name]
        per = ", ".join(f"{x:,.0f}" for x in w["slices_forms_per_s"][name])
        folded = f"{fold[name]:,.0f}" if name in fold else "-"
        both = f"{through[name]:,.0f} ({through[name] / bare:.0%})" if name in through else "-"
        lines.append(f"| {label} | {rate:,.0f} | {per} | {rate / bare:.0%} | {folded} | {both} |")
    ms = w["single_ms"]
    lines += [
        "",
        f"One form per statement ({w['singles']} statements per subject, in turn): "
        + ", ".join(f"{name} {ms[name]:.2f} ms" for name in ms)
        + f" per form; bare / all = {ms['bare'] / ms['all']:.0%}, "
        f"bare / base = {ms['bare'] / ms['base']:.0%}.",
    ]
    return lines


def splice(lines: list[str]) -> None:
    """Put the section into an existing RESULTS.md, replacing a previous one."""
    replace_section(RESULTS, SECTION, "\n".join(lines))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes",
        default="20000,100000",
        help="comma-separated form counts, loaded incrementally (1000000 takes several minutes "
        "to load with its roll-ups, 5000000 about five times that)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="warm requests per measurement")
    parser.add_argument("--min-repeats", type=int, default=1)
    parser.add_argument(
        "--budget", type=float, default=60, help="seconds after which warm repeats stop"
    )
    parser.add_argument("--report-forms", type=int, default=20_000)
    parser.add_argument(
        "--load-chunk",
        type=int,
        default=5000,
        help="forms per COPY statement when loading (50000 loads about twice as fast)",
    )
    parser.add_argument(
        "--write-forms", type=int, default=10_000, help="forms per slice of the write-cost step"
    )
    parser.add_argument("--write-rounds", type=int, default=3)
    parser.add_argument(
        "--fold-batch",
        type=int,
        default=rollups.FOLD_BATCH,
        help="forms per fold transaction in the write-cost step",
    )
    parser.add_argument(
        "--write-singles", type=int, default=200, help="one-form statements per slice"
    )
    parser.add_argument("--seed", type=int, default=2017)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args()
    result = run(args)
    section = render(result)
    box = machine()
    section[2:2] = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {box['nproc']} cores, "
        f"{box['memory']}, {box['cpu']}; command: "
        f"`{' '.join(['python -m bench.index', *map(shlex.quote, sys.argv[1:])])}`",
        "",
    ]
    splice(section)
    print("\n".join(section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
