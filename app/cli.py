"""`sipas`: operator commands. Each is usable non-interactively by deployment scripts."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings, get_settings
from app.db import create_database, ensure_database, session_scope
from app.db_roles import app_database_url, owner_database_url, prepare_app_role
from app.errors import AppError
from app.models.agency import Agency
from app.models.identity import ClientCreate, ClientWithSecret, Role, Scope, UserCreate
from app.schema import upgrade

T = TypeVar("T")

Handler = Callable[[argparse.Namespace, Settings], int]


def _embedded(settings: Settings) -> bool:
    return settings.database_url is None


def _owner_url(settings: Settings) -> str:
    """Where migrations run (starting the embedded server and creating its database if needed)."""
    url = owner_database_url(settings)
    if _embedded(settings):
        asyncio.run(ensure_database(url))
    return url


def _prepare_app_role(settings: Settings) -> str | None:
    """Create (if missing) and grant the app role; a line saying what was done, or None."""
    setup = asyncio.run(prepare_app_role(_owner_url(settings), app_database_url(settings)))
    if setup is None:
        return None
    return f"app role {setup.role}: " + ("created and granted" if setup.created else "granted")


def _database_url(settings: Settings) -> str:
    """The URL the service's own work uses: the app role. The embedded server's app role is
    made ready here, so every command works on a fresh data directory."""
    if _embedded(settings):
        _prepare_app_role(settings)
    return app_database_url(settings)


def demo_wanted(settings: Settings) -> bool:
    """Whether `sipas serve` loads the demo province, campaigns and accounts: as SIPAS_DEMO
    says, and when it is unset only on the embedded database (a laptop). Never in production:
    the demo accounts' passwords are printed and published."""
    if settings.environment == "production":
        return False
    if settings.sipas_demo is not None:
        return settings.sipas_demo
    return _embedded(settings)


