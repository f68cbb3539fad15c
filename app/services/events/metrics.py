"""The figures of /metrics read from the database (any process answers them, so they are the
service's whatever worker answers): webhook deliveries and events, and the forms the index
roll-ups have not folded yet (the worker's backlog there)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
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

_UNFOLDED = sa.text(
    "SELECT coalesce(sum(index_cells_tail(campaign_id)), 0) FROM index_rollup_states"
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
    unfolded = int((await conn.execute(_UNFOLDED)).scalar() or 0)
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    deliveries = GaugeMetricFamily(
        "sipas_webhook_deliveries",
        "Webhook deliveries by state (dead: the dead letters).",
        labels=["state"],
    )
    for state, n in sorted(counts.items()):
        deliveries.add_metric([state], n)
    families = [
        deliveries,
        GaugeMetricFamily("sipas_webhook_backlog", "Deliveries due now and not yet sent.", due),
        GaugeMetricFamily(
            "sipas_webhook_oldest_pending_seconds", "Age of the oldest undelivered delivery.", age
        ),
        GaugeMetricFamily(
            "sipas_events_undispatched",
            "Committed events not yet fanned out to subscriptions.",
            undispatched,
        ),
        GaugeMetricFamily(
            "sipas_index_unfolded_forms",
            "Committed forms not yet folded into the index roll-ups (reads count them from the "
            "forms until `sipas worker` folds them).",
            unfolded,
        ),
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures(families))
    return generate_latest(registry).decode()


class _Figures(Collector):
    """Figures read once from the database, handed to prometheus_client to write out."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families
