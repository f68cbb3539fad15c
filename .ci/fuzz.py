"""Fuzz the whole API from its OpenAPI document with Schemathesis.

The app runs under uvicorn on a free 127.0.0.1 port against `sipas_fuzz`, a database on the
embedded PostgreSQL that this script drops, recreates, migrates and fills with the demo province,
the demo campaigns and an admin (whose token every request carries). Schemathesis sends schema-
conforming and schema-violating requests (`--mode all`), a bounded number per operation, and
checks that no response is a 5xx and that every response conforms to the documented schema.

Exit status: Schemathesis's (non-zero when a check failed; it prints each failing case with a
curl line to reproduce it), or 1 when the server logged an unhandled exception.

    .venv/bin/python .ci/fuzz.py [--max-examples N] [--seed S] [--workers W]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.db import create_database, session_scope  # noqa: E402
from app.services import demo_campaigns, seed  # noqa: E402
from bench.common import (  # noqa: E402
    SECRET_KEY,
    Server,
    dsn,
    make_fixture,
    prepare_database,
    server_env,
)

DATABASE = "sipas_fuzz"
LOG = ROOT / ".data" / "fuzz-server.log"
REPORT = ROOT / ".data" / "fuzz-report"


async def load_demo(url: str) -> None:
    settings = Settings(_env_file=None, database_url=url, environment="test")
    db = create_database(url, settings)
    try:
        async with session_scope(db) as session:
            await seed.load_demo_catalogue(session)
            await demo_campaigns.ensure_demo_campaigns(session)
    finally:
        await db.dispose()


def admin_token() -> str:
    """A fresh admin token at the admin's current token version.

    The fuzzer may legitimately change the admin's password through the API, which revokes
    every token it holds; Schemathesis then asks for a new one (on a 401) and goes on testing
    with it instead of seeing only 401s for the rest of the run."""
    import uuid
    from datetime import timedelta

    import asyncpg

    from app.models.identity import Scope
    from app.security import issue_token

    admin_id = uuid.UUID(os.environ["SIPAS_FUZZ_ADMIN_ID"])

    async def version() -> int:
        conn = await asyncpg.connect(os.environ["SIPAS_FUZZ_DSN"])
        try:
            return int(
                await conn.fetchval(
                    "UPDATE users SET is_active = true WHERE id = $1 RETURNING token_version",
                    admin_id,
                )
            )
        finally:
            await conn.close()

    token, _ = issue_token(
        kind="user",
        subject_id=admin_id,
        version=asyncio.run(version()),
        scopes=[s.value for s in Scope],
        secret=SECRET_KEY,
        issuer="sipas",
        audience="sipas-api",
        lifetime=timedelta(hours=2),
    )
    return token


if os.environ.get("SIPAS_FUZZ_ADMIN_ID"):  # imported by Schemathesis as its hooks module
    import schemathesis

    @schemathesis.auth(refresh_interval=5, retry_on=[401])
    class AdminAuth:
        def get(self, case: schemathesis.Case[Any], ctx: schemathesis.AuthContext) -> str:
            return admin_token()

        def set(
            self, case: schemathesis.Case[Any], data: str, ctx: schemathesis.AuthContext
        ) -> None:
            case.headers["Authorization"] = f"Bearer {data}"


def server_errors(log: Path) -> list[str]:
    """Blocks of the server log that record an unhandled exception."""
    if not log.exists():
        return []
    text = log.read_text(errors="replace")
    return [line for line in text.splitlines() if re.search(r"Traceback|\"ERROR\"|ERROR:", line)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=25, help="cases per operation")
    parser.add_argument("--seed", type=int, default=20260101)
    # One worker: with two, Hypothesis describes strategies from two threads at once, and
    # CPython 3.11's ast module keeps its recursion depth per interpreter, not per thread, so
    # a parse can fail with "AST constructor recursion depth mismatch" (cpython#106905's
    # family). That is a crash of the fuzzer, not a finding, and it failed a CI run.
    parser.add_argument("--workers", default="1", help="Schemathesis workers")
    args = parser.parse_args()

    started = time.monotonic()
    url = prepare_database(DATABASE)
    asyncio.run(load_demo(url))
    fixture = asyncio.run(make_fixture(url, agencies=2, clients=1))
    LOG.unlink(missing_ok=True)
    server = Server("app.main:create_app", server_env(url), workers=2, log=LOG)
    server.start()
    ready = time.monotonic() - started
    print(f"fuzzing {server.base} (database {DATABASE}, ready in {ready:.1f} s)")
    try:
        command = [
            str(Path(sys.executable).parent / "st"),
            "run",
            f"{server.base}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--mode",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(args.max_examples),
            "--seed",
            str(args.seed),
            "--workers",
            args.workers,
            "--request-timeout",
            "30",
            "--suppress-health-check",
            "all",
            "--output-sanitize",
            "true",
            "--report",
            "junit",
            "--report-dir",
            str(REPORT),
        ]
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "fuzz",
            "PYTHONPATH": os.pathsep.join([str(ROOT / ".ci"), str(ROOT)]),
            "SIPAS_FUZZ_ADMIN_ID": str(fixture.admin_id),
            "SIPAS_FUZZ_DSN": dsn(url),
        }
        status = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
    finally:
        server.stop()
    errors = server_errors(LOG)
    if errors:
        print(f"\nthe server logged {len(errors)} error line(s) (full log: {LOG}):")
        for line in errors[:50]:
            print("  " + line[:2000])
        status = status or 1
    print(f"fuzzing finished in {time.monotonic() - started:.0f} s with exit status {status}")
    return status


if __name__ == "__main__":
    sys.exit(main())