def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one committed transaction on the configured database."""
    url = _database_url(settings)

    async def run() -> T:
        db = create_database(url, settings)
        try:
            async with session_scope(db) as session:
                return await work(session)
        finally:
            await db.dispose()

    return asyncio.run(run())


def cmd_create_admin(args: argparse.Namespace, settings: Settings) -> int:
    from app.services import users

    if not args.password_stdin:
        print(
            "sipas create-admin: pass --password-stdin and the password on standard input",
            file=sys.stderr,
        )
        return 2
    password = sys.stdin.readline().rstrip("\r\n")
    data = UserCreate(
        username=args.username,
        display_name=args.display_name or args.username,
        role=Role.admin,
        password=password,
    )
    user = _in_transaction(settings, lambda s: users.create_user(s, None, data))
    print(f"created admin {user.username} ({user.id})")
    return 0


def cmd_create_client(args: argparse.Namespace, settings: Settings) -> int:
    from app.services import clients

    async def work(session: AsyncSession) -> ClientWithSecret:
        agency_id = None
        if args.agency:
            agency_id = await session.scalar(
                sa.select(col(Agency.id)).where(col(Agency.code) == args.agency)
            )
            if agency_id is None:
                raise AppError("unknown_agency", f"No agency has the code {args.agency!r}.")
        expires = (
            datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
        )
        data = ClientCreate(
            name=args.name,
            scopes=[Scope(s.strip()) for s in args.scopes.split(",") if s.strip()],
            agency_id=agency_id,
            expires_at=expires,
        )
        return await clients.create_client(session, None, data)

    created = _in_transaction(settings, work)
    print(
        json.dumps(
            {"client_id": created.client_id, "client_secret": created.client_secret},
            ensure_ascii=False,
        )
    )
    print("Store the secret now: it is not shown again.", file=sys.stderr)
    return 0


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    if args.demo_accounts and settings.environment == "production":
        print("sipas seed: --demo-accounts is refused when ENVIRONMENT=production", file=sys.stderr)
        return 2
    accounts = args.demo_accounts or demo_wanted(settings)
    for line in _seed(settings, demo_accounts=accounts):
        print(line)
    if not accounts:
        print("demo accounts not created (pass --demo-accounts, or set SIPAS_DEMO=1)")
    return 0


def _seed(settings: Settings, *, demo_accounts: bool) -> list[str]:
    """Load the demo province (idempotent) and, outside production, the demo accounts."""
    from app.services import demo, demo_campaigns, seed
    from app.services.index import rollups

    async def work(session: AsyncSession) -> list[str]:
        counts = await seed.load_demo_catalogue(session)
        forms = await demo_campaigns.ensure_demo_campaigns(session)
        await rollups.install_missing(session)
        lines = [
            "demo province loaded: "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
            + "; synthetic forms: "
            + (", ".join(f"{k} {v}" for k, v in forms.items()) or "present")
        ]
        if demo_accounts:
            for account in await demo.ensure_demo_accounts(session):
                lines.append(
                    f"  {account.role.value:<15} {account.username:<10} {account.password}"
                )
        return lines

    return _in_transaction(settings, work)


def _install_reference_data(settings: Settings) -> list[str]:
    """Data every deployment needs (the built-in questionnaires), installed idempotently."""
    from app.services import questionnaires

    return _in_transaction(settings, questionnaires.ensure_builtins)


def _install_rollups(settings: Settings) -> int:
    """Index roll-ups for every opened campaign that has none yet (e.g. after an upgrade)."""
    from app.services.index import rollups

    async def work(session: AsyncSession) -> int:
        return len(await rollups.install_missing(session))

    return _in_transaction(settings, work)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    upgrade(_owner_url(settings), args.revision)
    print(f"database migrated to {args.revision}")
    print(_prepare_app_role(settings) or _ONE_ROLE)
    if args.revision == "head":
        added = _install_reference_data(settings)
        print("built-in questionnaires: " + (", ".join(added) if added else "present"))
        print(f"index roll-ups installed for {_install_rollups(settings)} campaign(s)")
    return 0


_ONE_ROLE = (
    "one database role: DATABASE_OWNER_URL is unset, so the app connects as the owner of the "
    "schema and could disable its guards (see the README's production checklist)"
)


# How uvicorn serves the app whatever the command line says: the app factory, the app's own
# logging (no access log), and the client address behind proxies decided by TRUSTED_PROXIES alone.
_SERVING: dict[str, Any] = {
    "factory": True,
    "access_log": False,
    "proxy_headers": False,
    "log_config": None,
    "timeout_graceful_shutdown": 20,
}


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    upgrade(_owner_url(settings))
    if _prepare_app_role(settings) is None and settings.environment != "test":
        print(_ONE_ROLE, file=sys.stderr)
    url = app_database_url(settings)
    _install_reference_data(settings)
    _install_rollups(settings)
    # The demo province and accounts only on a laptop's embedded database, or when asked.
    seeded = _seed(settings, demo_accounts=True) if demo_wanted(settings) else []
    # The workers (and this process) must use the same server, embedded or not, as the app role.
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    base = f"http://{args.host}:{args.port}"
    print(
        "\nSIPAS is starting\n"
        f"  API:     {base}/api/v1\n"
        f"  Docs:    {base}/docs\n"
        f"  Ready:   {base}/readyz\n"
        f"  Token:   POST {base}/api/v1/auth/token (grant_type=password)\n\n"
        + (
            "Demo accounts (role, username, password):\n" + "\n".join(seeded[1:]) + "\n"
            if seeded
            else ""
        ),
        flush=True,
    )
    metrics_dir = _metrics_dir(args.workers)
    worker = None if args.no_worker else _spawn_worker()
    try:
        uvicorn.run(
            "app.main:create_app", host=args.host, port=args.port, workers=args.workers, **_SERVING
        )
    finally:
        if worker is not None:
            _stop_worker(worker)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _metrics_dir(workers: int) -> str | None:
    """With several workers, a fresh directory for prometheus_client's multiprocess mode, named
    in PROMETHEUS_MULTIPROC_DIR before the workers start, so /metrics sums every worker (see
    app/metrics.py); None with one worker or when the operator named a directory already."""
    from app.metrics import MULTIPROC_ENV

    if workers <= 1 or os.environ.get(MULTIPROC_ENV):
        return None
    made = tempfile.mkdtemp(prefix="sipas-metrics-")
    os.environ[MULTIPROC_ENV] = made
    return made


def _spawn_worker() -> subprocess.Popen[bytes]:
    """The webhook worker beside the API (`make run`), on the same database. It runs in a
    session of its own, so Ctrl-C reaches only this process, which then stops it with SIGTERM
    once the API has stopped (and before the embedded PostgreSQL does)."""
    return subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], start_new_session=True)


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Deliver webhooks until SIGTERM or SIGINT (several copies may run side by side)."""
    from app.logging import configure_logging
    from app.services.events.worker import run_worker

    configure_logging(settings.log_level)
    asyncio.run(run_worker(settings, _database_url(settings)))
    return 0


