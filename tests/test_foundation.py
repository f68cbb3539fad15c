"""The skeleton: probes, migrations, the transaction rule and the settings guard."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydantic import SecretStr, ValidationError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import DEFAULT_SECRET, Settings
from app.db import Database, create_database, drop_database, ensure_database
from app.deps import SessionDep
from app.main import create_app
from app.schema import alembic_config, head_revision
from tests.conftest import in_thread, make_settings
from tests.factories import role_headers
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


def _samples(body: str) -> list[Sample]:
    """Every sample of a /metrics answer, read by prometheus_client's own parser (which refuses
    text that is not the exposition format)."""
    return [s for family in text_string_to_metric_families(body) for s in family.samples]


def _requests(body: str, **labels: str) -> float:
    return sum(
        s.value
        for s in _samples(body)
        if s.name == "sipas_requests_total" and labels.items() <= s.labels.items()
    )


async def test_metrics_count_requests(client: httpx.AsyncClient) -> None:
    def healthz_count(body: str) -> int:
        return int(_requests(body, method="GET", status="200"))

    before = healthz_count((await client.get("/metrics")).text)
    await client.get("/healthz")
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    assert healthz_count(response.text) >= before + 3  # two probes and the first scrape
    assert "sipas_request_duration_seconds_bucket" in response.text


async def test_metrics_label_routes_by_template_and_status(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Requests are counted by the route that answered, written as its template, never the raw
    path (whose ids would make a label set without end); a path no route matches is one label."""
    admin = await role_headers(session, settings)
    template = "/api/v1/campaigns/{campaign_id}"
    before = (await client.get("/metrics")).text
    missing = f"/api/v1/campaigns/{uuid.uuid4()}"
    assert (await client.get(missing, headers=admin)).status_code == 404
    assert (await client.get(missing)).status_code == 401
    assert (await client.get(f"/no-such-page-{uuid.uuid4()}")).status_code == 404
    after = (await client.get("/metrics")).text
    for labels in (
        {"route": template, "status": "404", "method": "GET"},
        {"route": template, "status": "401", "method": "GET"},
        {"route": "unmatched", "status": "404", "method": "GET"},
    ):
        assert _requests(after, **labels) == _requests(before, **labels) + 1, labels
    assert missing not in after
    durations = [
        s
        for s in _samples(after)
        if s.name == "sipas_request_duration_seconds_count" and s.labels["route"] == template
    ]
    assert durations
    assert durations[0].value >= 2


async def test_metrics_show_the_caches(client: httpx.AsyncClient) -> None:
    """Every declared cache made by the process reports its figures under its name."""
    from app import cache as caches
    from app.services import reports  # noqa: F401 - makes the reports.renderings cache

    text = (await client.get("/metrics")).text
    names = {s.labels.get("cache") for s in _samples(text) if s.name.startswith("sipas_cache_")}
    assert "reports.renderings" in names
    assert {s.name for s in caches.all_stats()} <= names
    budget = next(
        s
        for s in _samples(text)
        if s.name == "sipas_cache_budget_bytes" and s.labels["cache"] == "reports.renderings"
    )
    assert budget.value == caches.BUDGETS["reports.renderings"].max_bytes


def test_metrics_sum_every_worker_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set (as `sipas serve --workers N` sets it), each process
    writes its counts there and whichever answers /metrics reports the sum of them all."""
    from app.cli import _metrics_dir

    # set, then unset: the environment is restored after the test whatever _metrics_dir did
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    assert _metrics_dir(1) is None
    made = _metrics_dir(2)
    assert made is not None
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == made
    assert _metrics_dir(2) is None  # a directory named already is the operator's
    Path(made).rmdir()

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    one_request = "from app import metrics; metrics.observe('GET', '/healthz', 200, 0.01)"
    for _ in range(2):  # two worker processes, one request each
        subprocess.run([sys.executable, "-c", one_request], env=env, check=True, timeout=60)  # noqa: S603
    scrape = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from app import metrics; sys.stdout.write(metrics.render().decode())",
        ],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    assert _requests(scrape, route="/healthz", status="200", method="GET") == 2


async def test_objects_made_at_start_up_are_frozen_out_of_the_collector(
    settings: Settings, db: Database
) -> None:
    """Once started, what the app made lives as long as the process: full collections, which a
    batch of forms sets off, no longer walk it; what requests make later is collected as usual."""
    import gc
    import weakref

    class Node:
        other: object = None

    gc.unfreeze()  # an earlier start-up in this process froze what it found
    try:
        assert gc.get_freeze_count() == 0
        app = create_app(settings, database=db)
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 0
            a, b = Node(), Node()
            a.other, b.other = b, a  # a cycle only the collector frees
            gone = weakref.ref(a)
            del a, b
            gc.collect()
            assert gone() is None
    finally:
        gc.unfreeze()
