"""Taking forms in from every channel, one at a time or in a batch, idempotently.

Rules:
- A form is keyed by its client-made id (or the Idempotency-Key header, scoped to its caller)
  within its campaign. The same key with the same body answers the first answer again; with
  another body, 409. The unique key and INSERT ... ON CONFLICT DO NOTHING (`writes`) make two
  concurrent identical requests produce one row: the second waits for the first and then
  replays it.
- A retry is found by the INSERT doing nothing for its key, not by a look-up first, so a new
  form pays no extra statement; a form that would not pass today still answers its first
  answer when its key is stored.
- A batch locks every invitation it names first, in id order, so two batches naming the same
  ones never wait for each other crosswise; each item gets a result of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.errors import AppError, ConflictError, FieldError, Invalid, Language, field_errors
from app.models.base import FieldProblem
from app.models.submission import (
    BatchItemResult,
    Submission,
    SubmissionBatchResult,
    SubmissionDraft,
    SubmissionIn,
    SubmissionPublic,
)
from app.services import audit, dossiers
from app.services.principal import Principal
from app.services.submissions.checks import (
    AGENCY_ITEM,
    Prepared,
    WriteContext,
    form_errors,
    open_for_writing,
    prepare,
)
from app.services.submissions.common import public, request_hash, same_body
from app.services.submissions.writes import _insert, _insert_one

IDEMPOTENCY_NAMESPACE = uuid.UUID("5b0f3b8e-2f49-4c8e-9d7a-0c5a3e1f6a21")


def key_from_header(principal: Principal, idempotency_key: str) -> uuid.UUID:
    """A header key is scoped to its caller, so two clients cannot collide on a key."""
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{principal.kind}:{principal.id}:{idempotency_key}")


@dataclass(slots=True)
class Outcome:
    status: str  # created, duplicate
    submission: SubmissionPublic


async def _existing(
    session: AsyncSession, campaign_id: uuid.UUID, keys: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Submission]:
    rows = (
        await session.scalars(
            sa.select(Submission).where(
                col(Submission.campaign_id) == campaign_id,
                col(Submission.client_submission_id).in_(list(keys)),
            )
        )
    ).all()
    return {r.client_submission_id: r for r in rows}


# One array parameter instead of an IN list of up to 1000 binds (rendered anew for each batch).
_STORED = sa.text(
    "SELECT client_submission_id, id, request_hash FROM submissions"
    " WHERE campaign_id = :campaign_id AND client_submission_id = ANY(CAST(:keys AS uuid[]))"
)


class _Stored(NamedTuple):
    """What a batch needs of a stored form to answer a retry: its id and its body's hash."""

    id: uuid.UUID
    request_hash: str


async def _stored(
    session: AsyncSession, campaign_id: uuid.UUID, keys: Sequence[uuid.UUID]
) -> dict[uuid.UUID, _Stored]:
    if not keys:
        return {}
    rows = await session.execute(_STORED, {"campaign_id": campaign_id, "keys": list(keys)})
    return {key: _Stored(row_id, body_hash) for key, row_id, body_hash in rows.all()}


def _conflict(pointer: str) -> ConflictError:
    return ConflictError(
        "idempotency_conflict",
        "This submission id was already used for a different form.",
        errors=[FieldError(pointer, "already used with another body", "conflict")],
    )


async def submit_one(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    campaign_id: uuid.UUID,
    data: SubmissionIn | SubmissionDraft,
    idempotency_key: str | None,
) -> Outcome:
    """A retry of a stored form answers its first answer: found by the insert doing nothing
    (ON CONFLICT), so a new form pays no look-up for it.

    A body that failed the schema (`SubmissionDraft`) is refused with one 422 that lists its
    type errors and its answers' errors (`form_errors`), once the campaign is found open."""
    if isinstance(data, SubmissionDraft):
        ctx = await open_for_writing(session, settings, principal, campaign_id)
        type_errors = field_errors(data.errors, ("body",))
        raise Invalid(
            "The request is not valid; see errors.",
            form_errors(ctx.instrument, data.raw, type_errors, "/body"),
            code="validation_failed",
        )
    if data.submission_id is None and not idempotency_key:
        raise Invalid(
            "Send a client-made submission_id or an Idempotency-Key header.",
            [
                FieldError(
                    "/body/submission_id", "required without an Idempotency-Key header", "missing"
                )
            ],
        )
    key = data.submission_id or key_from_header(principal, idempotency_key or "")
    named = None if data.invitation else next(_agency_codes([data]), None)
    ctx = await open_for_writing(session, settings, principal, campaign_id, named)
    campaign = ctx.campaign
    if data.invitation:
        # Claiming refuses a used invitation, so the retry of a stored form is looked for first.
        replay = await _replay(session, campaign.id, key, data)
        if replay is not None:
            return replay
    try:
        prepared = await prepare(ctx, data, key, "/body")
    except AppError:
        # A stored form's retry still answers its first answer (and its key reused with another
        # body is a conflict) when the form would not pass today, or when a concurrent twin used
        # its invitation first.
        replay = await _replay(session, campaign.id, key, data)
        if replay is not None:
            return replay
        raise
    event = audit.event_values(
        principal,
        "submission.create",
        object_type="submission",
        summary={
            "campaign_id": str(campaign.id),
            "agency_id": str(prepared.values["agency_id"]),
            "channel": prepared.values["channel"],
            **(
                {"invitation_id": str(prepared.invitation_id)}
                if prepared.invitation_id is not None
                else {}
            ),
        },
    )
    created = await _insert_one(session, prepared, event, campaign.quality)
    if created is None:
        replay = await _replay(session, campaign.id, key, data)
        if replay is None:
            # Not its key: its invitation made a form already. The lock taken when claiming it
            # makes this rare; the unique key on submissions.invitation_id makes it certain.
            if prepared.invitation_id is not None:
                raise dossiers.invitation_used("/body/invitation")
            raise _conflict("/body/submission_id")  # pragma: no cover - by construction
        return replay
    return Outcome("created", created)


