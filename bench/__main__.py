"""`make bench`: ingest (with its baselines), overload, the data generator, the live index at
growing sizes (`bench.index`), partitions (`bench.partitions`) and the read replica
(`bench.replica`); each replaces its own sections of RESULTS.md and keeps every other one (the
events and review sections, written by their own commands, stay as they are).

    .venv/bin/python -m bench [--duration 15] [--concurrency 32] [--skip-overload] ...
    .venv/bin/python -m bench --sizes 100000,1000000,5000000   # the index at 5M too (long)
    .venv/bin/python -m bench --partition-forms 500000         # the issue's 10 x 500k (long)

The longer crash-safety round is `.venv/bin/python .ci/crash_safety.py --kills 6`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import generate, index, ingest, overload, partitions, replica
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
        "carry the same columns and fire the same triggers as the app's (foreign keys, and "
        "the roll-up statement triggers, which find nothing to count: this campaign's roll-ups "
        "are not installed, so both figures leave their cost out; it is measured in the live "
        "index section); the app also validates each form, hashes its body, checks scope and "
        "writes an audit event per batch.",
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


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading, block) for each `## ` section of a RESULTS.md text, in order; the block runs
    to the next heading, or to an HTML comment line that opens another command's block."""
    out: list[tuple[str, str]] = []
    heading, block = "", list[str]()
    for line in text.splitlines():
        if line.startswith("## ") or line.startswith("<!-- "):
            if heading or block:
                out.append((heading, "\n".join(block)))
            heading, block = (line if line.startswith("## ") else ""), [line]
        else:
            block.append(line)
    if heading or block:
        out.append((heading, "\n".join(block)))
    return out


def _key(heading: str) -> str:
    """What names a section whatever its figures: its first words, numbers left out."""
    return re.sub(r"\d+", "#", " ".join(heading.split()[:3]))


def splice_sections(old: str, new: str) -> str:
    """`old` with each section of `new` in place of the section of the same heading (or added
    after them), and `new`'s preamble (title, date, machine) in place of `old`'s."""
    fresh = _sections(new)
    by_heading = {_key(h): b for h, b in fresh if h}
    kept: list[str] = [fresh[0][1] if fresh and not fresh[0][0] else "# Benchmark results"]
    used: set[str] = set()
    for heading, block in _sections(old):
        key = _key(heading)
        if not heading and not block.startswith("<!-- "):
            continue  # the old preamble
        if heading and key in by_heading:
            if key not in used:
                kept.append(by_heading[key])
                used.add(key)
            continue
        kept.append(block)
    kept += [b for h, b in fresh if h and _key(h) not in used]
    return "\n\n".join(part.strip("\n") for part in kept if part.strip()) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ingest.add_arguments(parser)
    overload.add_arguments(parser)
    parser.add_argument("--skip-overload", action="store_true")
    parser.add_argument("--generate-forms", type=int, default=20_000)
    parser.add_argument("--skip-index", action="store_true")
    parser.add_argument("--skip-partitions", action="store_true")
    parser.add_argument("--partition-campaigns", type=int, default=10)
    parser.add_argument("--partition-forms", type=int, default=50_000)
    parser.add_argument("--partition-rounds", type=int, default=3)
    parser.add_argument("--skip-replica", action="store_true")
    parser.add_argument("--replica-forms", type=int, default=5_000)
    parser.add_argument("--replica-rounds", type=int, default=5)
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
    RESULTS.write_text(splice_sections(RESULTS.read_text() if RESULTS.exists() else "", text))
    if not args.skip_partitions:
        print("partitions:", flush=True)
        parted = argparse.Namespace(
            campaigns=args.partition_campaigns,
            forms=args.partition_forms,
            rounds=args.partition_rounds,
            seed=2017,
            no_write=False,
        )
        command = (
            f"python -m bench.partitions --campaigns {parted.campaigns} --forms {parted.forms}"
            f" --rounds {parted.rounds} (from make bench)"
        )
        partitions.splice(partitions.render(partitions.run(parted), command))
    if not args.skip_replica:
        print("replica:", flush=True)
        replica_started = time.perf_counter()
        copied = argparse.Namespace(
            forms=args.replica_forms, rounds=args.replica_rounds, load=os.getloadavg()[0]
        )
        measured = replica.run(copied)
        command = (
            f"python -m bench.replica --forms {copied.forms} --rounds {copied.rounds}"
            " (from make bench)"
        )
        replica.write_section(
            replica.render(measured, command, time.perf_counter() - replica_started)
        )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
