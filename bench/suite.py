"""The test suite before and after it ran in parallel (issue #18: a database per pytest-xdist
worker, `make pytest` running `-n auto`): wall clock and tests passed of each, interleaved.

"Before" is the suite at `--before` (0ac2385, the parent of the commit that brought
pytest-xdist), run as its Makefile ran it then: `pytest`, one process. It is checked out with
`git worktree add --detach` in a temporary directory and run with this checkout's .venv (its
pinned dependencies are a subset of today's: checked first) on PYTHONPATH=<that tree>, against a
database of its own on this checkout's embedded PostgreSQL (`sipas_bench_suite_before`, through
TEST_DATABASE_URL), the server this process starts and keeps up so both suites share it.
"After" is the suite of this checkout as `make pytest` runs it now. The runs alternate, before
and after in turn, the order reversed every round (before, after, after, before...) so that the
shared machine's drift falls on both alike. Tests passed are read from each run's JUnit XML.
Replaces its own section of bench/RESULTS.md. Two rounds take about half an hour, so `make
bench` leaves it out:

    .venv/bin/python -m bench.suite [--rounds 2] [--before 0ac2385]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.db import drop_database, ensure_database
from app.embedded import embedded_server_url
from bench.common import DATA_DIR, OUT_DIR, ROOT, machine, replace_section

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Test suite: one process before, a database per xdist worker after"
BEFORE = "0ac2385"
DATABASE = "sipas_bench_suite_before"
VENV_BIN = Path(sys.executable).parent


@dataclass
class Run:
    suite: str  # "before" or "after"
    wall: float
    tests: int  # in the JUnit report
    passed: int
    failed: int
    skipped: int
    returncode: int


def git(*args: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own arguments
        ["git", *args],  # noqa: S607 - git from PATH, as make and the developer use it
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def pins(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if "==" in line and "#" not in line}


def check_dependencies(commit: str) -> None:
    """The before suite runs on this .venv: every pin of its constraints.txt must be one of ours."""
    missing = pins(git("show", f"{commit}:constraints.txt")) - pins(
        (ROOT / "constraints.txt").read_text()
    )
    if missing:
        raise SystemExit(f"{commit} pins what this .venv lacks: {sorted(missing)}")


def counts(junit: Path) -> tuple[int, int, int, int]:
    """Tests, passed, failed (failures and errors) and skipped in a JUnit XML report."""
    root = ET.parse(junit).getroot()  # noqa: S314 - pytest wrote it in this run
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    tests = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return tests, tests - failed - skipped, failed, skipped


def run_suite(suite: str, tree: Path, url: str, junit: Path, log: Path) -> Run:
    env = {**os.environ, "PYTEST_ADDOPTS": f"--junitxml={junit} -p no:cacheprovider"}
    if suite == "before":
        env.update(PYTHONPATH=str(tree), TEST_DATABASE_URL=url)
        command, cwd = [str(VENV_BIN / "pytest")], tree
    else:
        env.pop("TEST_DATABASE_URL", None)
        command, cwd = ["make", "--no-print-directory", "pytest"], ROOT
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(  # noqa: S603 - our own commands
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    wall = time.perf_counter() - started
    tests, passed, failed, skipped = counts(junit)
    return Run(suite, wall, tests, passed, failed, skipped, done.returncode)


def measure(args: argparse.Namespace, work: Path) -> list[Run]:
    # Started (or joined) here and held until the end: both suites join this server, and it
    # stops when its last user exits.
    url = embedded_server_url(DATA_DIR, DATABASE)
    asyncio.run(ensure_database(url))
    tree = work / "before"
    git("worktree", "add", "--detach", str(tree), args.before)
    runs: list[Run] = []
    try:
        for round_ in range(args.rounds):
            order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
            for suite in order:
                stem = f"suite-{suite}-{round_ + 1}"
                run = run_suite(suite, tree, url, work / f"{stem}.xml", OUT_DIR / f"{stem}.log")
                print(f"{stem}: {run.wall:.0f} s, {run.passed} passed, {run.failed} failed")
                runs.append(run)
    finally:
        git("worktree", "remove", "--force", str(tree))
        asyncio.run(drop_database(url))
    return runs


def summary(runs: list[Run], suite: str) -> tuple[float, int]:
    mine = [r for r in runs if r.suite == suite]
    return sum(r.wall for r in mine), sum(r.passed for r in mine)


def render(runs: list[Run], args: argparse.Namespace, command: str, seconds: float) -> str:
    box = machine()
    rows = [
        f"| {i + 1} | {r.suite} | {r.wall:.1f} | {r.passed} | {r.failed} | {r.skipped} "
        f"| {r.passed / r.wall:.2f} |"
        for i, r in enumerate(runs)
    ]
    before_wall, before_passed = summary(runs, "before")
    after_wall, after_passed = summary(runs, "after")
    wall_ratio = before_wall / after_wall
    per_test = (before_wall / before_passed) / (after_wall / after_passed)
    return "\n".join(
        [
            SECTION,
            "",
            f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {box['nproc']} cores, {box['memory']}, {box['cpu']}; "
            f"Python {box['python']}; load average {args.load:.1f} at the start (the machine is "
            "shared with other work)",
            f"- command: `{command}` ({seconds / 60:.0f} min in all); before: the suite at "
            f"{args.before} (`{args.before_subject}`), run as its Makefile ran it (`pytest`, one "
            "process) from a git worktree with this .venv, on a database of its own on the "
            "embedded PostgreSQL; after: this checkout's suite as `make pytest` runs it "
            f"(`pytest -n auto --dist loadgroup`, {os.cpu_count()} workers); {args.rounds} "
            "rounds, before and after in turn (the order reversed every other round)",
            "",
            "| run | suite | wall s | passed | failed | skipped | passed per s |",
            "|---:|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "| suite | wall s (sum) | passed (sum) | passed per s |",
            "|---|---:|---:|---:|",
            f"| before | {before_wall:.1f} | {before_passed} | {before_passed / before_wall:.2f} |",
            f"| after | {after_wall:.1f} | {after_passed} | {after_passed / after_wall:.2f} |",
            "",
            f"Wall clock, before / after: **{wall_ratio:.2f}×**; time per test passed, before / "
            f"after: **{per_test:.2f}×** (the suite after has more tests). Target 2×: "
            f"{'met' if wall_ratio >= 2 else 'not met'} on the wall clock, "
            f"{'met' if per_test >= 2 else 'not met'} per test.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", default=BEFORE, help="the commit of the suite before")
    args = parser.parse_args()
    started = time.perf_counter()
    args.load = os.getloadavg()[0]
    args.before_subject = git("log", "-1", "--format=%h %as", args.before)
    check_dependencies(args.before)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sipas-suite-") as work:
        runs = measure(args, Path(work))
    (OUT_DIR / "suite.json").write_text(json.dumps([asdict(r) for r in runs], indent=2))
    command = " ".join(["python -m bench.suite", *map(shlex.quote, sys.argv[1:])])
    replace_section(RESULTS, SECTION, render(runs, args, command, time.perf_counter() - started))
    print(f"wrote the suite section of {RESULTS}")


if __name__ == "__main__":
    main()
