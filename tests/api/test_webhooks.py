"""Webhooks: subscriptions, signed delivery to a real receiver on 127.0.0.1, retries on a
controllable clock, dead letters and their replay, pausing, agency bounds, target rules."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.db import Database
from app.main import create_app
from app.models.agency import Agency
from app.models.audit import AuditEvent
from app.models.campaign import Campaign, CampaignState
from app.models.event import EventType, WebhookDelivery, WebhookSubscription
from app.models.identity import Role, Scope
from app.services import events
from app.services.events import delivery
from app.services.events.worker import Worker
from tests.conftest import make_settings
from tests.factories import bearer, make_agency, make_campaign, make_client, make_user
from tests.helpers.problems import assert_problem
from tests.helpers.receiver import receiver, verify

ANSWERS = {"E1.C1": 5, "E1.C2": 4, "E2.C1": 3, "R.GENDER": "nu"}
T0 = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def hook_settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        webhook_allowed_hosts=["127.0.0.1"],
        webhook_allow_http=True,
        webhook_retry_jitter=0,
        webhook_retry_schedule=[5, 30, 120],
    )


@pytest.fixture(scope="module")
def app(hook_settings: Settings, db: Database) -> FastAPI:
    """The app with webhooks allowed to the test's receiver (http on 127.0.0.1)."""
    return create_app(hook_settings, database=db)


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.at = start

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@dataclass
class World:
    province: Agency
    district: Agency
    other: Agency
    campaign: Campaign
    kiosk: dict[str, str]
    admin: dict[str, str]
    subscriber_id: uuid.UUID
    subscriber: dict[str, str]


@pytest.fixture
async def world(session: AsyncSession, hook_settings: Settings) -> World:
    province = await make_agency(session, level="province")
    district = await make_agency(session, parent=province, level="district")
    other = await make_agency(session, parent=province, level="district")
    campaign = await make_campaign(session, agencies=[province], state=CampaignState.open)
    kiosk, _ = await make_client(session, [Scope.submissions_write])
    admin = await make_user(session, Role.admin)
    sub, _ = await make_client(session, [Scope.webhooks_write, Scope.events_read])
    return World(
        province,
        district,
        other,
        campaign,
        bearer(hook_settings, kiosk),
        bearer(hook_settings, admin),
        sub.id,
        bearer(hook_settings, sub),
    )


def make_worker(
    session: AsyncSession, settings: Settings, http: httpx.AsyncClient, clock: Clock
) -> Worker:
    @asynccontextmanager
    async def transaction() -> AsyncIterator[AsyncSession]:
        async with session.begin_nested():
            yield session

    return Worker(transaction, settings, http, now=clock, rand=lambda: 0.5)


async def subscribe(client: httpx.AsyncClient, w: World, url: str, **extra: Any) -> dict[str, Any]:
    body = {"url": url, "event_types": ["submission.accepted"], "agency_id": str(w.province.id)}
    body.update(extra)
    r = await client.post("/api/v1/webhooks/subscriptions", json=body, headers=w.subscriber)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def submit(client: httpx.AsyncClient, w: World, agency: Agency) -> dict[str, Any]:
    r = await client.post(
        f"/api/v1/campaigns/{w.campaign.id}/submissions",
        json={
            "submission_id": str(uuid.uuid4()),
            "agency_code": agency.code,
            "channel": "kiosk",
            "answers": ANSWERS,
        },
        headers=w.kiosk,
    )
    assert r.status_code == 201, r.text
    form: dict[str, Any] = r.json()
    return form


async def delivery_row(session: AsyncSession, subscription_id: str) -> WebhookDelivery:
    rows = (
        await session.scalars(
            sa.select(WebhookDelivery).where(
                col(WebhookDelivery.subscription_id) == uuid.UUID(subscription_id)
            )
        )
    ).all()
    assert len(rows) == 1
    await session.refresh(rows[0])
    return rows[0]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5, follow_redirects=False, trust_env=False) as c:
        yield c


