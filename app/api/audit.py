"""GET /audit-events: the append-only log of changes and logins, newest first."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.api.problems import AUTHED
from app.deps import DEFAULT_PAGE, AuditReader, Cursor, Limit, SessionDep
from app.models.audit import AuditEventPage
from app.models.timestamps import SaneDatetime
from app.services import audit

router = APIRouter(prefix="/audit-events", tags=["audit"], responses=AUTHED)


@router.get(
    "",
    description="Every state change, filterable by action, actor, object, request id and time. "
    "Needs `audit:read`.",
    summary="Search the audit log",
    response_model=AuditEventPage,
)
async def list_audit_events(
    session: SessionDep,
    principal: AuditReader,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
    action: str | None = None,
    actor_id: uuid.UUID | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    request_id: str | None = None,
    since: SaneDatetime | None = None,
    until: SaneDatetime | None = None,
) -> AuditEventPage:
    return await audit.list_events(
        session,
        principal,
        limit=limit,
        cursor=cursor,
        action=action,
        actor_id=actor_id,
        object_type=object_type,
        object_id=object_id,
        request_id=request_id,
        since=since,
        until=until,
    )
