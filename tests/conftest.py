"""Test harness: real PostgreSQL, schema built by Alembic, one rolled-back transaction a test.

The database is the embedded server under ./.data (database `sipas_test`) unless
TEST_DATABASE_URL names another; either way its public schema is dropped and rebuilt by
`alembic upgrade head` once per session. Under pytest-xdist (`make test` runs `-n auto`) each
worker has a database of its own on that same server, named after the worker: `sipas_test_gw0`,
`sipas_test_gw1`... on the embedded server, `<name>_gw0`... next to TEST_DATABASE_URL's (created
when missing). Whatever a test derives from its database's name (scratch databases) is therefore
the worker's own, and roles it creates carry random names: workers share nothing but the server.
The workers' databases are copies (CREATE DATABASE ... TEMPLATE) of one database migrated once
per run, `sipas_test_template` (`<name>_template`), instead of each migrating its own.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from app import security
from app.config import Settings, async_url
from app.db import Database, _asyncpg_dsn, create_database, ensure_database, session_scope
from app.main import create_app
from app.models.audit import AuditEvent
from app.schema import upgrade
from tests.factories import role_headers

T = TypeVar("T")
TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256-0123456789"


def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking code (Alembic calls asyncio.run) outside the test event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def run_async(coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return in_thread(lambda: asyncio.run(coro()))


def xdist_worker() -> str | None:
    """The pytest-xdist worker running this process (`gw0`, `gw1`...), None when not under xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER") or None


def per_worker(url: str, worker: str | None) -> str:
    """`url` with the database named after the xdist worker: `test` -> `test_gw0`."""
    if worker is None:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


def base_test_url_of_run() -> str:
    """TEST_DATABASE_URL, or `sipas_test` on the embedded server (started or joined here)."""
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        return async_url(explicit)
    from app.embedded import embedded_server_url

    return embedded_server_url(Path(".data"), "sipas_test")


def base_test_url() -> str:
    return per_worker(base_test_url_of_run(), xdist_worker())


async def reset_schema(url: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


def make_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": url,
        "secret_key": TEST_SECRET,
        "max_body_bytes": 64 * 1024,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


# Under xdist (--dist loadgroup) each test goes to the next idle worker in collection order, and
# the slowest tests (subprocesses, scratch databases, thousands of index reads) were collected
# last: the run ended with one worker finishing one of them while the other had nothing left.
# They go first; the order of every other test is kept.
LONG_FIRST = (
    "tests/test_secret_and_roles.py",
    "tests/test_cli.py",
    "tests/api/test_index_rollups.py",
    "tests/test_citus_ready.py",
    "tests/api/test_submission_concurrency.py",
    "tests/browser/test_public_site.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(LONG_FIRST))


# Argon2id as the app hashes passwords, at the cost parameters' minimum instead of pwdlib's
# defaults (64 MiB, 3 passes, 4 lanes: about 0.4 s a hash or check on this machine, and the
# suite logs in hundreds of times). Tests check what the hash is for, never how slow it is;
# hashes made elsewhere (a `sipas` subprocess) carry their parameters and verify as before.
TEST_HASHER = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(security, "_hasher", lambda: TEST_HASHER)
        security._dummy_hash.cache_clear()
        yield
    security._dummy_hash.cache_clear()


def migrate(url: str) -> None:
    run_async(lambda: reset_schema(url))
    in_thread(upgrade, url)


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


TEMPLATE_LOCK = 18_2026  # the advisory lock the workers of a run take in turn (any constant)


async def copy_of_template(url: str, template: str, run: str) -> None:
    """Make `url`'s database afresh as a copy of `template`, which the first worker of the run
    `run` (re)builds by migrating it; the run is written in the template's comment."""
    name, template_name = make_url(url).database or "", make_url(template).database or ""
    conn = await asyncpg.connect(_asyncpg_dsn(url, "postgres"))
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", TEMPLATE_LOCK)
        built_for = await conn.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            template_name,
        )
        if built_for != run:
            await ensure_database(template)
            await asyncio.to_thread(migrate, template)
            comment = "'" + run.replace("'", "''") + "'"
            await conn.execute(f"COMMENT ON DATABASE {quoted(template_name)} IS {comment}")
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted(name)} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {quoted(name)} TEMPLATE {quoted(template_name)}")
    finally:
        await conn.close()  # the advisory lock goes with the connection


