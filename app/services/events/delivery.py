"""Delivering events to webhook subscriptions: fan-out, claims, attempts, retries, dead letters.

Every step takes the time as an argument (`now`): the worker passes the wall clock, tests a
clock of their own, so a retry schedule of hours is tested without waiting.

1. Fan-out (`fan_out`): the dispatcher reads the events after its position in the feed's
   commit-safe order (see feed.py) and creates one delivery per matching subscription, moving
   its position in the same transaction. Its row is taken with FOR UPDATE SKIP LOCKED, so one
   worker at a time fans out and the others go on delivering. Paused subscriptions still get
   their deliveries (sent once resumed): nothing is lost while a receiver is down.
2. Claim (`claim`): due deliveries of active subscriptions are taken with FOR UPDATE SKIP
   LOCKED (several workers never take the same one) and their `next_attempt_at` moved past a
   lease, with a claim token; the claim commits before any request is sent, so no transaction
   stays open over the network. A worker killed mid-attempt leaves its deliveries due again
   after the lease: delivery is at least once, and a repeat carries the same `webhook-id`.
3. Attempt (`attempt`): the target is resolved and checked (targets.py), the stored event sent
   as JSON with the Standard Webhooks headers, redirects not followed.
4. Outcome (`record`): 2xx is delivered. Following the Standard Webhooks specification every
   other answer is a failure that is retried (3xx, 4xx and 5xx alike: a receiver's 404 or 401
   during a deployment is as passing as a 503), as are timeouts and connection errors, after the
   next wait of the schedule with random jitter, and never sooner than a `Retry-After` asks.
   410 Gone is the receiver saying it wants no more: the subscription is paused at once (the
   delivery stays pending for a resume). After the last wait, the delivery is a dead letter,
   kept for inspection and replay. A subscription is paused, with an audit event saying why,
   after `webhook_pause_after_dead` consecutive dead letters or after failing without a single
   success for `webhook_pause_after_failing_seconds`.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.base import touch
from app.models.event import Event, WebhookSubscription
from app.models.identity import Client
from app.services import access, audit
from app.services.events import signing
from app.services.events.feed import SETTLED, body
from app.services.events.subscriptions import mark_paused, signing_keys
from app.services.events.targets import TargetRefused, check_target

USER_AGENT = "sipas-webhooks/1"
MAX_RETRY_AFTER = timedelta(hours=24)


# ---- fan-out -----------------------------------------------------------------------------------

_DISPATCH = sa.text("SELECT tx_id, seq FROM webhook_dispatch WHERE id = 1 FOR UPDATE SKIP LOCKED")
_INSERT_DELIVERIES = sa.text(
    "INSERT INTO webhook_deliveries (event_id, subscription_id, next_attempt_at, created_at)"
    " SELECT e, s, CAST(:now AS timestamptz), CAST(:now AS timestamptz)"
    " FROM unnest(CAST(:events AS uuid[]), CAST(:subs AS uuid[])) AS u(e, s)"
    " ON CONFLICT ON CONSTRAINT uq_webhook_deliveries_event_id_subscription_id DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class _Target:
    id: uuid.UUID
    types: frozenset[str]
    agencies: frozenset[uuid.UUID] | None  # None: every agency, and events with none
    campaign_id: uuid.UUID | None


async def _targets(session: AsyncSession) -> list[_Target]:
    rows = (
        await session.execute(
            sa.select(
                col(WebhookSubscription.id),
                col(WebhookSubscription.event_types),
                col(WebhookSubscription.agency_id),
                col(Client.campaign_id),
            )
            .join(Client, col(Client.id) == col(WebhookSubscription.client_id))
            .where(col(Client.revoked_at).is_(None))
        )
    ).all()
    # The same subtree rule as every read of the caller's agencies (app.services.access),
    # asked once per distinct agency filter and batch of events.
    subtrees: dict[uuid.UUID, frozenset[uuid.UUID]] = {}
    targets = []
    for sub_id, types, agency_id, campaign_id in rows:
        agencies = None
        if agency_id is not None:
            if agency_id not in subtrees:
                subtrees[agency_id] = await access.subtree_set(session, agency_id)
            agencies = subtrees[agency_id]
        targets.append(_Target(sub_id, frozenset(types), agencies, campaign_id))
    return targets


def _matches(target: _Target, event: Any) -> bool:
    if event.type not in target.types:
        return False
    if target.campaign_id is not None and event.campaign_id != target.campaign_id:
        return False
    if target.agencies is not None:
        return event.agency_id is not None and event.agency_id in target.agencies
    return True


FAN_OUT_LIMIT = 1000


async def fan_out(
    session: AsyncSession, now: datetime, *, limit: int = FAN_OUT_LIMIT
) -> int | None:
    """Create the deliveries of up to `limit` events past the dispatcher's position; the number
    of events read, or None when another worker holds the dispatcher."""
    position = (await session.execute(_DISPATCH)).first()
    if position is None:
        return None
    tx, seq = position
    events_table = Event.metadata.tables["events"]
    rows = (
        await session.execute(
            sa.select(
                events_table.c.id,
                events_table.c.tx_id,
                events_table.c.seq,
                events_table.c.type,
                events_table.c.agency_id,
                events_table.c.campaign_id,
                events_table.c.occurred_at,
            )
            .where(
                SETTLED,
                sa.tuple_(events_table.c.tx_id, events_table.c.seq)
                > sa.tuple_(sa.literal(tx), sa.literal(seq)),
            )
            .order_by(events_table.c.tx_id, events_table.c.seq)
            .limit(limit)
        )
    ).all()
    if not rows:
        return 0
    targets = await _targets(session)
    pairs = [(e.id, t.id) for e in rows for t in targets if _matches(t, e)]
    if pairs:
        await session.execute(
            _INSERT_DELIVERIES,
            {"now": now, "events": [p[0] for p in pairs], "subs": [p[1] for p in pairs]},
        )
    await session.execute(
        sa.text("UPDATE webhook_dispatch SET tx_id = :tx, seq = :seq WHERE id = 1"),
        {"tx": rows[-1].tx_id, "seq": rows[-1].seq},
    )
    return len(rows)


# ---- claims ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery_id: int
    token: uuid.UUID
    attempts: int
    event_id: uuid.UUID
    url: str
    keys: list[str]
    body: bytes


_CLAIM = sa.text(
    "UPDATE webhook_deliveries AS d SET next_attempt_at = :lease, claim_token = :token"
    " FROM (SELECT w.id FROM webhook_deliveries AS w"
    " JOIN webhook_subscriptions AS s ON s.id = w.subscription_id"
    " JOIN clients AS c ON c.id = s.client_id AND c.revoked_at IS NULL"
    " WHERE w.state = 'pending' AND w.next_attempt_at <= :now AND s.state = 'active'"
    " ORDER BY w.next_attempt_at LIMIT :n FOR UPDATE OF w SKIP LOCKED) AS due"
    " WHERE d.id = due.id RETURNING d.id, d.attempts, d.event_id, d.subscription_id"
)


async def claim(session: AsyncSession, settings: Settings, now: datetime, n: int) -> list[Claimed]:
    """Take up to `n` due deliveries for one attempt each (commit before sending them)."""
    token = uuid.uuid4()
    lease = now + timedelta(seconds=settings.webhook_claim_seconds)
    taken = (
        await session.execute(_CLAIM, {"lease": lease, "token": token, "now": now, "n": n})
    ).all()
    if not taken:
        return []
    events = {
        e.id: e
        for e in (
            await session.scalars(
                sa.select(Event).where(col(Event.id).in_({t.event_id for t in taken}))
            )
        ).all()
    }
    subs = {
        s.id: s
        for s in (
            await session.scalars(
                sa.select(WebhookSubscription).where(
                    col(WebhookSubscription.id).in_({t.subscription_id for t in taken})
                )
            )
        ).all()
    }
    return [
        Claimed(
            t.id,
            token,
            t.attempts,
            t.event_id,
            subs[t.subscription_id].url,
            signing_keys(subs[t.subscription_id], now),
            body(events[t.event_id]),
        )
        for t in taken
    ]


async def release(session: AsyncSession, claimed: Sequence[Claimed], now: datetime) -> None:
    """Hand back claims that were never attempted (a worker stopping): due again at once."""
    for c in claimed:
        await session.execute(
            sa.text(
                "UPDATE webhook_deliveries SET next_attempt_at = :now, claim_token = NULL"
                " WHERE id = :id AND claim_token = :token AND state = 'pending'"
            ),
            {"now": now, "id": c.delivery_id, "token": c.token},
        )


# ---- attempts ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    claimed: Claimed
    at: datetime
    status: int | None = None
    error: str | None = None
    retry_after: timedelta | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        return self.status == 410


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """`Retry-After` as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        wait = timedelta(seconds=int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        wait = when - now
    return max(timedelta(0), min(wait, MAX_RETRY_AFTER))


async def attempt(
    http: httpx.AsyncClient, settings: Settings, claimed: Claimed, now: datetime
) -> Result:
    """POST the event once. Never raises for the receiver's or the network's failures."""
    try:
        await check_target(claimed.url, settings)
    except TargetRefused as exc:
        return Result(claimed, now, error=f"target refused: {exc}")
    timestamp = int(now.timestamp())
    msg_id = str(claimed.event_id)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature_header(
            claimed.keys, msg_id, timestamp, claimed.body
        ),
    }
    try:
        response = await http.post(claimed.url, content=claimed.body, headers=headers)
    except httpx.TimeoutException:
        return Result(claimed, now, error="timeout")
    except httpx.HTTPError as exc:
        return Result(claimed, now, error=f"{type(exc).__name__}: {exc}"[:500])
    return Result(
        claimed,
        now,
        status=response.status_code,
        retry_after=retry_after(response.headers.get("retry-after"), now),
    )


