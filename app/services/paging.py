"""Opaque keyset cursors: base64url JSON of the last row's sort key."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypedDict, TypeVar, Unpack

from sqlalchemy import ColumnElement, Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlmodel import col

from app.errors import FieldError, Invalid
from app.services.rows import where_given

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def encode_cursor(key: dict[str, Any]) -> str:
    raw = json.dumps(key, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise bad_cursor() from exc
    if not isinstance(value, dict):
        raise bad_cursor()
    return value


def bad_cursor() -> Exception:
    return Invalid(
        "The cursor is not one this API issued.",
        [FieldError("/query/cursor", "not a cursor from a previous page", "bad_cursor")],
        code="bad_cursor",
    )


def cursor_int(key: dict[str, Any], name: str) -> int:
    value = key.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_cursor()
    return value


def cursor_str(key: dict[str, Any], name: str) -> str:
    value = key.get(name)
    if not isinstance(value, str):
        raise bad_cursor()
    return value


def cursor_uuid(key: dict[str, Any], name: str) -> uuid.UUID:
    try:
        return uuid.UUID(cursor_str(key, name))
    except ValueError as exc:
        raise bad_cursor() from exc


async def keyset_page(
    session: AsyncSession,
    query: Select[T],
    *,
    limit: int,
    key: Callable[[T], dict[str, Any]],
) -> tuple[list[T], str | None]:
    """Run an ordered query for one page; the cursor holds `key(last row)` when more follow."""
    rows = list((await session.scalars(query.limit(limit + 1))).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(key(rows[-1]))


class _Identified(Protocol):
    @property
    def id(self) -> uuid.UUID: ...


Row = TypeVar("Row", bound=_Identified)


async def id_page(
    session: AsyncSession,
    query: Select[Row],
    id_column: ColumnElement[uuid.UUID] | Mapped[uuid.UUID],
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[Row], str | None]:
    """One page of rows in the order of their UUID id; the cursor holds the last id."""
    query = query.order_by(id_column)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(id_column > cursor_uuid(after, "id"))
    return await keyset_page(session, query, limit=limit, key=lambda r: {"id": str(r.id)})


class CampaignAgencyWindow(TypedDict):
    """What a list of one campaign's and one agency's records takes besides the principal:
    the two filters (None keeps every campaign, every agency) and the page."""

    campaign_id: uuid.UUID | None
    agency_id: uuid.UUID | None
    limit: int
    cursor: str | None


class _CampaignAgencyRow(Protocol):
    id: uuid.UUID
    campaign_id: uuid.UUID
    agency_id: uuid.UUID


Record = TypeVar("Record", bound=_CampaignAgencyRow)


async def campaign_agency_page(
    session: AsyncSession,
    readable: Select[Record],
    model: type[Record],
    **window: Unpack[CampaignAgencyWindow],
) -> tuple[list[Record], str | None]:
    """One page of the `readable` rows of `model` (the principal's, from `access`) in the order
    of their id, narrowed to the window's campaign and agency when they are given."""
    query = where_given(
        readable,
        (col(model.campaign_id), window["campaign_id"]),
        (col(model.agency_id), window["agency_id"]),
    )
    return await id_page(
        session, query, col(model.id), limit=window["limit"], cursor=window["cursor"]
    )