@pytest.fixture(scope="session")
def database_url() -> str:
    base, worker = base_test_url_of_run(), xdist_worker()
    url = per_worker(base, worker)
    if worker is not None:
        run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
        run_async(lambda: copy_of_template(url, per_worker(base, "template"), f"run {run}"))
        return url
    if not os.environ.get("TEST_DATABASE_URL"):
        run_async(lambda: ensure_database(url))
    migrate(url)
    return url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
async def db(settings: Settings, database_url: str) -> AsyncIterator[Database]:
    database = create_database(database_url, settings)
    yield database
    await database.dispose()


@pytest.fixture
async def connection(db: Database) -> AsyncIterator[AsyncConnection]:
    async with db.engine.connect() as conn:
        outer = await conn.begin()
        try:
            yield conn
        finally:
            await outer.rollback()


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """A session whose commits are savepoints inside the test's rolled-back transaction."""
    async with AsyncSession(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    ) as s:
        yield s


@pytest.fixture(scope="session")
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, database=db)


WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
async def client(app: FastAPI, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    """The real app on the test's transaction. After the test, every successful write it made
    must have left at least one audit event carrying its request id (dry runs and idempotent
    replays, which change nothing, excepted)."""

    @asynccontextmanager
    async def in_test_transaction(_: Database) -> AsyncIterator[AsyncSession]:
        # Each request is its own savepoint inside the test's transaction, as it would be its own
        # transaction in production: a failed request undoes its work, not the test's setup.
        request_tx = await session.begin_nested()
        try:
            yield session
        except BaseException:
            await request_tx.rollback()
            raise
        else:
            await request_tx.commit()

    writes: list[tuple[str, str]] = []

    async def remember(response: httpx.Response) -> None:
        request = response.request
        if (
            request.method in WRITE_METHODS
            and response.is_success
            and request.url.params.get("dry_run") not in ("true", "1")
            and response.headers.get("idempotent-replayed") != "true"
        ):
            writes.append(
                (f"{request.method} {request.url.path}", response.headers["x-request-id"])
            )

    # The app's transaction made a savepoint of the test's (app/deps.py, get_session); not a
    # dependency override, which makes FastAPI analyse every dependency again on each request.
    app.state.session_scope = in_test_transaction
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    # The suite reads problems in English (the API's default is Vietnamese, tested on its own).
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://test",
        event_hooks={"response": [remember]},
        headers={"Accept-Language": "en"},
    ) as c:
        yield c
    app.state.session_scope = session_scope

    if writes:
        audited = set(
            (
                await session.scalars(
                    sa.select(col(AuditEvent.request_id)).where(
                        col(AuditEvent.request_id).in_([rid for _, rid in writes])
                    )
                )
            ).all()
        )
        unaudited = [what for what, rid in writes if rid not in audited]
        assert not unaudited, f"writes without an audit event: {unaudited}"


PeerClient = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def peer_client(
    app: FastAPI, client: httpx.AsyncClient, database_url: str, db: Database
) -> AsyncIterator[PeerClient]:
    """`peer_client(peer, **settings)`: a client of the real app on the test's transaction (as
    `client`), whose requests come from the socket address `peer`; with settings given, of an
    app built with them (middleware settings such as TRUSTED_PROXIES apply at build time)."""
    opened: list[httpx.AsyncClient] = []

    def make(peer: str = "127.0.0.1", **overrides: Any) -> httpx.AsyncClient:
        target = app
        if overrides:
            target = create_app(make_settings(database_url, **overrides), database=db)
            target.state.session_scope = app.state.session_scope  # the test's transaction
        transport = httpx.ASGITransport(
            app=target, raise_app_exceptions=False, client=(peer, 40000)
        )
        made = httpx.AsyncClient(transport=transport, base_url="http://test")
        opened.append(made)
        return made

    yield make
    for made in opened:
        await made.aclose()


@pytest.fixture
async def admin(session: AsyncSession, settings: Settings) -> dict[str, str]:
    """The bearer headers of a new admin (other roles: `tests.factories.role_headers`)."""
    return await role_headers(session, settings)
