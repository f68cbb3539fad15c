"""Reading forms: one by id, lists in commit order, and the rows an export writes.

Lists page in the order of the writing transaction (`tx_id`, then id) and show only rows of
transactions older than every transaction still running, so a row committed late always lands
after the cursor: no page skips or repeats a row while forms keep arriving. Every query starts
from the readable statement of `access`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import FieldError, Invalid
from app.models.submission import Submission, SubmissionPage, SubmissionState
from app.services import access, rows
from app.services.paging import cursor_int, cursor_str, decode_cursor, encode_cursor
from app.services.principal import Principal
from app.services.submissions.common import public


async def get_submission(
    session: AsyncSession, principal: Principal, submission_id: uuid.UUID, *, lock: bool = False
) -> Submission:
    query = access.readable_submissions(principal).where(col(Submission.id) == submission_id)
    return await rows.one(session, query, "submission", lock=lock)


@dataclass(frozen=True, slots=True)
class Filters:
    campaign_id: uuid.UUID | None = None
    agency_id: uuid.UUID | None = None
    channel: str | None = None
    state: SubmissionState | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(principal: Principal, f: Filters) -> sa.Select[Submission]:
    query = access.readable_submissions(principal)
    if f.campaign_id is not None:
        query = query.where(col(Submission.campaign_id) == f.campaign_id)
    if f.agency_id is not None:
        query = query.where(col(Submission.agency_id).in_(access.subtree(f.agency_id)))
    if f.channel is not None:
        query = query.where(col(Submission.channel) == f.channel)
    if f.state is not None:
        query = query.where(col(Submission.state) == f.state)
    if f.since is not None:
        query = query.where(col(Submission.received_at) >= f.since)
    if f.until is not None:
        query = query.where(col(Submission.received_at) < f.until)
    return query


# Rows of transactions older than every one still running (all committed or gone for good), and
# the reader's own rows. A request that lists never writes forms, so the second case only
# matters when one transaction both writes and reads, as a test does.
_SETTLED = sa.text(
    "(submissions.tx_id < (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"
    " OR submissions.tx_id = (pg_current_xact_id_if_assigned()::text)::bigint)"
)


async def list_submissions(
    session: AsyncSession, principal: Principal, f: Filters, *, limit: int, cursor: str | None
) -> SubmissionPage:
    query = _filtered(principal, f).where(_SETTLED)
    after = decode_cursor(cursor)
    if after is not None:
        tx, row_id = cursor_int(after, "tx"), cursor_str(after, "id")
        try:
            last = uuid.UUID(row_id)
        except ValueError as exc:
            raise Invalid(
                "The cursor is not one this API issued.",
                [FieldError("/query/cursor", "bad cursor", "bad_cursor")],
                code="bad_cursor",
            ) from exc
        query = query.where(
            sa.tuple_(col(Submission.tx_id), col(Submission.id))
            > sa.tuple_(sa.literal(tx), sa.literal(last, sa.Uuid))
        )
    query = query.order_by(col(Submission.tx_id), col(Submission.id)).limit(limit + 1)
    found = list((await session.scalars(query)).all())
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
    if found:
        # Always hand back a cursor: a caller polling for new forms resumes from the last row.
        next_cursor = encode_cursor({"tx": found[-1].tx_id, "id": str(found[-1].id)})
    return SubmissionPage(items=[public(r) for r in found], next_cursor=next_cursor)


async def export_rows(session: AsyncSession, principal: Principal, f: Filters) -> list[Submission]:
    query = _filtered(principal, f).order_by(col(Submission.received_at), col(Submission.id))
    return list((await session.scalars(query)).all())