def next_wait(
    settings: Settings, attempts: int, rand: Callable[[], float] = random.random
) -> timedelta | None:
    """The wait after the `attempts`-th failed attempt, jittered; None when none is left."""
    schedule = settings.webhook_retry_schedule
    if attempts > len(schedule):
        return None
    base = schedule[attempts - 1]
    spread = settings.webhook_retry_jitter
    return timedelta(seconds=base * (1 + spread * (2 * rand() - 1)))


async def record(
    session: AsyncSession,
    settings: Settings,
    result: Result,
    *,
    rand: Callable[[], float] = random.random,
) -> str:
    """Store an attempt's outcome: `delivered`, `retry`, `dead`, `gone`, or `stale` when the
    claim was lost (its lease ran out and another worker took the delivery)."""
    c, now = result.claimed, result.at
    attempts = c.attempts + 1
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_attempt_at": now,
        "last_status": result.status,
        "last_error": result.error
        if result.error
        else None
        if result.ok
        else f"HTTP {result.status}",
        "claim_token": None,
    }
    outcome: str
    if result.ok:
        values.update(state="delivered", delivered_at=now)
        outcome = "delivered"
    elif result.gone:
        values.update(next_attempt_at=now)
        outcome = "gone"
    else:
        wait = next_wait(settings, attempts, rand)
        if wait is None:
            values.update(state="dead", dead_at=now)
            outcome = "dead"
        else:
            if result.retry_after is not None:
                wait = max(wait, result.retry_after)
            values.update(next_attempt_at=now + wait)
            outcome = "retry"
    updated = (
        await session.execute(
            sa.text(
                "UPDATE webhook_deliveries SET "  # noqa: S608 - column names of this function
                + ", ".join(f"{k} = :{k}" for k in values)
                + " WHERE id = :id AND claim_token = :token AND state = 'pending'"
                " RETURNING subscription_id"
            ),
            {**values, "id": c.delivery_id, "token": c.token},
        )
    ).first()
    if updated is None:
        return "stale"
    await _subscription_health(session, settings, updated[0], outcome, now)
    return outcome