async def _replay(
    session: AsyncSession, campaign_id: uuid.UUID, key: uuid.UUID, data: SubmissionIn
) -> Outcome | None:
    """The first answer of the form stored under `key`, when `data` is its body; a conflict
    when another body is; None when nothing is stored under it."""
    existing = (await _existing(session, campaign_id, [key])).get(key)
    if existing is None:
        return None
    if not same_body(existing.request_hash, request_hash(data), data):
        raise _conflict("/body/submission_id")
    return Outcome("duplicate", public(existing))


async def submit_batch(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    campaign_id: uuid.UUID,
    items: list[dict[str, Any]],
    language: Language | None = None,
) -> SubmissionBatchResult:
    """Every item gets a result; the valid ones are written in one multi-row statement.

    An item's errors point from the request body's root (`/body/submissions/<i>/...`), its
    type errors and answer errors together (`form_errors`), worded in `language`."""
    ctx = await open_for_writing(session, settings, principal, campaign_id)
    campaign = ctx.campaign
    results, parsed = _parse_items(ctx, items, language)

    # Every invitation the batch names is locked first, in one order, so that two batches
    # naming the same ones never wait for each other crosswise.
    invited = [d.invitation for d in parsed.values() if d.invitation]
    if invited:
        await dossiers.lock_invitations(session, settings, invited)

    # No look-up first: a retry of a stored form is found by the INSERT doing nothing for its
    # key (or, when the form would not pass today, among the keys that failed), so a batch of
    # new forms pays no extra statement.
    await ctx.prefetch_agencies(_agency_codes(parsed.values()))
    batch = await _prepare_batch(ctx, parsed)
    event = audit.event_values(
        principal, "submission.batch", object_type="campaign", object_id=campaign.id
    )
    created = await _insert(session, list(batch.prepared.values()), campaign.quality, event)
    # Keys this batch did not create: stored before (a retry, or a concurrent request with the
    # same key that committed first), or refused above.
    stored = await _stored(session, campaign.id, [k for k in batch.first if k not in created])
    results.update(_answers(batch, items, created, stored, language))

    ordered = [results[i] for i in sorted(results)]
    return SubmissionBatchResult(
        results=ordered,
        created=sum(r.status == "created" for r in ordered),
        duplicates=sum(r.status == "duplicate" for r in ordered),
        errors=sum(r.status == "error" for r in ordered),
    )


_ITEMS = TypeAdapter(list[SubmissionIn])


def _parse_items(
    ctx: WriteContext, items: list[dict[str, Any]], language: Language | None
) -> tuple[dict[int, BatchItemResult], dict[int, SubmissionIn]]:
    """The items that pass the schema and carry their key, by index; the others' results."""
    results: dict[int, BatchItemResult] = {}
    parsed: dict[int, SubmissionIn] = {}
    try:  # the whole list in one call (a third quicker); item by item when one fails
        valid: list[SubmissionIn | None] = list(_ITEMS.validate_python(items))
    except ValidationError:
        valid = [None] * len(items)
    for i, raw in enumerate(items):
        try:
            checked = valid[i]
            data = SubmissionIn.model_validate(raw) if checked is None else checked
        except ValidationError as exc:
            type_errors = field_errors(exc.errors(), ("body", "submissions", i))
            problems = form_errors(ctx.instrument, raw, type_errors, f"/body/submissions/{i}")
            results[i] = _error_result(i, raw, problems, language)
            continue
        if data.submission_id is None:
            problem = FieldError(
                f"/body/submissions/{i}/submission_id", "required in a batch", "missing"
            )
            results[i] = _error_result(i, raw, [problem], language)
            continue
        parsed[i] = data
    return results, parsed


