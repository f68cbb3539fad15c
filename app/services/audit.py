"""Writing and reading the audit log. Writes join the caller's transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, NotRequired, Protocol, TypedDict, TypeVar, Unpack

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.context import current_request
from app.models.audit import AuditEvent, AuditEventPage, AuditEventPublic
from app.models.base import utcnow
from app.services import access
from app.services.paging import cursor_int, decode_cursor, keyset_page
from app.services.plain import jsonable
from app.services.principal import Principal


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The fields that changed, as {"before": {...}, "after": {...}}."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {
        "before": jsonable({k: before.get(k) for k in keys}),
        "after": jsonable({k: after.get(k) for k in keys}),
    }


class Described(TypedDict, total=False):
    """What an event tells beside who did what: the kind and id of the object it is about, a
    summary of the change (JSON), and the name of an actor that is no principal (a worker)."""

    object_type: str | None
    object_id: object | None
    summary: dict[str, Any] | None
    actor_name: str | None


def event_values(
    actor: Principal | None, action: str, **event: Unpack[Described]
) -> dict[str, Any]:
    """The columns of one event: who, what, and the request it belongs to."""
    ctx = current_request()
    actor_type: str
    name: str | None
    if actor is not None:
        actor_type, actor_id, name = actor.kind, actor.id, actor.name
        client_id = actor.client_public_id
    else:
        actor_type, actor_id, name, client_id = "anonymous", None, event.get("actor_name"), None
    if actor is None and ctx is None:
        actor_type = "system"
    object_id = event.get("object_id")
    return {
        "occurred_at": utcnow(),
        "actor_type": actor_type,
        "actor_id": actor_id,
        "actor_name": name,
        "client_id": client_id,
        "action": action,
        "object_type": event.get("object_type"),
        "object_id": str(object_id) if object_id is not None else None,
        "summary": jsonable(event.get("summary") or {}),
        "request_id": ctx.request_id if ctx else None,
        "reason": ctx.reason if ctx else None,
        "ip": ctx.client_ip if ctx else None,
    }


async def record(
    session: AsyncSession, actor: Principal | None, action: str, **event: Unpack[Described]
) -> None:
    """Append one event. It commits or rolls back with the change it describes."""
    await session.execute(sa.insert(AuditEvent).values(**event_values(actor, action, **event)))


class _Identified(Protocol):
    @property
    def id(self) -> Any: ...


R = TypeVar("R", bound=_Identified)


class _OnRow(TypedDict):
    """An event about one row: its kind, and a summary; a function for the summary is called
    after the flush, when it describes the stored row (server defaults included)."""

    object_type: str
    summary: dict[str, Any] | Callable[[], dict[str, Any]]
    actor_name: NotRequired[str | None]


async def record_change(
    session: AsyncSession,
    actor: Principal | None,
    row: _Identified,
    action: str,
    **event: Unpack[_OnRow],
) -> None:
    """Write the change to `row` and record `action` on it: a new row is added to the session
    (a row it holds already stays as it is), then flushed, for its id and server defaults, and
    so that a change the database refuses fails before the log tells of it."""
    session.add(row)
    await session.flush()
    summary = event["summary"]
    await record(
        session,
        actor,
        action,
        object_type=event["object_type"],
        object_id=row.id,
        summary=summary() if callable(summary) else summary,
        actor_name=event.get("actor_name"),
    )


async def record_created(
    session: AsyncSession,
    actor: Principal | None,
    row: R,
    kind: str,
    snapshot: Callable[[R], dict[str, Any]],
) -> None:
    """Write the new `row` and record `<kind>.create` on it, with its snapshot as stored (after
    the flush) as the summary's `after`."""
    await record_change(
        session,
        actor,
        row,
        f"{kind}.create",
        object_type=kind,
        summary=lambda: {"after": snapshot(row)},
    )


# (column, SQL type) of an event appended by a statement of the caller's; see insert_per_row.
_ROW_COLUMNS = (
    ("occurred_at", "timestamptz"),
    ("actor_type", "text"),
    ("actor_id", "uuid"),
    ("actor_name", "text"),
    ("client_id", "text"),
    ("action", "text"),
    ("object_type", "text"),
    ("object_id", "text"),
    ("summary", "text"),
    ("request_id", "text"),
    ("reason", "text"),
    ("ip", "text"),
)


def insert_per_row(source: str, object_id_sql: str) -> str:
    """SQL for a data-modifying CTE that appends one event per row of `source`, another CTE of
    the same statement: the event is written in the same round trip as the change it describes,
    and only for rows that change made. `object_id_sql` is the event's object id as an SQL
    expression over `source`; every other column is a parameter `audit_<column>`, bound from
    `row_params`."""
    columns = ", ".join(name for name, _ in _ROW_COLUMNS)
    selected = ", ".join(
        object_id_sql
        if name == "object_id"
        else "CAST(CAST(:audit_summary AS text) AS jsonb)"
        if name == "summary"
        else f"CAST(:audit_{name} AS {kind})"
        for name, kind in _ROW_COLUMNS
    )
    return f"INSERT INTO audit_events ({columns}) SELECT {selected} FROM {source}"  # noqa: S608


def insert_once_for(source: str, summary_sql: str) -> str:
    """SQL for a data-modifying CTE that appends one event for all the rows of `source`, none
    when it has none: a batch's event, written in the same round trip as the batch. Its
    summary is `summary_sql`, an aggregate over `source`; every other column (the object id
    too) is a parameter `audit_<column>`, bound from `row_params(values, object_id=True)`."""
    columns = ", ".join(name for name, _ in _ROW_COLUMNS)
    selected = ", ".join(
        summary_sql if name == "summary" else f"CAST(:audit_{name} AS {kind})"
        for name, kind in _ROW_COLUMNS
    )
    return (
        f"INSERT INTO audit_events ({columns}) SELECT {selected}"  # noqa: S608
        f" FROM {source} HAVING count(*) > 0"
    )


def row_params(values: dict[str, Any], *, object_id: bool = False) -> dict[str, Any]:
    """The parameters of `insert_per_row` (or, with `object_id`, of `insert_once_for`) from
    `event_values`."""
    computed = "summary" if object_id else "object_id"  # the column the SQL writes itself
    return {
        f"audit_{name}": json.dumps(values[name], ensure_ascii=False)
        if name == "summary"
        else values[name]
        for name, _ in _ROW_COLUMNS
        if name != computed
    }


async def list_events(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    action: str | None = None,
    actor_id: uuid.UUID | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    request_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> AuditEventPage:
    """Newest first, paged by id."""
    query = access.readable_audit_events(principal).order_by(col(AuditEvent.id).desc())
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(col(AuditEvent.id) < cursor_int(after, "id"))
    filters: list[sa.ColumnElement[bool]] = []
    if action:
        filters.append(col(AuditEvent.action) == action)
    if actor_id:
        filters.append(col(AuditEvent.actor_id) == actor_id)
    if object_type:
        filters.append(col(AuditEvent.object_type) == object_type)
    if object_id:
        filters.append(col(AuditEvent.object_id) == object_id)
    if request_id:
        filters.append(col(AuditEvent.request_id) == request_id)
    if since:
        filters.append(col(AuditEvent.occurred_at) >= since)
    if until:
        filters.append(col(AuditEvent.occurred_at) < until)
    rows, next_cursor = await keyset_page(
        session, query.where(*filters), limit=limit, key=lambda e: {"id": e.id}
    )
    return AuditEventPage(
        items=[AuditEventPublic.model_validate(r) for r in rows],
        next_cursor=next_cursor,
    )