async def test_a_committed_form_is_delivered_signed_as_the_specification_says(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    hook_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    clock = Clock()
    with receiver() as rx:
        sub = await subscribe(client, world, rx.url)
        assert sub["secret"].startswith("whsec_")
        form = await submit(client, world, world.district)
        worker = make_worker(session, hook_settings, http, clock)
        assert await worker.run_once() == 1
        assert len(rx.requests) == 1
        got = rx.requests[0]
        assert verify(sub["secret"], got.headers, got.body)
        assert not verify("whsec_" + "A" * 44, got.headers, got.body)
        assert got.headers["webhook-timestamp"] == str(int(T0.timestamp()))
        assert got.headers["content-type"] == "application/json"
        event = got.json
        assert event["id"] == got.headers["webhook-id"]
        assert event["type"] == "submission.accepted"
        assert event["version"] == 1
        assert event["data"]["id"] == form["id"]
        assert event["data"]["submission_id"] == form["submission_id"]
        assert event["data"]["agency_id"] == str(world.district.id)
        assert "answers" not in event["data"]
        # Delivered once: the next rounds send nothing.
        assert await worker.run_once() == 0
        assert len(rx.requests) == 1
        row = await delivery_row(session, sub["id"])
        assert (row.state, row.attempts, row.last_status) == ("delivered", 1, 200)


async def test_failures_are_retried_on_the_schedule_and_retry_after_is_honoured(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    hook_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    clock = Clock()
    with receiver() as rx:
        rx.plan = [(503, {}), (429, {"Retry-After": "100"}), (404, {})]
        sub = await subscribe(client, world, rx.url)
        await submit(client, world, world.district)
        worker = make_worker(session, hook_settings, http, clock)
        await worker.run_once()  # attempt 1 at T0: 503, next after 5 s
        clock.advance(4.9)
        await worker.run_once()
        assert len(rx.requests) == 1
        clock.advance(0.1)
        await worker.run_once()  # attempt 2 at T0+5: 429 asks for 100 s (the schedule: 30)
        assert len(rx.requests) == 2
        clock.advance(99)
        await worker.run_once()
        assert len(rx.requests) == 2
        clock.advance(1)
        await worker.run_once()  # attempt 3 at T0+105: 404 is a failure too, next after 120 s
        assert len(rx.requests) == 3
        clock.advance(119)
        await worker.run_once()
        assert len(rx.requests) == 3
        clock.advance(1)
        await worker.run_once()  # attempt 4: 200
        assert len(rx.requests) == 4
        assert len({r.headers["webhook-id"] for r in rx.requests}) == 1
        assert len({r.body for r in rx.requests}) == 1  # the frozen payload, every time
        row = await delivery_row(session, sub["id"])
        assert (row.state, row.attempts) == ("delivered", 4)


async def test_after_the_last_try_a_dead_letter_that_an_admin_replays(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    hook_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    clock = Clock()
    settings = hook_settings.model_copy(update={"webhook_retry_schedule": [5]})
    with receiver() as rx:
        rx.default = 500
        sub = await subscribe(client, world, rx.url)
        await submit(client, world, world.district)
        await submit(client, world, world.district)
        worker = make_worker(session, settings, http, clock)
        await worker.run_once()
        clock.advance(5)
        await worker.run_once()
        assert len(rx.requests) == 4
        dead = await client.get(
            "/api/v1/webhooks/deliveries", params={"state": "dead"}, headers=world.admin
        )
        assert dead.status_code == 200
        mine = [d for d in dead.json()["items"] if d["subscription_id"] == sub["id"]]
        assert len(mine) == 2
        assert all(d["attempts"] == 2 and d["last_status"] == 500 for d in mine)
        clock.advance(3600)
        await worker.run_once()
        assert len(rx.requests) == 4  # dead letters are not retried on their own

        rx.default = 200
        one = await client.post(
            f"/api/v1/webhooks/deliveries/{mine[0]['id']}/replay", headers=world.admin
        )
        assert one.status_code == 200, one.text
        assert one.json()["state"] == "pending"
        again = await client.post(
            f"/api/v1/webhooks/deliveries/{mine[0]['id']}/replay", headers=world.admin
        )
        assert_problem(again, 409, "delivery_not_dead")
        await worker.run_once()
        assert len(rx.requests) == 5
        assert rx.requests[4].headers["webhook-id"] == mine[0]["event_id"]

        bulk = await client.post(
            "/api/v1/webhooks/deliveries/replay",
            json={"subscription_id": sub["id"]},
            headers=world.admin,
        )
        assert bulk.json() == {"replayed": 1}
        await worker.run_once()
        assert len(rx.requests) == 6
        assert rx.requests[5].headers["webhook-id"] == mine[1]["event_id"]
        assert verify(sub["secret"], rx.requests[5].headers, rx.requests[5].body)


async def test_a_subscription_that_keeps_failing_is_paused_and_the_audit_says_why(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    hook_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    clock = Clock()
    settings = hook_settings.model_copy(
        update={"webhook_retry_schedule": [], "webhook_pause_after_dead": 2}
    )
    with receiver() as rx:
        rx.default = 502
        sub = await subscribe(client, world, rx.url)
        for _ in range(3):
            await submit(client, world, world.district)
        worker = make_worker(session, settings, http, clock)
        # One at a time, so the pause after the second dead letter is seen before the third.
        worker.settings = settings.model_copy(update={"worker_concurrency": 1})
        for _ in range(4):
            await worker.run_once()
        assert len(rx.requests) == 2
        row = await session.get(WebhookSubscription, uuid.UUID(sub["id"]))
        assert row is not None
        await session.refresh(row)
        assert row.state == "paused"
        assert row.paused_reason is not None
        assert "2 consecutive" in row.paused_reason
        why = (
            await session.scalars(
                sa.select(AuditEvent).where(
                    col(AuditEvent.action) == "webhook.pause",
                    col(AuditEvent.object_id) == sub["id"],
                )
            )
        ).all()
        assert len(why) == 1
        assert why[0].summary["reason"] == row.paused_reason

        # The third event waits for the resume, then goes out.
        rx.default = 200
        r = await client.patch(
            f"/api/v1/webhooks/subscriptions/{sub['id']}",
            json={"state": "active"},
            headers=world.subscriber,
        )
        assert r.status_code == 200
        assert r.json()["state"] == "active"
        await worker.run_once()
        assert len(rx.requests) == 3


async def test_410_gone_pauses_the_subscription_at_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    hook_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    with receiver() as rx:
        rx.default = 410
        sub = await subscribe(client, world, rx.url)
        await submit(client, world, world.district)
        worker = make_worker(session, hook_settings, http, Clock())
        await worker.run_once()
        got = await client.get(
            f"/api/v1/webhooks/subscriptions/{sub['id']}", headers=world.subscriber
        )
        assert got.json()["state"] == "paused"
        assert "410" in got.json()["paused_reason"]
        row = await delivery_row(session, sub["id"])
        assert row.state == "pending"  # kept for a resume


async def test_a_rotated_secret_signs_beside_the_old_one_during_the_overlap(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    hook_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    with receiver() as rx:
        sub = await subscribe(client, world, rx.url)
        r = await client.post(
            f"/api/v1/webhooks/subscriptions/{sub['id']}/rotate-secret",
            json={"overlap_seconds": 3600},
            headers=world.subscriber,
        )
        assert r.status_code == 200, r.text
        new = r.json()["secret"]
        assert new != sub["secret"]
        await submit(client, world, world.district)
        clock = Clock(datetime.now(UTC))
        worker = make_worker(session, hook_settings, http, clock)
        await worker.run_once()
        got = rx.requests[0]
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        assert verify(new, got.headers, got.body)
        assert verify(sub["secret"], got.headers, got.body)
        # After the overlap, the new secret alone.
        await submit(client, world, world.district)
        clock.advance(3601)
        await worker.run_once()
        later = rx.requests[1]
        assert len(later.headers["webhook-signature"].split(" ")) == 1
        assert verify(new, later.headers, later.body)
        assert not verify(sub["secret"], later.headers, later.body)


async def test_an_agency_bound_subscriber_never_gets_another_agency_s_event(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    hook_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    bound, _ = await make_client(
        session, [Scope.webhooks_write, Scope.events_read], agency=world.district
    )
    headers = bearer(hook_settings, bound)
    with receiver() as rx:
        # Its own subtree by default; another agency is refused.
        r = await client.post(
            "/api/v1/webhooks/subscriptions",
            json={"url": rx.url, "event_types": ["submission.accepted", "campaign.transitioned"]},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        assert r.json()["agency_id"] == str(world.district.id)
        secret = r.json()["secret"]
        refused = await client.post(
            "/api/v1/webhooks/subscriptions",
            json={
                "url": rx.url,
                "event_types": ["submission.accepted"],
                "agency_id": str(world.other.id),
            },
            headers=headers,
        )
        body = assert_problem(refused, 422, "invalid")
        assert body["errors"][0]["pointer"] == "/body/agency_id"  # type: ignore[index]

        mine = await submit(client, world, world.district)
        await submit(client, world, world.other)
        closed = await client.post(
            f"/api/v1/campaigns/{world.campaign.id}/transition",
            json={"to": "closed"},
            headers=world.admin,
        )
        assert closed.status_code == 200, closed.text
        await make_worker(session, hook_settings, http, Clock()).run_once()
        assert [r.json["data"]["id"] for r in rx.requests] == [mine["id"]]
        assert verify(secret, rx.requests[0].headers, rx.requests[0].body)


async def test_subscriptions_are_the_owner_s_or_an_admin_s(
    client: httpx.AsyncClient, session: AsyncSession, world: World, hook_settings: Settings
) -> None:
    url = "http://127.0.0.1:9/hook"
    path = "/api/v1/webhooks/subscriptions"
    assert (await client.get(path)).status_code == 401
    kiosk = await client.get(path, headers=world.kiosk)
    assert_problem(kiosk, 403, "forbidden")
    manager = await make_user(session, Role.agency_manager, agency=world.province)
    denied = await client.post(
        path,
        json={"url": url, "event_types": ["report.published"]},
        headers=bearer(hook_settings, manager),
    )
    assert_problem(denied, 403, "forbidden")

    sub = await subscribe(client, world, url)
    other, _ = await make_client(session, [Scope.webhooks_write])
    other_headers = bearer(hook_settings, other)
    for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/rotate-secret")):
        r = await client.request(
            method,
            f"{path}/{sub['id']}{suffix}",
            json={} if method != "GET" else None,
            headers=other_headers,
        )
        assert_problem(r, 404, "not_found")
    assert (await client.get(path, headers=other_headers)).json()["items"] == []
    listed = await client.get(path, headers=world.admin)
    assert sub["id"] in [s["id"] for s in listed.json()["items"]]
    assert "secret" not in listed.json()["items"][0]

    # An admin names the owner; a client cannot name another.
    missing = await client.post(
        path, json={"url": url, "event_types": ["report.published"]}, headers=world.admin
    )
    assert assert_problem(missing, 422, "invalid")["errors"][0]["pointer"] == "/body/client_id"  # type: ignore[index]
    made = await client.post(
        path,
        json={"url": url, "event_types": ["report.published"], "client_id": str(other.id)},
        headers=world.admin,
    )
    assert made.status_code == 201
    assert made.json()["client_id"] == str(other.id)
    deleted = await client.delete(f"{path}/{sub['id']}", headers=world.subscriber)
    assert deleted.status_code == 204
    assert (await client.get(f"{path}/{sub['id']}", headers=world.admin)).status_code == 404


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hook.example.org/x", "https"),
        ("https://127.0.0.1/x", "private"),
        ("https://10.1.2.3/x", "private"),
        ("https://169.254.169.254/latest", "private"),
        ("https://[::1]/x", "private"),
        ("https://localhost/x", "loopback"),
        ("ftp://hook.example.org/x", "https"),
        ("https://user:pw@hook.example.org/x", "credentials"),
    ],
)
async def test_targets_are_https_and_public_unless_allowed(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    settings: Settings,
    app: FastAPI,
    url: str,
    why: str,
) -> None:
    saved = app.state.settings
    app.state.settings = settings  # the defaults: https only, no private ranges
    try:
        r = await client.post(
            "/api/v1/webhooks/subscriptions",
            json={"url": url, "event_types": ["report.published"]},
            headers=world.subscriber,
        )
    finally:
        app.state.settings = saved
    body = assert_problem(r, 422, "url_not_allowed")
    error = body["errors"][0]  # type: ignore[index]
    assert error["pointer"] == "/body/url"
    assert why in error["detail"]


async def test_a_name_resolving_to_a_private_address_is_refused_at_delivery(
    settings: Settings,
) -> None:
    from app.services.events.targets import TargetRefused, check_target

    await check_target("https://93.184.215.14/x", settings)
    # This machine's own name resolves to a loopback or private address (checked at delivery).
    with pytest.raises(TargetRefused, match="refused address"):
        await check_target(f"https://{socket.gethostname()}/x", settings)
    allowed = settings.model_copy(update={"webhook_allowed_hosts": ["10.20.0.0/16"]})
    await check_target("https://10.20.3.4/x", allowed)
    with pytest.raises(TargetRefused):
        await check_target("https://10.21.3.4/x", allowed)


def test_the_wait_grows_with_jitter_and_ends(hook_settings: Settings) -> None:
    settings = hook_settings.model_copy(update={"webhook_retry_jitter": 0.2})
    low: Callable[[], float] = lambda: 0.0  # noqa: E731
    high: Callable[[], float] = lambda: 1.0  # noqa: E731
    assert delivery.next_wait(settings, 1, low) == timedelta(seconds=4)
    assert delivery.next_wait(settings, 1, high) == timedelta(seconds=6)
    assert delivery.next_wait(settings, 3, low) == timedelta(seconds=96)
    assert delivery.next_wait(settings, 4, low) is None
    assert delivery.retry_after("120", T0) == timedelta(seconds=120)
    assert delivery.retry_after("Tue, 01 Jan 2030 08:01:00 GMT", T0) == timedelta(seconds=60)
    assert delivery.retry_after("soon", T0) is None
    assert events.VERSIONS


async def test_a_description_round_trips_in_nfc_and_a_nul_is_a_field_error(
    client: httpx.AsyncClient, world: World
) -> None:
    decomposed = "Cổng một cửa tỉnh".replace("ổ", "o\u0302\u0309")
    sub = await subscribe(client, world, "http://127.0.0.1:9/h", description=decomposed)
    assert sub["description"] == "Cổng một cửa tỉnh"
    bad = await client.post(
        "/api/v1/webhooks/subscriptions",
        json={"url": "https://hook.example.org/\u0000", "event_types": ["report.published"]},
        headers=world.subscriber,
    )
    body = assert_problem(bad, 422, "validation_failed")
    assert body["errors"][0]["pointer"] == "/body/url"  # type: ignore[index]


async def test_a_lost_claim_is_due_again_after_its_lease_and_its_late_result_is_ignored(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    hook_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    clock = Clock()
    with receiver() as rx:
        sub = await subscribe(client, world, rx.url)
        await submit(client, world, world.district)
        worker = make_worker(session, hook_settings, http, clock)
        await worker.fan_out()
        # A worker claims the delivery and dies before recording anything.
        [lost] = await delivery.claim(session, hook_settings, clock(), 10)
        assert await delivery.claim(session, hook_settings, clock(), 10) == []
        clock.advance(hook_settings.webhook_claim_seconds - 1)
        assert await worker.run_once() == 0
        clock.advance(1)
        assert await worker.run_once() == 1  # due again: delivered by another worker
        assert len(rx.requests) == 1
        late = delivery.Result(lost, clock(), status=200)
        assert await delivery.record(session, hook_settings, late) == "stale"
        row = await delivery_row(session, sub["id"])
        assert (row.state, row.attempts) == ("delivered", 1)


async def test_stopping_the_worker_finishes_the_delivery_in_flight(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    hook_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    with receiver() as rx:
        rx.delay = 0.5
        sub = await subscribe(client, world, rx.url)
        await submit(client, world, world.district)
        worker = make_worker(session, hook_settings, http, Clock())
        running = asyncio.create_task(worker.run())
        for _ in range(100):
            if rx.requests:
                break
            await asyncio.sleep(0.02)
        assert rx.requests
        assert not running.done()
        worker.stop()  # what SIGTERM does
        await asyncio.wait_for(running, 10)
        row = await delivery_row(session, sub["id"])
        assert (row.state, row.claim_token) == ("delivered", None)
        assert worker.counts.by_outcome == {"delivered": 1}


async def test_a_revoked_client_s_subscription_receives_nothing_more(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    hook_settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    with receiver() as rx:
        await subscribe(client, world, rx.url)
        await submit(client, world, world.district)
        worker = make_worker(session, hook_settings, http, Clock())
        await worker.fan_out()  # a delivery waits
        revoked = await client.post(
            f"/api/v1/clients/{world.subscriber_id}/revoke", headers=world.admin
        )
        assert revoked.status_code == 200
        await submit(client, world, world.district)
        assert await worker.run_once() == 0
        assert rx.requests == []


@pytest.fixture
async def two_committed_deliveries(db: Database) -> AsyncIterator[list[int]]:
    """Two due deliveries committed for real (cleaned up after), for tests of real claims."""
    async with AsyncSession(db.engine, expire_on_commit=False) as s:
        owner, _ = await make_client(s, [Scope.webhooks_write])
        sub = WebhookSubscription(
            client_id=owner.id,
            url="http://127.0.0.1:9/h",
            event_types=["plan.updated"],
            secret=events.signing.new_secret(),
        )
        s.add(sub)
        marker = uuid.uuid4().hex
        for n in range(2):
            await events.emit(s, type=EventType.plan_updated, payload={"m": marker, "n": n})
        await s.flush()
        ids = list(
            (
                await s.execute(
                    sa.text(
                        "INSERT INTO webhook_deliveries"
                        " (event_id, subscription_id, next_attempt_at)"
                        " SELECT id, :sub, :due FROM events WHERE payload->>'m' = :m"
                        " RETURNING id"
                    ),
                    {"sub": sub.id, "due": T0, "m": marker},
                )
            ).scalars()
        )
        await s.commit()
    yield ids
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM clients WHERE id = :c"), {"c": owner.id})
        await conn.execute(sa.text("DELETE FROM events WHERE payload->>'m' = :m"), {"m": marker})


async def test_concurrent_workers_never_claim_the_same_delivery(
    db: Database, hook_settings: Settings, two_committed_deliveries: list[int]
) -> None:
    async with AsyncSession(db.engine) as a, AsyncSession(db.engine) as b:
        [first] = await delivery.claim(a, hook_settings, T0, 1)  # held, not yet committed
        # The other worker skips the locked row instead of waiting for it.
        others = await asyncio.wait_for(delivery.claim(b, hook_settings, T0, 10), 5)
        assert [c.delivery_id for c in others] != []
        assert first.delivery_id not in [c.delivery_id for c in others]
        assert sorted([first.delivery_id, *(c.delivery_id for c in others)]) == sorted(
            two_committed_deliveries
        )
        await a.commit()
        await b.commit()
