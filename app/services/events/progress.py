"""campaign.behind_target: an open campaign short of its target by its check date.

The check date of a campaign is `behind_target_elapsed` of the way through its fieldwork
period (fieldwork_start + that share of its days, rounded up). From that date on, an open
campaign whose valid forms number fewer than `behind_target_share` of the sum of its strata
targets is behind: the worker's periodic check emits one event for it, once per campaign and
check date (the event's dedupe key makes a second check, or a second worker, a no-op)."""

from __future__ import annotations

import math
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models.event import EventType
from app.services.events.outbox import NewEvent, emit_many

_OPEN = sa.text(
    "SELECT c.id, c.code, c.fieldwork_start, c.fieldwork_end,"
    " (SELECT sum(s.target) FROM strata AS s WHERE s.campaign_id = c.id) AS target"
    " FROM campaigns AS c WHERE c.state = 'open'"
)
_VALID = sa.text("SELECT count(*) FROM submissions WHERE campaign_id = :c AND state = 'valid'")
_KNOWN = sa.text("SELECT dedupe_key FROM events WHERE dedupe_key = ANY(CAST(:keys AS text[]))")


def check_date(start: date, end: date, elapsed: float) -> date:
    return start + timedelta(days=math.ceil((end - start).days * elapsed))


def dedupe_key(campaign_id: object, day: date) -> str:
    return f"{EventType.campaign_behind_target.value}:{campaign_id}:{day.isoformat()}"


async def check_behind_target(session: AsyncSession, settings: Settings, today: date) -> int:
    """Emit the events of campaigns behind target on `today`; how many were emitted."""
    due = []
    for row in (await session.execute(_OPEN)).all():
        if not row.target:
            continue
        day = check_date(row.fieldwork_start, row.fieldwork_end, settings.behind_target_elapsed)
        if day <= today:
            due.append((row, day, dedupe_key(row.id, day)))
    if not due:
        return 0
    known = set((await session.scalars(_KNOWN, {"keys": [k for _, _, k in due]})).all())
    found = []
    for row, day, key in due:
        if key in known:
            continue
        valid = int(await session.scalar(_VALID, {"c": row.id}) or 0)
        expected = math.ceil(row.target * settings.behind_target_share)
        if valid < expected:
            found.append(
                NewEvent(
                    EventType.campaign_behind_target,
                    {
                        "code": row.code,
                        "check_date": day,
                        "valid": valid,
                        "target": int(row.target),
                        "expected_at_check": expected,
                        "share_of_target": valid / int(row.target),
                        "threshold_share": settings.behind_target_share,
                    },
                    campaign_id=row.id,
                    dedupe_key=key,
                )
            )
    await emit_many(session, found)
    return len(found)
