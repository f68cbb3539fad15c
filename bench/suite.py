"""The test suite before and after it ran in parallel (issue #18: a database per pytest-xdist
worker, `make pytest` running `-n auto`): wall clock and tests passed of each, interleaved; and
today's suite in one process, which sets the suite's growth apart from what the workers gain;
and today's run of the very tests the suite had before, which compares like with like.

"Before" is the suite at `--before` (0ac2385, the parent of the commit that brought
pytest-xdist), run as its Makefile ran it then: `pytest`, one process. It is checked out with
`git worktree add --detach` in a temporary directory and run with this checkout's .venv (its
pinned dependencies are a subset of today's: checked first) on PYTHONPATH=<that tree>, against a
database of its own on this checkout's embedded PostgreSQL (`sipas_bench_suite_before`, through
TEST_DATABASE_URL), the server this process starts and keeps up so both suites share it.
"After" is the suite of this checkout as `make pytest` runs it now; "serial" the same suite in
one process (`make pytest PYTEST_WORKERS=0`; `--no-serial` leaves it out); "same" the tests of
this checkout whose node ids the before suite collects, as `make pytest` runs them now (every
one of them must still be collected: the suite has grown since, by other issues' tests, and
this run shows what became of the tests that were there). The runs alternate,
the order reversed every round (before, same, after, serial, then serial, after...) so that
the shared machine's drift falls on all alike. Tests passed are read from each run's JUnit XML.
Replaces its own section of bench/RESULTS.md after every round. Two rounds take 15 to 30
minutes, so `make bench` leaves it out:

    .venv/bin/python -m bench.suite [--rounds 2] [--before 0ac2385] [--no-serial]
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
from collections.abc import Callable
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
    suite: str  # "before", "serial", "after" or "same"
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


def suite_env(suite: str, tree: Path, url: str) -> dict[str, str]:
    env = {**os.environ}
    if suite == "before":
        env.update(PYTHONPATH=str(tree), TEST_DATABASE_URL=url)
    else:
        env.pop("TEST_DATABASE_URL", None)
    return env


def node_ids(suite: str, tree: Path, url: str) -> set[str]:
    """The test ids the suite collects (`before` in its worktree, any other in this checkout)."""
    done = subprocess.run(  # noqa: S603 - our own command
        [str(VENV_BIN / "pytest"), "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=tree if suite == "before" else ROOT,
        env=suite_env(suite, tree, url),
        capture_output=True,
        text=True,
        check=True,
    )
    return {line for line in done.stdout.splitlines() if "::" in line}


def same_tests(tree: Path, url: str, work: Path) -> int:
    """Writes the pytest argument file naming the before suite's tests, each of which must still
    be collected today; returns how many there are."""
    before = node_ids("before", tree, url)
    gone = before - node_ids("after", tree, url)
    if gone:
        raise SystemExit(f"tests of the before suite no longer collected: {sorted(gone)[:20]}")
    (work / "same-tests.txt").write_text("".join(f"{node}\n" for node in sorted(before)))
    return len(before)


def run_suite(suite: str, tree: Path, url: str, work: Path, stem: str) -> Run:
    junit, log = work / f"{stem}.xml", OUT_DIR / f"{stem}.log"
    env = {
        **suite_env(suite, tree, url),
        "PYTEST_ADDOPTS": f"--junitxml={junit} -p no:cacheprovider",
    }
    if suite == "before":
        command, cwd = [str(VENV_BIN / "pytest")], tree
    else:
        command, cwd = ["make", "--no-print-directory", "pytest"], ROOT
        if suite == "serial":
            command.append("PYTEST_WORKERS=0")
        if suite == "same":
            command.append(f"PYTEST_ARGS=@{work / 'same-tests.txt'}")
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(  # noqa: S603 - our own commands
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    wall = time.perf_counter() - started
    tests, passed, failed, skipped = counts(junit)
    return Run(suite, wall, tests, passed, failed, skipped, done.returncode)


def measure(args: argparse.Namespace, work: Path, report: Callable[[list[Run]], None]) -> list[Run]:
    # Started (or joined) here and held until the end: both suites join this server, and it
    # stops when its last user exits.
    url = embedded_server_url(DATA_DIR, DATABASE)
    asyncio.run(ensure_database(url))
    tree = work / "before"
    git("worktree", "add", "--detach", str(tree), args.before)
    runs: list[Run] = []
    try:
        args.same_count = same_tests(tree, url, work)
        order = ["before", "same", "after", *(["serial"] if args.serial else [])]
        for round_ in range(args.rounds):
            for suite in order if round_ % 2 == 0 else reversed(order):
                stem = f"suite-{suite}-{round_ + 1}"
                run = run_suite(suite, tree, url, work, stem)
                print(
                    f"{stem}: {run.wall:.0f} s, {run.passed} passed, {run.failed} failed",
                    flush=True,
                )
                runs.append(run)
            report(runs)
    finally:
        git("worktree", "remove", "--force", str(tree))
        asyncio.run(drop_database(url))
    return runs


def summary(runs: list[Run], suite: str) -> tuple[float, int]:
    mine = [r for r in runs if r.suite == suite]
    return sum(r.wall for r in mine), sum(r.passed for r in mine)


NAMES = {
    "before": "before: {before}, one process",
    "same": "now, the {same} tests of {before}, make pytest (-n auto)",
    "after": "now, make pytest (-n auto)",
    "serial": "now, one process (PYTEST_WORKERS=0)",
}


def render(runs: list[Run], args: argparse.Namespace, command: str, seconds: float) -> str:
    box = machine()
    names = {k: v.format(before=args.before, same=args.same_count) for k, v in NAMES.items()}
    rows = [
        f"| {i + 1} | {names[r.suite]} | {r.wall:.1f} | {r.passed} | {r.failed} | {r.skipped} "
        f"| {r.passed / r.wall:.2f} |"
        for i, r in enumerate(runs)
    ]
    sums = {k: summary(runs, k) for k in names if any(r.suite == k for r in runs)}
    totals = [
        f"| {names[k]} | {wall:.1f} | {passed} | {passed / wall:.2f} |"
        for k, (wall, passed) in sums.items()
    ]
    (before_wall, before_passed), (after_wall, after_passed) = sums["before"], sums["after"]
    same_wall, same_passed = sums["same"]
    same_ratio = before_wall / same_wall
    wall_ratio = before_wall / after_wall
    per_test = (before_wall / before_passed) / (after_wall / after_passed)
    lines = [
        SECTION,
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {box['nproc']} cores, {box['memory']}, {box['cpu']}; "
        f"Python {box['python']}; load average {args.load:.1f} at the start (the machine is "
        "shared with other work)",
        f"- command: `{command}` ({seconds / 60:.0f} min in all); before: the suite at "
        f"`{args.before_subject}`, run as its Makefile ran it (`pytest`, one process) from a "
        "git worktree with this .venv, on a database of its own on the embedded PostgreSQL; "
        "now: this checkout's suite as `make pytest` runs it (`pytest -n auto --dist "
        f"loadgroup`, {os.cpu_count()} workers), the same on only the tests the before suite "
        "had (`make pytest PYTEST_ARGS=@<their ids>`, each id still collected today), and in "
        "one process; the runs in turn, the order reversed every other round",
        "",
        "| run | suite | wall s | passed | failed | skipped | passed per s |",
        "|---:|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "| suite | wall s (sum) | passed (sum) | passed per s |",
        "|---|---:|---:|---:|",
        *totals,
        "",
        f"The same {args.same_count} tests, before / now: **{same_ratio:.2f}×** on the wall "
        f"clock; {before_passed} and {same_passed} passed in all (target 2×: "
        f"{'met' if same_ratio >= 2 else 'not met'}).",
        f"The whole suite, before ({before_passed // args.rounds} tests) / now "
        f"({after_passed // args.rounds} tests): **{wall_ratio:.2f}×** on the wall clock, "
        f"**{per_test:.2f}×** per test passed. The tests added since are other issues' (the "
        "roll-up property tests, the browser, the replica...).",
    ]
    if "serial" in sums:
        serial_wall = sums["serial"][0]
        lines.append(
            f"Today's suite in one process / in parallel: **{serial_wall / after_wall:.2f}×**, "
            "what the workers gain on the same tests."
        )
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", default=BEFORE, help="the commit of the suite before")
    parser.add_argument("--no-serial", dest="serial", action="store_false")
    args = parser.parse_args()
    started = time.perf_counter()
    args.load = os.getloadavg()[0]
    args.before_subject = git("log", "-1", "--format=%h, %as", args.before)
    check_dependencies(args.before)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m bench.suite", *map(shlex.quote, sys.argv[1:])])

    def report(runs: list[Run]) -> None:
        (OUT_DIR / "suite.json").write_text(json.dumps([asdict(r) for r in runs], indent=2))
        text = render(runs, args, command, time.perf_counter() - started)
        replace_section(RESULTS, SECTION, text)
        print(f"wrote the suite section of {RESULTS}", flush=True)

    with tempfile.TemporaryDirectory(prefix="sipas-suite-") as work:
        measure(args, Path(work), report)


if __name__ == "__main__":
    main()
