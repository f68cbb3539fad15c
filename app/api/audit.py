"""GET /audit-events: the append-only log of changes and logins, newest first."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.paging import PageDep
from app.api.problems import AUTHED
from app.deps import AuditReader, SessionDep
from app.models.audit import AuditEventPage
from app.models.timestamps import SaneDatetime
from app.services import audit

router = APIRouter(prefix="/audit-events", tags=["audit"], responses=AUTHED)


@dataclass
class AuditFilters:
    action: str | None = None
    actor_id: uuid.UUID | None = None
    object_type: str | None = None
    object_id: str | None = None
    request_id: str | None = None
    since: SaneDatetime | None = None
    until: SaneDatetime | None = None


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
    page: PageDep,
    filters: Annotated[AuditFilters, Depends()],
) -> AuditEventPage:
    return await audit.list_events(session, principal, **asdict(page), **asdict(filters))
