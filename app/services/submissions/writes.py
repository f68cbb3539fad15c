"""Writing checked forms: one statement for the rows, their events and (for one form) its audit.

Rules:
- A form is stored under its key (its client-made id, or the Idempotency-Key header) within its
  campaign. The unique key and INSERT ... ON CONFLICT DO NOTHING make two concurrent identical
  requests produce one row: the second waits for the first and then finds it stored (`ingest`
  answers it as a replay).
- The unique key on `submissions.invitation_id` is the other conflict the INSERT does nothing
  for: whatever races, one invitation makes at most one form.
- Many forms are one statement (INSERT ... SELECT FROM unnest of one array per column), never a
  loop of single inserts; each new form's `submission.accepted` event is written by the same
  statement, and the audit event too (one per form alone, one per batch).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app import cache as caches
from app.cache import Cache
from app.models.dossier import Invitation
from app.models.quality import QualityConfig
from app.models.submission import Submission, SubmissionPublic
from app.services import audit, events
from app.services.quality import screening
from app.services.submissions.checks import Prepared
from app.services.submissions.common import public

# (column, array type) in the order of the INSERT; answers travel as JSON text.
_COLUMNS = (
    ("campaign_id", "uuid[]"),
    ("client_submission_id", "uuid[]"),
    ("request_hash", "text[]"),
    ("agency_id", "uuid[]"),
    ("sector_id", "uuid[]"),
    ("procedure_id", "uuid[]"),
    ("stratum_id", "uuid[]"),
    ("frame_unit_id", "uuid[]"),
    ("respondent_type", "text[]"),
    ("channel", "text[]"),
    ("client_id", "uuid[]"),
    ("surveyor_id", "uuid[]"),
    ("device_id", "text[]"),
    ("invitation_id", "uuid[]"),
    ("answers", "text[]"),
    ("received_at", "timestamptz[]"),
    ("flags", "text[]"),
    ("state", "text[]"),
)
_JSON = frozenset({"answers", "flags"})
# Built once from the constant column list above; every value is a bound array.
_INSERT_ROWS = (
    "INSERT INTO submissions ("  # noqa: S608
    + ", ".join(name for name, _ in _COLUMNS)
    + ") SELECT "
    + ", ".join(f"{name}::jsonb" if name in _JSON else name for name, _ in _COLUMNS)
    + " FROM unnest("
    + ", ".join(f"CAST(:{name} AS {kind})" for name, kind in _COLUMNS)
    + ") AS u("
    + ", ".join(name for name, _ in _COLUMNS)
    # Either unique key: a form whose client-made id is stored (a retry, answered from the
    # stored row), or whose invitation made a form already (answered invitation_used). Two
    # rows of one statement with one invitation: the first is kept.
    + ") ON CONFLICT DO NOTHING"
)
# Each new form's submission.accepted event is written by the same statement.
_INSERT = sa.text(
    "WITH ins AS ("  # noqa: S608
    + _INSERT_ROWS
    + " RETURNING "
    + ", ".join(events.SUBMISSION_COLUMNS)
    + "), evt AS ("
    + events.submissions_accepted_sql("ins")
    + ") SELECT client_submission_id, id FROM ins"
)
# The columns of the response (SubmissionPublic), for a single form's RETURNING.
_PUBLIC = tuple(
    "client_submission_id" if name == "submission_id" else name
    for name in SubmissionPublic.model_fields
)
# A single form: the row and its audit event in one statement, the response's columns returned.
# When the key is already stored, nothing is inserted, no event written and no row returned.
_INSERT_AUDITED = sa.text(
    "WITH ins AS ("  # noqa: S608
    + _INSERT_ROWS
    + " RETURNING "
    + ", ".join(_PUBLIC)
    + "), aud AS ("
    + audit.insert_per_row("ins", "ins.id::text")
    + "), evt AS ("
    + events.submissions_accepted_sql("ins")
    + ") SELECT "
    + ", ".join(_PUBLIC)
    + " FROM ins"
).columns(*(Submission.metadata.tables["submissions"].c[name] for name in _PUBLIC))


def _arrays(prepared: Sequence[Prepared]) -> dict[str, list[Any]]:
    return {name: [p.values[name] for p in prepared] for name, _ in _COLUMNS}


# One statement per set of shared columns (a handful in practice), within a budget.
_BATCH_STATEMENTS: Cache[frozenset[str], sa.TextClause] = caches.named(
    "submissions.statements", lambda clause: len(clause.text)
)


# A batch's audit event: how many forms it made and their ids (in text order, as Python sorts).
_BATCH_SUMMARY = (
    "jsonb_build_object('created', count(*),"
    " 'ids', jsonb_agg(ins.id::text ORDER BY ins.id::text COLLATE \"C\"))"
)


def _insert_batch(shared: frozenset[str]) -> sa.TextClause:
    """`_INSERT` with the columns in `shared` bound once, as one value for every row (a batch's
    campaign, its caller, a channel or a column all null), and the others as arrays. Each
    array element costs the driver a type check and an encoding, so a batch of 500 forms sends
    about half as many values; the rows and events written are the same. The batch's audit
    event is written by the same statement, when it made any form."""
    known = _BATCH_STATEMENTS.get(shared)
    if known is not None:
        return known
    arrays = [(name, kind) for name, kind in _COLUMNS if name not in shared]
    values = []
    for name, kind in _COLUMNS:
        value = f"CAST(:{name} AS {kind[:-2]})" if name in shared else f"u.{name}"
        values.append(f"{value}::jsonb" if name in _JSON else value)
    statement = sa.text(
        "WITH ins AS (INSERT INTO submissions ("  # noqa: S608
        + ", ".join(name for name, _ in _COLUMNS)
        + ") SELECT "
        + ", ".join(values)
        + " FROM unnest("
        + ", ".join(f"CAST(:{name} AS {kind})" for name, kind in arrays)
        + ") AS u("
        + ", ".join(name for name, _ in arrays)
        + ") ON CONFLICT DO NOTHING RETURNING "
        + ", ".join(events.SUBMISSION_COLUMNS)
        + "), evt AS ("
        + events.submissions_accepted_sql("ins")
        + "), aud AS ("
        + audit.insert_once_for("ins", _BATCH_SUMMARY)
        + ") SELECT client_submission_id, id FROM ins"
    )
    _BATCH_STATEMENTS.put(shared, statement)
    return statement


def _batch_params(prepared: Sequence[Prepared]) -> tuple[sa.TextClause, dict[str, Any]]:
    """The batch statement for these forms and its parameters: a column whose value is the
    same in every row goes as that one value (the key, unique per row, always as an array)."""
    params: dict[str, Any] = {}
    shared = set()
    for name, column in _arrays(prepared).items():
        first = column[0]
        if name != "client_submission_id" and column.count(first) == len(column):
            shared.add(name)
            params[name] = first
        else:
            params[name] = column
    return _insert_batch(frozenset(shared)), params


async def _use_invitations(
    session: AsyncSession, prepared: Sequence[Prepared], created: dict[uuid.UUID, uuid.UUID]
) -> None:
    used = [p for p in prepared if p.invitation_id is not None and p.key in created]
    now = datetime.now(UTC)
    told = []
    for p in used:
        dossier = await session.execute(
            sa.update(Invitation)
            .where(col(Invitation.id) == p.invitation_id, col(Invitation.used_at).is_(None))
            .values(used_at=now, submission_id=created[p.key])
            .returning(col(Invitation.dossier_id))
        )
        told.append(
            events.invitation_used(p.values, p.invitation_id, created[p.key], dossier.scalar(), now)
        )
    await events.emit_many(session, told)


async def _insert(
    session: AsyncSession,
    prepared: Sequence[Prepared],
    config: QualityConfig,
    event: dict[str, Any],
) -> dict[uuid.UUID, uuid.UUID]:
    """One statement for all the forms (INSERT ... SELECT FROM unnest of one array per column),
    their events and, when it made any, the batch's audit event `event` (`audit.event_values`;
    its summary is the statement's); returns the id of each form that was new, by its key."""
    if not prepared:
        return {}
    statement, params = _batch_params(prepared)
    params.update(audit.row_params(event, object_id=True))
    result = await session.execute(statement, params)
    created: dict[uuid.UUID, uuid.UUID] = {key: row_id for key, row_id in result.all()}  # noqa: C416
    await _use_invitations(session, prepared, created)
    await _screen_window(session, config, [p for p in prepared if p.key in created], created)
    return created


