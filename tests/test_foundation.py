"""The skeleton: probes, migrations, the transaction rule and the settings guard."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.config import DEFAULT_SECRET, Settings
from app.db import Database, create_database, drop_database, ensure_database
from app.deps import SessionDep
from app.main import create_app
from app.schema import alembic_config, head_revision
from tests.conftest import in_thread, make_settings
from tests.helpers.problems import assert_problem


def _cfg(url: str) -> Config:
    cfg = alembic_config(url)
    cfg.attributes["configure_logger"] = False
    return cfg


@pytest.fixture
async def scratch(database_url: str) -> AsyncIterator[str]:
    """An empty database of its own on the same server, dropped afterwards."""
    name = f"{make_url(database_url).database}_scratch"
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    await drop_database(url)
    await ensure_database(url)
    yield url
    await drop_database(url)


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        return {r[0] for r in rows}


async def test_migrations_round_trip_without_drift(scratch: str, settings: Settings) -> None:
    cfg = _cfg(scratch)
    in_thread(command.upgrade, cfg, "head")
    in_thread(command.check, cfg)  # raises when the models and the migrations disagree
    db = create_database(scratch, settings)
    try:
        assert "alembic_version" in await _tables(db)
        in_thread(command.downgrade, cfg, "base")
        assert await _tables(db) <= {"alembic_version"}
        in_thread(command.upgrade, cfg, "head")
        async with db.engine.connect() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        assert version == head_revision()
    finally:
        await db.dispose()


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_ready_at_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["schema"] == head_revision()


async def test_readyz_503_when_schema_behind_or_missing(scratch: str) -> None:
    settings = make_settings(scratch)
    db = create_database(scratch, settings)
    app = create_app(settings, database=db)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            body = assert_problem(await c.get("/readyz"), 503, "database_unavailable")
            assert "Traceback" not in str(body)

            cfg = _cfg(scratch)
            in_thread(command.upgrade, cfg, "head")
            assert (await c.get("/readyz")).status_code == 200
            in_thread(command.downgrade, cfg, "-1")
            response = await c.get("/readyz")
            assert_problem(response, 503, "schema_not_current")
            assert response.headers["retry-after"] == "5"
    finally:
        await db.dispose()


async def test_failed_commit_is_never_a_success(settings: Settings, db: Database) -> None:
    """The commit runs before the response is sent: a commit that fails becomes an error."""
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE commit_probe (id int, "
                "CONSTRAINT commit_probe_uq UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    app: FastAPI = create_app(settings, database=db)

    @app.post("/test-only/write-twice", status_code=201)
    async def write_twice(session: SessionDep) -> dict[str, str]:
        await session.execute(text("INSERT INTO commit_probe VALUES (1), (1)"))
        return {"status": "created"}  # the deferred unique check fails only at COMMIT

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.post("/test-only/write-twice")
        body = assert_problem(response, 409, "conflict")
        assert body["constraint"] == "commit_probe_uq"
        async with db.engine.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM commit_probe"))).scalar()
        assert count == 0
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text("DROP TABLE commit_probe"))


def test_production_refuses_default_or_short_secret() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment="production")
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment="production", secret_key=SecretStr("short"))
    ok = Settings(_env_file=None, environment="production", secret_key=SecretStr("k" * 40))
    assert ok.secret_key.get_secret_value() != DEFAULT_SECRET


def test_database_url_is_pointed_at_asyncpg() -> None:
    s = Settings(_env_file=None, database_url="postgresql://u@h:5432/d")
    assert s.database_url == "postgresql+asyncpg://u@h:5432/d"
    with pytest.raises(ValidationError):
        Settings(_env_file=None, database_url="sqlite:///x.db")


async def test_openapi_describes_the_service(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["info"]["title"] == "SIPAS API"
    assert "Bearer" in doc["info"]["description"]
    docs = await client.get("/docs")
    assert docs.status_code == 200


async def test_metrics_count_requests(client: httpx.AsyncClient) -> None:
    def healthz_count(text: str) -> int:
        lines = [
            line
            for line in text.splitlines()
            if line.startswith('sipas_requests_total{method="GET",status="200"')
        ]
        return int(lines[0].rsplit(" ", 1)[1]) if lines else 0

    before = healthz_count((await client.get("/metrics")).text)
    await client.get("/healthz")
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    assert healthz_count(response.text) >= before + 3  # two probes and the first scrape
    assert "sipas_request_duration_seconds_bucket" in response.text
