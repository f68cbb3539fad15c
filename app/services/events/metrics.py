"""Webhook delivery figures for /metrics, read from the database (any process answers them)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

# The pending rows are few and indexed; the other states are counted from the same table.
_FIGURES = sa.text(
    "SELECT state, count(*) AS n, min(created_at) AS oldest,"
    " count(*) FILTER (WHERE state = 'pending' AND next_attempt_at <= :now) AS due"
    " FROM webhook_deliveries GROUP BY state"
)
_UNDISPATCHED = sa.text(
    "SELECT count(*) FROM events AS e, webhook_dispatch AS d"
    " WHERE d.id = 1 AND (e.tx_id, e.seq) > (d.tx_id, d.seq)"
)


async def render(conn: AsyncConnection, now: datetime) -> str:
    counts = {"pending": 0, "delivered": 0, "dead": 0}
    oldest = None
    due = 0
    for state, n, first, due_n in (await conn.execute(_FIGURES, {"now": now})).all():
        counts[state] = n
        if state == "pending":
            oldest, due = first, due_n
    undispatched = int((await conn.execute(_UNDISPATCHED)).scalar() or 0)
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    lines = [
        "# HELP sipas_webhook_deliveries Webhook deliveries by state (dead: the dead letters).",
        "# TYPE sipas_webhook_deliveries gauge",
        *(f'sipas_webhook_deliveries{{state="{s}"}} {n}' for s, n in sorted(counts.items())),
        "# HELP sipas_webhook_backlog Deliveries due now and not yet sent.",
        "# TYPE sipas_webhook_backlog gauge",
        f"sipas_webhook_backlog {due}",
        "# HELP sipas_webhook_oldest_pending_seconds Age of the oldest undelivered delivery.",
        "# TYPE sipas_webhook_oldest_pending_seconds gauge",
        f"sipas_webhook_oldest_pending_seconds {age}",
        "# HELP sipas_events_undispatched Committed events not yet fanned out to subscriptions.",
        "# TYPE sipas_events_undispatched gauge",
        f"sipas_events_undispatched {undispatched}",
    ]
    return "\n".join(lines) + "\n"
