"""The pull feed: events in commit-safe order, never skipping or repeating one.

Order. Each event carries `tx_id`, the id of the transaction that wrote it (assigned by the
database as a column default), and `seq`, an identity. Transaction ids are handed out when a
transaction first writes, not when it commits, so a transaction that started early may commit
after a later one: read in plain `seq` or `tx_id` order, its events would appear *behind* a
cursor that a reader already moved past, and be skipped for good. So the feed shows only events
of transactions older than every transaction still running (`tx_id` below the `xmin` of the
current snapshot, `pg_snapshot_xmin(pg_current_snapshot())`): every one of those has committed
or rolled back for good, and no transaction that commits later can have a smaller id. The feed
is read in (`tx_id`, `seq`) order behind that horizon and the cursor is the last (`tx_id`,
`seq`) read, so a page never repeats an event and no later commit can land before the cursor.
This is the technique migration 0005 introduced for the submissions list. The cost: an event
waits to appear until every transaction that began before it has ended (a long-running
transaction holds the feed back, never reorders it).

Visibility. An agency-bound caller sees only events about its agency's subtree (events with no
agency, such as campaign transitions and reports, only reach unbound callers); a caller bound to
a campaign sees only that campaign's events.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import FieldError, Invalid
from app.models.event import Event, EventPage, EventPublic, EventType
from app.services import access
from app.services.paging import bad_cursor, cursor_int, decode_cursor, encode_cursor
from app.services.principal import Principal

# Events of transactions that have ended for good, and the reader's own (a test that writes and
# reads in one transaction; a request that reads the feed writes no events).
SETTLED = sa.text(
    "(events.tx_id < (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"
    " OR events.tx_id = (pg_current_xact_id_if_assigned()::text)::bigint)"
)


def public(row: Event) -> EventPublic:
    return EventPublic(
        id=row.id,
        type=EventType(row.type),
        version=row.version,
        timestamp=row.occurred_at,
        agency_id=row.agency_id,
        campaign_id=row.campaign_id,
        data=row.payload,
    )


def body(row: Event) -> bytes:
    """The webhook body: the same object the feed lists, as compact JSON."""
    return public(row).model_dump_json().encode()


def parse_types(raw: str | None) -> list[EventType] | None:
    """`types` as a comma-separated list; an unknown name is a 422 on /query/types."""
    if raw is None or not raw.strip():
        return None
    found = []
    for name in raw.split(","):
        try:
            found.append(EventType(name.strip()))
        except ValueError:
            raise Invalid(
                "Unknown event type.",
                [FieldError("/query/types", f"unknown event type {name.strip()!r}", "unknown")],
            ) from None
    return found


async def list_events(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    types: Sequence[EventType] | None = None,
) -> EventPage:
    """One page of the feed. `next_cursor` is where to resume: the last event's position, or
    the given cursor when nothing new has committed (a poller keeps asking with it)."""
    query = access.readable_events(principal).where(SETTLED)
    after = decode_cursor(cursor)
    if after is not None:
        tx, seq = cursor_int(after, "tx"), cursor_int(after, "seq")
        if not (0 <= tx < 2**63 and 0 <= seq < 2**63):
            raise bad_cursor()
        query = query.where(
            sa.tuple_(col(Event.tx_id), col(Event.seq)) > sa.tuple_(sa.literal(tx), sa.literal(seq))
        )
    if types:
        query = query.where(col(Event.type).in_([t.value for t in types]))
    query = query.order_by(col(Event.tx_id), col(Event.seq)).limit(limit)
    rows = list((await session.scalars(query)).all())
    next_cursor = cursor or None
    if rows:
        next_cursor = encode_cursor({"tx": rows[-1].tx_id, "seq": rows[-1].seq})
    return EventPage(items=[public(r) for r in rows], next_cursor=next_cursor)