async def _screen_window(
    session: AsyncSession,
    config: QualityConfig,
    new: Sequence[Prepared],
    created: dict[uuid.UUID, uuid.UUID],
) -> int:
    """The window rules over the new forms: one statement, only when one of them has a device,
    a surveyor or a dossier to look at."""
    if not new or not screening.needs_window([p.values for p in new]):
        return 0
    return await screening.screen_window(session, config, [created[p.key] for p in new])


async def _insert_one(
    session: AsyncSession, prepared: Prepared, event: dict[str, Any], config: QualityConfig
) -> SubmissionPublic | None:
    """The form and its audit event `event` in one round trip; None when its key was stored."""
    params = {**_arrays([prepared]), **audit.row_params(event)}
    row = (await session.execute(_INSERT_AUDITED, params)).first()
    if row is None:
        return None
    values = row._mapping
    created = {prepared.key: values["id"]}
    await _use_invitations(session, [prepared], created)
    if await _screen_window(session, config, [prepared], created):
        # Flagged by a window rule after the insert: answer the stored row as it is now.
        stored = await session.get(
            Submission, (values["id"], values["campaign_id"]), populate_existing=True
        )
        if stored is not None:
            return public(stored)
    return _public_of(values)


def _public_of(values: sa.RowMapping) -> SubmissionPublic:
    fields = {name: values[name] for name in _PUBLIC if name != "client_submission_id"}
    return SubmissionPublic(**fields, submission_id=values["client_submission_id"])