def _agency_codes(forms: Iterable[SubmissionIn]) -> Iterator[str]:
    """The agency codes the forms name, in their field or in the answer standing for it."""
    for data in forms:
        if data.agency_code is not None:
            yield data.agency_code
        said = data.answers.get(AGENCY_ITEM)
        if isinstance(said, str):
            yield said


@dataclass(slots=True)
class _Batch:
    """A batch's parsed items after the checks, by index."""

    parsed: dict[int, SubmissionIn]
    prepared: dict[int, Prepared] = field(default_factory=dict)
    refused: dict[int, list[FieldError]] = field(default_factory=dict)
    first: dict[uuid.UUID, int] = field(default_factory=dict)  # where each key first appears
    repeats: list[int] = field(default_factory=list)  # items whose key came earlier


async def _prepare_batch(ctx: WriteContext, parsed: dict[int, SubmissionIn]) -> _Batch:
    """Each key's first item checked; its repeats in the batch only noted."""
    batch = _Batch(parsed)
    for i, data in parsed.items():
        key = data.submission_id
        if key is None:  # pragma: no cover - filtered above
            continue
        if key in batch.first:
            batch.repeats.append(i)
            continue
        batch.first[key] = i
        try:
            batch.prepared[i] = await prepare(ctx, data, key, f"/body/submissions/{i}")
        except AppError as error:
            problems = list(error.errors) or [
                FieldError(f"/body/submissions/{i}", error.detail, error.code)
            ]
            batch.refused[i] = [_rebase(e, i) for e in problems]
    return batch


def _answers(
    batch: _Batch,
    items: list[dict[str, Any]],
    created: dict[uuid.UUID, uuid.UUID],
    stored: dict[uuid.UUID, _Stored],
    language: Language | None,
) -> dict[int, BatchItemResult]:
    """The result of every parsed item, once the batch's new forms are written."""
    results: dict[int, BatchItemResult] = {}
    parsed = batch.parsed
    for i, p in batch.prepared.items():
        if p.key in created:
            results[i] = BatchItemResult(
                index=i, submission_id=p.key, status="created", id=created[p.key]
            )
        elif p.invitation_id is not None and p.key not in stored:
            # Not stored under its key: the database refused a second form for its invitation.
            used = dossiers.invitation_used(f"/submissions/{i}/invitation")
            results[i] = _error_result(i, items[i], list(used.errors))
        else:
            results[i] = _replay_result(
                i, p.key, stored.get(p.key), p.hash, parsed[i], items[i], language
            )
    for i, problems in batch.refused.items():
        key = parsed[i].submission_id
        if key is not None and key in stored:  # a retry answers its first answer
            results[i] = _replay_result(
                i, key, stored[key], request_hash(parsed[i]), parsed[i], items[i], language
            )
        else:
            results[i] = _error_result(i, items[i], problems, language)
    for i in batch.repeats:
        key = parsed[i].submission_id
        if key is None:  # pragma: no cover - filtered above
            continue
        row_id = created.get(key)
        # A repeat of a form this batch created is answered from its hash, not looked up.
        earlier = (
            _Stored(row_id, batch.prepared[batch.first[key]].hash) if row_id else stored.get(key)
        )
        results[i] = _replay_result(
            i, key, earlier, request_hash(parsed[i]), parsed[i], items[i], language
        )
    return results


def _replay_result(
    index: int,
    key: uuid.UUID,
    row: _Stored | None,
    body_hash: str,
    data: SubmissionIn,
    raw: Any,
    language: Language | None,
) -> BatchItemResult:
    if row is not None and same_body(row.request_hash, body_hash, data):
        return BatchItemResult(index=index, submission_id=key, status="duplicate", id=row.id)
    detail = (
        "already used with another body" if row is not None else "refused earlier in this batch"
    )
    pointer = f"/body/submissions/{index}/submission_id"
    return _error_result(index, raw, [FieldError(pointer, detail, "conflict")], language)


def _rebase(error: FieldError, index: int) -> FieldError:
    """An item's error located from the batch body's root (a service may say `/body/...`)."""
    pointer = error.pointer
    item = f"/body/submissions/{index}"
    if pointer.startswith("/body") and not (pointer == item or pointer.startswith(item + "/")):
        pointer = item + pointer[len("/body") :]
    return FieldError(pointer, error.detail, error.code, error.params)


def _error_result(
    index: int, raw: Any, errors: list[FieldError], language: Language | None = None
) -> BatchItemResult:
    key = raw.get("submission_id") if isinstance(raw, dict) else None
    try:
        parsed_key = uuid.UUID(str(key)) if key is not None else None
    except ValueError:
        parsed_key = None
    return BatchItemResult(
        index=index,
        submission_id=parsed_key,
        status="error",
        errors=[FieldProblem(**e.as_dict(language)) for e in errors],
    )
