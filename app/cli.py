"""`sipas`: operator commands. Each is usable non-interactively by deployment scripts."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence

from app.config import Settings, get_settings
from app.db import ensure_database
from app.main import resolve_database_url
from app.schema import upgrade

Handler = Callable[[argparse.Namespace, Settings], int]


def _database_url(settings: Settings) -> str:
    """Resolve the URL (starting the embedded server if needed); make sure the database exists."""
    url = resolve_database_url(settings)
    if settings.database_url is None:
        asyncio.run(ensure_database(url))
    return url


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    url = _database_url(settings)
    upgrade(url, args.revision)
    print(f"database migrated to {args.revision}")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    url = _database_url(settings)
    upgrade(url)
    # The workers (and this process) must use the same server, embedded or not.
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    base = f"http://{args.host}:{args.port}"
    print(
        "\nSIPAS is starting\n"
        f"  API:     {base}/api/v1\n"
        f"  Docs:    {base}/docs\n"
        f"  Ready:   {base}/readyz\n",
        flush=True,
    )
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=20,
    )
    return 0


def cmd_db_url(args: argparse.Namespace, settings: Settings) -> int:
    print(_database_url(settings))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sipas", description="SIPAS operator commands")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("migrate", help="apply database migrations (to head by default)")
    p.add_argument("--revision", default="head")
    p.set_defaults(handler=cmd_migrate)

    p = sub.add_parser("serve", help="migrate, then serve the API with uvicorn")
    p.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1")))
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("db-url", help="print the database URL the service would use")
    p.set_defaults(handler=cmd_db_url)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, get_settings())
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # an operator wants one clear line, not a traceback
        print(f"sipas {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