_HEALTHY = sa.text(
    "UPDATE webhook_subscriptions SET consecutive_dead = 0, failing_since = NULL"
    " WHERE id = :id AND (consecutive_dead <> 0 OR failing_since IS NOT NULL)"
)


async def _subscription_health(
    session: AsyncSession, settings: Settings, sub_id: uuid.UUID, outcome: str, now: datetime
) -> None:
    if outcome == "delivered":
        # A healthy subscription matches no row here: the usual success takes no lock on it.
        await session.execute(_HEALTHY, {"id": sub_id})
        return
    sub = await session.scalar(
        sa.select(WebhookSubscription)
        .where(col(WebhookSubscription.id) == sub_id)
        .with_for_update()
    )
    if sub is None:  # pragma: no cover - deleted while delivering: the delivery went with it
        return
    if sub.failing_since is None:
        sub.failing_since = now
    reason = None
    if outcome == "gone":
        reason = "the receiver answered 410 Gone"
    elif outcome == "dead":
        sub.consecutive_dead += 1
        if sub.consecutive_dead >= settings.webhook_pause_after_dead:
            reason = f"{sub.consecutive_dead} consecutive deliveries failed every attempt"
    if reason is None and now - sub.failing_since >= timedelta(
        seconds=settings.webhook_pause_after_failing_seconds
    ):
        reason = f"every attempt failed since {sub.failing_since.isoformat()}"
    if reason is not None and sub.state == "active":
        await pause(session, sub, reason, now)


