"""Holes 8 and 14 of the attack run: the development key and demo accounts outside a laptop,
and a database role that could rewrite its own history."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.cli import demo_wanted
from app.config import DEFAULT_SECRET, Settings
from app.db import Database, _asyncpg_dsn, drop_database, ensure_database
from app.db_roles import (
    RoleSetupError,
    connected_role_problems,
    ensure_app_role,
    grant_app_privileges,
    with_user,
)
from app.main import create_app
from app.models.identity import Role, Scope, User
from app.security import issue_token
from tests.factories import make_user

# ---- hole 8: the development key outside development -----------------------------------------


def _unset_settings(database_url: str, **values: Any) -> Settings:
    """Settings as an operator who set only DATABASE_URL gets them (ENVIRONMENT unset)."""
    return Settings(_env_file=None, database_url=database_url, log_level="WARNING", **values)


@pytest.fixture
def no_secret_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SECRET_KEY", "ENVIRONMENT", "SIPAS_DEMO", "DATABASE_OWNER_URL"):
        monkeypatch.delenv(name, raising=False)


def _token(settings: Settings, user: User, secret: str) -> dict[str, str]:
    token, _ = issue_token(
        kind="user",
        subject_id=user.id,
        version=user.token_version,
        scopes=[s.value for s in Scope],
        secret=secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        lifetime=timedelta(minutes=5),
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.usefixtures("no_secret_in_env")
async def test_hole_8_without_secret_key_a_random_key_kept_in_the_database_signs(
    database_url: str, db: Database, session: AsyncSession
) -> None:
    """DATABASE_URL set, SECRET_KEY and ENVIRONMENT unset: a token forged with the public
    development key is refused; two workers starting together sign with the same random key."""
    settings = _unset_settings(database_url)
    assert settings.environment == "development"
    assert not settings.has_secret_key
    # "workers" racing at start-up read one key
    keys = await asyncio.gather(*(_key_of(create_app(settings, database=db)) for _ in range(4)))
    assert len(set(keys)) == 1
    [key] = set(keys)
    assert key != DEFAULT_SECRET
    assert len(key) >= 32

    admin = await make_user(session, Role.admin)
    first = create_app(settings, database=db)

    @asynccontextmanager
    async def in_test_transaction(_: Database) -> AsyncIterator[AsyncSession]:
        yield session

    first.state.session_scope = in_test_transaction
    async with first.router.lifespan_context(first):
        effective: Settings = first.state.settings
        transport = httpx.ASGITransport(app=first, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            forged = await c.get("/api/v1/me", headers=_token(effective, admin, DEFAULT_SECRET))
            assert forged.status_code == 401, forged.text
            signed = await c.get("/api/v1/me", headers=_token(effective, admin, key))
            assert signed.status_code == 200, signed.text


async def _key_of(app: FastAPI) -> str:
    async with app.router.lifespan_context(app):
        settings: Settings = app.state.settings
        return settings.secret_key.get_secret_value()


@pytest.mark.usefixtures("no_secret_in_env")
def test_hole_8_demo_accounts_only_on_the_embedded_database_or_when_asked(
    database_url: str,
) -> None:
    assert demo_wanted(Settings(_env_file=None)) is True  # embedded: a laptop
    assert demo_wanted(_unset_settings(database_url)) is False
    assert demo_wanted(_unset_settings(database_url, sipas_demo=True)) is True
    assert demo_wanted(Settings(_env_file=None, sipas_demo=False)) is False
    production = {"environment": "production", "secret_key": SecretStr("k" * 40)}
    assert demo_wanted(_unset_settings(database_url, **production)) is False
    with pytest.raises(ValidationError, match="SIPAS_DEMO"):
        _unset_settings(database_url, sipas_demo=True, **production)
    # a short key is refused whatever the environment (tests excepted)
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        _unset_settings(database_url, secret_key=SecretStr("short-dev-key"))

    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "production",
        "SECRET_KEY": "k" * 40,
        "LOG_LEVEL": "ERROR",
    }
    refused = subprocess.run(
        [sys.executable, "-m", "app.cli", "seed", "--demo-accounts"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 2
    assert "--demo-accounts" in refused.stderr


# ---- hole 14: the database guards its history ------------------------------------------------


async def _refused(conn: AsyncConnection, statement: str) -> str:
    """Run `statement` in a savepoint; it must fail. Returns the error text."""
    savepoint = await conn.begin_nested()
    try:
        await conn.execute(sa.text(statement))
    except DBAPIError as exc:
        await savepoint.rollback()
        return str(exc.orig)
    await savepoint.rollback()
    raise AssertionError(f"{statement!r} was allowed")


async def test_hole_14_truncate_reports_is_refused_even_to_the_owner(
    connection: AsyncConnection,
) -> None:
    # Plain TRUNCATE stops at the tables that refer to reports; CASCADE reaches the trigger.
    await _refused(connection, "TRUNCATE reports")
    error = await _refused(connection, "TRUNCATE reports CASCADE")
    assert "reports are immutable: TRUNCATE refused" in error
    assert "append-only" in await _refused(connection, "TRUNCATE audit_events")


async def test_hole_14_the_app_role_can_write_rows_but_not_the_schema_or_the_history(
    connection: AsyncConnection,
) -> None:
    """Inside the test's transaction (so the role disappears with it): the role `sipas migrate`
    creates and grants, then acting as it."""
    role = f"sipas_app_test_{uuid.uuid4().hex[:10]}"
    created = await ensure_app_role(connection, role)
    assert created.created
    again = await ensure_app_role(connection, role)  # an existing role is left as it is
    assert not again.created
    await grant_app_privileges(connection, role)
    await grant_app_privileges(connection, role)  # idempotent

    owner = str(await connection.scalar(sa.text("SELECT current_user")))
    with pytest.raises(RoleSetupError, match="owns the schema"):
        await ensure_app_role(connection, owner)
    powerful = f"sipas_super_test_{uuid.uuid4().hex[:10]}"
    await connection.execute(sa.text(f'CREATE ROLE "{powerful}" LOGIN CREATEDB'))
    with pytest.raises(RoleSetupError, match="CREATEDB"):
        await ensure_app_role(connection, powerful)

    await connection.execute(sa.text(f'SET LOCAL ROLE "{role}"'))
    assert await connected_role_problems(connection) == []
    for statement in (
        "TRUNCATE reports",
        "TRUNCATE audit_events",
        "TRUNCATE submissions",
        "ALTER TABLE reports DISABLE TRIGGER reports_immutable",
        "ALTER TABLE audit_events DISABLE TRIGGER USER",
        "DROP TABLE reports",
        "DROP TRIGGER reports_immutable ON reports",
        "CREATE TABLE sneaky (id int)",
        "UPDATE audit_events SET action = 'x'",
        "DELETE FROM submission_versions",
        "UPDATE alembic_version SET version_num = '0001'",
        "CREATE ROLE sneaky_role",
    ):
        error = await _refused(connection, statement)
        assert "permission denied" in error or "must be owner" in error, (statement, error)

    # what the service does all day still works: rows written, read, changed and removed,
    # sequences and functions used, history appended
    code = f"ops-{uuid.uuid4().hex[:8]}"
    await connection.execute(
        sa.text(
            "INSERT INTO sectors (code, name_vi, search_name) "
            "VALUES (:c, 'Lĩnh vực thử', 'linh vuc thu')"
        ),
        {"c": code},
    )
    await connection.execute(
        sa.text("UPDATE sectors SET name_vi = 'Lĩnh vực đã sửa' WHERE code = :c"), {"c": code}
    )
    await connection.execute(
        sa.text("INSERT INTO audit_events (action, actor_type) VALUES ('ops.test', 'system')")
    )
    await connection.execute(sa.text("DELETE FROM sectors WHERE code = :c"), {"c": code})
    await connection.execute(sa.text("LOCK TABLE agencies IN SHARE ROW EXCLUSIVE MODE"))
    assert await connection.scalar(sa.text("SELECT count(*) FROM alembic_version")) == 1


async def test_hole_14_sipas_migrate_creates_and_grants_the_app_role(database_url: str) -> None:
    """The real command on an empty database: migrations as the owner, an app role created with
    a password, and a real login as that role that can neither truncate, disable a trigger,
    drop nor create, but writes rows. A second run changes nothing and still succeeds."""
    scratch = make_url(database_url).set(database=f"{make_url(database_url).database}_roles")
    owner_url = scratch.render_as_string(hide_password=False)
    role = f"sipas_app_test_{uuid.uuid4().hex[:10]}"
    password = f"pw-{uuid.uuid4().hex}:%'x"  # characters a careless quoting would break on
    app_url = with_user(owner_url, role, password)
    await drop_database(owner_url)
    await ensure_database(owner_url)
    env = {
        **os.environ,
        "DATABASE_OWNER_URL": owner_url,
        "DATABASE_URL": app_url,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "ERROR",
    }
    try:
        for attempt in ("first", "second"):
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "app.cli", "migrate"],
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, (attempt, done.stderr)
            assert f"app role {role}" in done.stdout
            assert password not in done.stdout + done.stderr

        conn = await asyncpg.connect(_asyncpg_dsn(app_url))
        try:
            assert await conn.fetchval("SELECT current_user") == role
            for statement in (
                "TRUNCATE reports",
                "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
                "DROP TABLE submissions",
                "CREATE TABLE sneaky (id int)",
            ):
                with pytest.raises(asyncpg.PostgresError) as refused:
                    await conn.execute(statement)
                assert isinstance(
                    refused.value,
                    asyncpg.InsufficientPrivilegeError,
                ), (statement, refused.value)
            await conn.execute(
                "INSERT INTO sectors (code, name_vi, search_name) "
                "VALUES ('ops-role', 'Lĩnh vực thử', 'linh vuc thu')"
            )
            # the built-in questionnaires were installed through the app role
            assert await conn.fetchval("SELECT count(*) FROM questionnaires") >= 3
        finally:
            await conn.close()

        # the demo loads through the app role too (publishing SIPAS 2019 included), and on a
        # server that is not the embedded one it creates no demo account unless asked (hole 8)
        seeded = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "app.cli", "seed"],
            capture_output=True,
            text=True,
            env={**env, "ENVIRONMENT": "development"},
            timeout=300,
            check=False,
        )
        assert seeded.returncode == 0, seeded.stderr
        assert "demo accounts not created" in seeded.stdout
        assert "demo-admin-2026" not in seeded.stdout
        conn = await asyncpg.connect(_asyncpg_dsn(app_url))
        try:
            assert await conn.fetchval("SELECT count(*) FROM users") == 0
            assert await conn.fetchval("SELECT count(*) FROM reports") == 1
            key = await conn.fetchval("SELECT count(*) FROM instance_secrets")
            assert key == 0  # the CLI signs nothing; the first server start makes the key
        finally:
            await conn.close()
    finally:
        await drop_database(owner_url)
        admin = await asyncpg.connect(_asyncpg_dsn(database_url))
        try:
            await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        finally:
            await admin.close()


async def test_hole_14_production_refuses_to_serve_as_a_role_that_owns_the_tables(
    database_url: str,
) -> None:
    """The test database's role is the superuser that migrated it: fine for tests, refused in
    production, where the service must connect as the app role."""
    settings = Settings(
        _env_file=None,
        environment="production",
        database_url=database_url,
        secret_key=SecretStr("k" * 40),
        log_level="WARNING",
    )
    app = create_app(settings)
    with pytest.raises(RuntimeError, match="owns tables"):
        async with app.router.lifespan_context(app):
            pass
