"""`make bench`: ingest (with its baselines), overload, the data generator and the live index at
growing sizes (`bench.index`); writes RESULTS.md.

    .venv/bin/python -m bench [--duration 15] [--concurrency 32] [--skip-overload] ...
    .venv/bin/python -m bench --sizes 100000,1000000,5000000   # the index at 5M too (long)

The longer crash-safety round is `.venv/bin/python .ci/crash_safety.py --kills 6`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import generate, index, ingest, overload
from bench.common import OUT_DIR, machine

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _m(summary: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = summary["measurements"][name]
    return result


def render(
    args: argparse.Namespace,
    ing: dict[str, Any],
    over: dict[str, Any] | None,
    gen: list[dict[str, Any]],
    idx: dict[str, Any] | None,
    seconds: float,
) -> str:
    box = machine()
    mini, single = _m(ing, "minimal"), _m(ing, "single")
    batch, copy = _m(ing, "batch"), _m(ing, "copy")
    met = {True: "**met**", False: "**not met**"}
    lines = [
        "# Benchmark results",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {box['nproc']} cores, {box['memory']}, {box['cpu']}; Python {box['python']}",
        "- PostgreSQL: the embedded server (unix socket) on the same machine; the load "
        "generator (httpx, one process) shares the same cores with the servers",
        f"- command: `{' '.join(['python -m bench', *map(shlex.quote, sys.argv[1:])])}` "
        f"({seconds:.0f} s in all)",
        f"- each ingest measurement: {args.rounds} slices of {args.duration / args.rounds:g} s, "
        "taken in turn with its baseline (minimal, app, app batch, COPY, then again) so that the "
        "machine's drift falls on both alike; the first slice after "
        f"{args.warmup:g} s of warm-up, the others after 1 s; uvicorn with {args.workers} "
        "workers on 127.0.0.1",
        "",
        f"## Single forms, {args.concurrency} concurrent clients",
        "",
        "| | forms/s | p50 ms | p95 ms | p99 ms | answers |",
        "|---|---:|---:|---:|---:|---|",
    ]
    paced, mini_paced = _m(ing, "paced"), _m(ing, "minimal_paced")
    rate = ing["paced_rate"]
    for name, m in (
        ("minimal endpoint (baseline), closed loop", mini),
        ("app, closed loop", single),
        (f"minimal endpoint (baseline), paced at {rate:.0f} forms/s", mini_paced),
        (f"app, paced at {rate:.0f} forms/s", paced),
    ):
        lines.append(
            f"| {name} | {m['forms_per_s']:.0f} | {m['p50_ms']:.1f} | {m['p95_ms']:.1f} | "
            f"{m['p99_ms']:.1f} | {m['statuses']} |"
        )
    floor_wait = args.concurrency / mini["forms_per_s"] * 1000
    lines += [
        "",
        "Closed loop: each client posts its next form as soon as the last is answered, so the "
        "server is saturated and latency is mostly queueing. Paced: the same clients post on a "
        f"fixed schedule adding up to {args.paced_share:.0%} of the app's closed-loop rate; "
        "latency counts from the scheduled time, so a server that falls behind pays for it.",
        "",
        "Per slice, app / minimal: "
        + ", ".join(f"{r['single_ratio']:.1%}" for r in ing["rounds"])
        + f". In all, app / minimal: **{ing['single_ratio']:.1%}**. Target: at least 60 % with "
        f"p99 under 100 ms: throughput {met[ing['single_ratio'] >= 0.6]}; p99 under 100 ms "
        f"{met[single['p99_ms'] < 100]} in the closed loop ({single['p99_ms']:.0f} ms), "
        f"{met[paced['p99_ms'] < 100]} paced ({paced['p99_ms']:.1f} ms at {rate:.0f} forms/s). "
        "In the closed loop no server can meet it on this machine: the baseline itself has "
        f"p99 {mini['p99_ms']:.0f} ms, and by Little's law {args.concurrency} clients at its "
        f"{mini['forms_per_s']:.0f} forms/s wait {floor_wait:.0f} ms on average, because the "
        "load generator, both uvicorn workers and PostgreSQL share "
        f"{box['nproc']} cores.",
        "",
        f"## Batches of {args.batch_size}, {args.batch_concurrency} concurrent clients",
        "",
        "| | forms/s | p50 ms per batch | p99 ms per batch |",
        "|---|---:|---:|---:|",
        f"| COPY, asyncpg copy_records_to_table (baseline) | {copy['forms_per_s']:.0f} | "
        f"{copy['p50_ms']:.1f} | {copy['p99_ms']:.1f} |",
        f"| app batch endpoint | {batch['forms_per_s']:.0f} | {batch['p50_ms']:.1f} | "
        f"{batch['p99_ms']:.1f} |",
        "",
        "Per slice, app / COPY: "
        + ", ".join(f"{r['batch_ratio']:.1%}" for r in ing["rounds"])
        + f". In all, app / COPY: **{ing['batch_ratio']:.1%}**. Target: at least 35 %: "
        f"{met[ing['batch_target_met']]}. Batch answers: {batch['statuses']}. The COPY rows "
        "carry the same columns and fire the same triggers (foreign keys, roll-ups) as the "
        "app's; the app also validates each form, hashes its body, checks scope and writes an "
        "audit event per batch.",
        "",
    ]
    if over is not None:
        lines += [
            f"## Overload: {over['concurrency']} clients, pool {over['pool']['size']} "
            f"(no overflow, {over['pool']['timeout_s']:g} s timeout) per worker, "
            f"{over['pool']['workers']} workers",
            "",
            f"{over['requests']} requests in {over['duration_s']:g} s. Answers must be 2xx, 429 "
            "or 503 with Retry-After, quickly.",
            "",
            "| answer | count | p50 ms | p95 ms | p99 ms | max ms |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for status, count in over["statuses"].items():
            lat = over["latency_ms"][status]
            lines.append(
                f"| {status} | {count} | {lat['p50']:.1f} | {lat['p95']:.1f} | "
                f"{lat['p99']:.1f} | {lat['max']:.1f} |"
            )
        lines += [
            "",
            f"429/503 without Retry-After: {over['missing_retry_after']}. Verdict: "
            + ("**ok**" if over["ok"] else f"**unacceptable answers {over['unacceptable']}**"),
            "",
        ]
    lines += [
        "## Data generator",
        "",
        "Valid forms of the demo province's measured agencies, drawn in Python and written with "
        "COPY in chunks of 5000, into a campaign without roll-ups (the index benchmark's load "
        "includes them):",
        "",
    ]
    for g in gen:
        lines.append(
            f"- `python -m bench.generate --forms {g['forms']} --province --questionnaire "
            f"{g['questionnaire']}` ({g['agencies']} agencies): {g['forms_per_s']:.0f} forms/s"
        )
    lines.append("")
    if idx is not None:
        lines += index.render(idx)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ingest.add_arguments(parser)
    overload.add_arguments(parser)
    parser.add_argument("--skip-overload", action="store_true")
    parser.add_argument("--generate-forms", type=int, default=20_000)
    parser.add_argument("--skip-index", action="store_true")
    index.add_arguments(parser)
    args = parser.parse_args()
    started = time.monotonic()
    print("ingest:", flush=True)
    ing = ingest.run(args)
    over = None
    if not args.skip_overload:
        print("overload:", flush=True)
        over = overload.run(args)
    print("generator:", flush=True)
    gen = [
        generate.run(
            argparse.Namespace(
                forms=args.generate_forms,
                database="sipas_bench",
                url=None,
                agencies=40,
                province=True,
                questionnaire=questionnaire,
                chunk=5000,
                seed=2017,
                fresh=True,
            )
        )
        for questionnaire in ("sipas-2017", "dossier-rating-2018")
    ]
    idx = None
    if not args.skip_index:
        print("index:", flush=True)
        idx = index.run(args)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "results.json").write_text(
        json.dumps(
            {"ingest": ing, "overload": over, "generate": gen, "index": idx}, indent=2, default=str
        )
    )
    text = render(args, ing, over, gen, idx, time.monotonic() - started)
    if idx is None and RESULTS.exists():
        # --skip-index keeps the index section of an earlier run (bench.index writes its own)
        _, found, tail = RESULTS.read_text().partition(index.SECTION)
        if found:
            text = text.rstrip("\n") + "\n\n" + found + tail.split("\n## ", 1)[0].rstrip("\n")
    RESULTS.write_text(text.rstrip("\n") + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
