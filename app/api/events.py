"""GET /events: the pull feed, for receivers that cannot take webhooks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.api.paging import PageDep
from app.api.problems import AUTHED
from app.deps import SessionDep, scoped
from app.models.event import EventPage
from app.models.identity import Scope
from app.services.events import feed
from app.services.principal import Principal

router = APIRouter(prefix="/events", tags=["events"], responses=AUTHED)

EventsReader = Annotated[Principal, scoped(Scope.events_read)]


@dataclass
class EventFilters:
    types: Annotated[
        str | None,
        Query(description="Comma-separated event types, e.g. `invitation.used,report.published`."),
    ] = None


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
    page: PageDep,
    filters: Annotated[EventFilters, Depends()],
) -> EventPage:
    types = feed.parse_types(filters.types)
    return await feed.list_events(session, principal, **asdict(page), types=types)
