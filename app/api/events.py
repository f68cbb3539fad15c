"""GET /events: the pull feed, for receivers that cannot take webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.problems import AUTHED
from app.deps import DEFAULT_PAGE, Cursor, Limit, SessionDep, scoped
from app.models.event import EventPage
from app.models.identity import Scope
from app.services.events import feed
from app.services.principal import Principal

router = APIRouter(prefix="/events", tags=["events"], responses=AUTHED)

EventsReader = Annotated[Principal, scoped(Scope.events_read)]


@router.get(
    "",
    summary="Events in commit order, from a cursor",
    description="The same events, with the same ids and payloads, that webhooks deliver. Pages "
    "never skip or repeat an event while new ones commit. Keep `next_cursor` and ask again "
    "with it to poll: when nothing new has committed it is the cursor you sent. An "
    "agency-bound caller sees only events about its agency's subtree.",
    response_model=EventPage,
)
async def list_events(
    session: SessionDep,
    principal: EventsReader,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
    types: Annotated[
        str | None,
        Query(description="Comma-separated event types, e.g. `invitation.used,report.published`."),
    ] = None,
) -> EventPage:
    return await feed.list_events(
        session, principal, limit=limit, cursor=cursor, types=feed.parse_types(types)
    )
