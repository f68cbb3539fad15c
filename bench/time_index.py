"""Time the live index in-process, request after request, on an existing database.

    .venv/bin/python -m bench.time_index --database sipas --group-by agency --repeats 7

Uses the campaign with the most forms in that database (the embedded server unless
DATABASE_URL is set); prints the seconds of each computation, so plan changes between runs
show up as a jump."""

from __future__ import annotations

import argparse
import asyncio
import time

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app.config import get_settings
from app.db import create_database
from app.main import resolve_database_url
from app.services.index.compute import campaign_index
from app.services.reports import SYSTEM


async def run(database: str, group_by: str, repeats: int) -> None:
    settings = get_settings()
    url = make_url(resolve_database_url(settings)).set(database=database)
    db = create_database(url.render_as_string(hide_password=False), settings)
    try:
        async with db.sessionmaker() as session:
            campaign_id, forms = (
                await session.execute(
                    sa.text(
                        "SELECT campaign_id, count(*) FROM submissions "
                        "GROUP BY campaign_id ORDER BY count(*) DESC LIMIT 1"
                    )
                )
            ).one()
            print(f"{forms} forms, group_by={group_by}")
            for i in range(repeats):
                started = time.perf_counter()
                await campaign_index(session, SYSTEM, campaign_id, group_by=group_by)
                print(f"  request {i + 1}: {time.perf_counter() - started:.2f} s")
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="sipas")
    parser.add_argument("--group-by", default="agency")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(run(args.database, args.group_by, args.repeats))


if __name__ == "__main__":
    main()