async def pause(
    session: AsyncSession, sub: WebhookSubscription, reason: str, now: datetime
) -> None:
    """Pause a failing subscription; the audit log says why, under the subscription."""
    mark_paused(sub, reason, now)
    touch(sub, at=now)
    await audit.record_change(
        session,
        None,
        sub,
        "webhook.pause",
        object_type="webhook_subscription",
        summary={"client_id": str(sub.client_id), "reason": reason, "url": sub.url},
        actor_name="webhook worker",
    )


_DELIVERED = sa.text(
    "UPDATE webhook_deliveries AS d SET state = 'delivered', delivered_at = u.at,"
    " last_attempt_at = u.at, attempts = d.attempts + 1, last_status = u.status,"
    " last_error = NULL, claim_token = NULL"
    " FROM unnest(CAST(:ids AS bigint[]), CAST(:tokens AS uuid[]), CAST(:ats AS timestamptz[]),"
    " CAST(:statuses AS int[])) AS u(id, token, at, status)"
    " WHERE d.id = u.id AND d.claim_token = u.token AND d.state = 'pending'"
    " RETURNING d.subscription_id"
)
_HEALTHY_MANY = sa.text(
    "UPDATE webhook_subscriptions SET consecutive_dead = 0, failing_since = NULL"
    " WHERE id = ANY(CAST(:ids AS uuid[])) AND (consecutive_dead <> 0 OR failing_since IS NOT NULL)"
)


async def record_all(
    session: AsyncSession,
    settings: Settings,
    results: Sequence[Result],
    *,
    rand: Callable[[], float] = random.random,
) -> list[str]:
    """`record` for many results: the successes (the usual case) in two statements in all."""
    ok = [r for r in results if r.ok]
    outcomes = []
    if ok:
        done = await session.execute(
            _DELIVERED,
            {
                "ids": [r.claimed.delivery_id for r in ok],
                "tokens": [r.claimed.token for r in ok],
                "ats": [r.at for r in ok],
                "statuses": [r.status for r in ok],
            },
        )
        matched = done.all()
        subs = sorted({row[0] for row in matched})
        outcomes += ["delivered"] * len(matched) + ["stale"] * (len(ok) - len(matched))
        if subs:
            await session.execute(_HEALTHY_MANY, {"ids": subs})
    for r in results:
        if not r.ok:
            outcomes.append(await record(session, settings, r, rand=rand))
    return outcomes


async def attempt_all(
    http: httpx.AsyncClient, settings: Settings, claimed: Sequence[Claimed], now: datetime
) -> list[Result]:
    return list(await asyncio.gather(*(attempt(http, settings, c, now) for c in claimed)))


def http_client(settings: Settings) -> httpx.AsyncClient:
    """No redirects (a 3xx is a failure, per the specification) and no proxy from the
    environment (it would bypass the target checks)."""
    return httpx.AsyncClient(
        timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
    )