def cmd_fold(args: argparse.Namespace, settings: Settings) -> int:
    """Fold every committed form into the index roll-ups now (what `sipas worker` does in
    batches), e.g. after a bulk load; prints the forms folded."""
    from app.services.index import rollups

    async def work(session: AsyncSession) -> int:
        return await rollups.fold_all(session, most=None)

    print(f"forms folded into the index roll-ups: {_in_transaction(settings, work)}")
    return 0


def cmd_db_url(args: argparse.Namespace, settings: Settings) -> int:
    print(_database_url(settings))
    return 0


def cmd_partitions(args: argparse.Namespace, settings: Settings) -> int:
    """List, detach or drop campaigns' partitions, as the owner role (a partition operation is
    DDL, which the app role may not do). See docs/scaling.md."""
    import uuid

    from app.services import partitions

    url = _owner_url(settings)

    async def run() -> list[str]:
        db = create_database(url, settings)
        try:
            async with session_scope(db) as session:
                if args.action == "list":
                    return [
                        f"{p.name}\t{p.parent}\t{'attached' if p.attached else 'detached'}"
                        f"\t~{p.rows_estimate} rows"
                        for p in await partitions.listing(session)
                    ]
                campaign = uuid.UUID(args.campaign)
                if args.action == "detach":
                    return [f"detached {n}" for n in await partitions.detach(session, campaign)]
                return [f"dropped {n}" for n in await partitions.drop(session, campaign)]
        finally:
            await db.dispose()

    if args.action != "list" and not args.campaign:
        print(f"sipas partitions {args.action}: name the campaign id", file=sys.stderr)
        return 2
    for line in asyncio.run(run()):
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sipas", description="SIPAS operator commands")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "migrate",
        help="apply database migrations (to head by default) as the owner role, then create "
        "and grant the app role",
    )
    p.add_argument("--revision", default="head")
    p.set_defaults(handler=cmd_migrate)

    p = sub.add_parser("serve", help="migrate, then serve the API with uvicorn")
    p.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1")))
    p.add_argument(
        "--no-worker", action="store_true", help="do not start the webhook worker beside the API"
    )
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser(
        "worker", help="deliver webhooks and fold the index roll-ups (stops cleanly on SIGTERM)"
    )
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser(
        "fold", help="fold every committed form into the index roll-ups now (e.g. after a load)"
    )
    p.set_defaults(handler=cmd_fold)

    p = sub.add_parser("db-url", help="print the database URL the service would use")
    p.set_defaults(handler=cmd_db_url)

    p = sub.add_parser("seed", help="load the demo province and campaigns (idempotent)")
    p.add_argument(
        "--demo-accounts",
        action="store_true",
        help="also create the demo accounts (fixed, printed passwords); by default only on the "
        "embedded database or with SIPAS_DEMO=1; refused in production",
    )
    p.set_defaults(handler=cmd_seed)

    p = sub.add_parser("create-admin", help="create an admin user; password on standard input")
    p.add_argument("--username", required=True)
    p.add_argument("--display-name")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(handler=cmd_create_admin)

    p = sub.add_parser("create-client", help="register a machine client; prints id and secret")
    p.add_argument("--name", required=True)
    p.add_argument("--scopes", required=True, help="comma-separated, e.g. submissions:write")
    p.add_argument("--agency", help="agency code that limits the client to its subtree")
    p.add_argument("--expires-days", type=int)
    p.set_defaults(handler=cmd_create_client)

    p = sub.add_parser(
        "partitions",
        help="list campaigns' partitions, detach one campaign's (its forms leave the service), "
        "or drop a detached campaign's",
    )
    p.add_argument("action", choices=("list", "detach", "drop"))
    p.add_argument("campaign", nargs="?", help="the campaign id (detach, drop)")
    p.set_defaults(handler=cmd_partitions)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, get_settings())
    except KeyboardInterrupt:
        return 130
    except AppError as exc:
        print(f"sipas {args.command}: {exc.detail}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "input"
            print(f"sipas {args.command}: {where}: {error['msg']}", file=sys.stderr)
        return 1
    except Exception as exc:  # an operator wants one clear line, not a traceback
        print(f"sipas {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
