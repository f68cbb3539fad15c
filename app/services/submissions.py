"""Taking forms from every channel: validation, idempotency, provenance, review, corrections.

Rules:
- A form is keyed by its client-made id (or the Idempotency-Key header) within its campaign.
  The same key with the same body answers the first answer again; with another body, 409. The
  unique key and INSERT ... ON CONFLICT DO NOTHING make two concurrent identical requests
  produce one row: the second waits for the first and then replays it.
- With an invitation, the agency and procedure come from the invited dossier, never from the
  client, and the invitation is used up in the same transaction as the form.
- Lists page in the order of the writing transaction (`tx_id`, then id) and show only rows of
  transactions older than every transaction still running, so a row committed late always
  lands after the cursor: no page skips or repeats a row while forms keep arriving.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.errors import AppError, FieldError, Invalid, NotFound, PermissionDenied, pointer_from_loc
from app.models.agency import Agency
from app.models.campaign import (
    Campaign,
    CampaignAgency,
    CampaignSector,
    CampaignState,
    CampaignSurveyor,
    FrameUnit,
    Stratum,
)
from app.models.catalogue import Procedure, Sector
from app.models.dossier import Invitation
from app.models.identity import Role
from app.models.questionnaire import Questionnaire
from app.models.submission import (
    BatchItemResult,
    CorrectionIn,
    RespondentType,
    ReviewIn,
    Submission,
    SubmissionBatchResult,
    SubmissionIn,
    SubmissionPage,
    SubmissionPublic,
    SubmissionState,
    SubmissionVersion,
    SubmissionVersionPublic,
)
from app.services import audit, dossiers, events, instrument
from app.services.agencies import subtree_ids
from app.services.paging import cursor_int, cursor_str, decode_cursor, encode_cursor
from app.services.principal import Principal

IDEMPOTENCY_NAMESPACE = uuid.UUID("5b0f3b8e-2f49-4c8e-9d7a-0c5a3e1f6a21")


# Frozen questionnaires by id. A trigger forbids changing a frozen row, so once parsed its
# definition serves every later form of the process without reading the row again.
_INSTRUMENTS: dict[uuid.UUID, instrument.Questionnaire] = {}


def instrument_of(row: Questionnaire) -> instrument.Questionnaire:
    """The parsed definition. Frozen versions never change, so they are parsed once a process."""
    cached = _INSTRUMENTS.get(row.id)
    if cached is not None and row.frozen_at is not None:
        return cached
    parsed = instrument.Questionnaire.model_validate(row.definition)
    if row.frozen_at is not None:
        _INSTRUMENTS[row.id] = parsed
    return parsed


def key_from_header(principal: Principal, idempotency_key: str) -> uuid.UUID:
    """A header key is scoped to its caller, so two clients cannot collide on a key."""
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{principal.kind}:{principal.id}:{idempotency_key}")


def _canonical(data: SubmissionIn) -> tuple[str, str]:
    """The body's hash and its answers as JSON text (what the INSERT stores).

    The hash is SHA-256 of `json.dumps(data.model_dump(mode="json", exclude={"submission_id"}),
    sort_keys=True, ensure_ascii=False)`: stored hashes were made so and a retry must match
    them. That text is spelled here from two parts so that the answers, the bulk of a form, are
    written out once and serve both: "agency_code" sorts before "answers", and every other
    field after it."""
    answers = json.dumps(data.answers, sort_keys=True, ensure_ascii=False)
    rest = data.model_dump(mode="json", exclude={"submission_id", "answers", "agency_code"})
    text = (
        '{"agency_code": '
        + json.dumps(data.agency_code, ensure_ascii=False)
        + ', "answers": '
        + answers
        + ", "
        + json.dumps(rest, sort_keys=True, ensure_ascii=False)[1:]
    )
    return hashlib.sha256(text.encode()).hexdigest(), answers


def request_hash(data: SubmissionIn) -> str:
    return _canonical(data)[0]


def public(row: Submission) -> SubmissionPublic:
    values = {
        name: getattr(row, name)
        for name in SubmissionPublic.model_fields
        if name != "submission_id"
    }
    return SubmissionPublic(**values, submission_id=row.client_submission_id)


@dataclass(slots=True)
class Prepared:
    """A form that passed every check, ready to insert."""

    key: uuid.UUID
    hash: str
    values: dict[str, Any]  # the row's columns; "answers" as JSON text
    invitation_id: uuid.UUID | None


@dataclass(slots=True)
class Outcome:
    status: str  # created, duplicate
    submission: SubmissionPublic


@dataclass(frozen=True, slots=True)
class OpenCampaign:
    """The campaign's columns that writing forms needs; its state is read on every request."""

    id: uuid.UUID
    state: str
    questionnaire_id: uuid.UUID


_AGENCIES = Agency.metadata.tables["agencies"]
_STRATA = Stratum.metadata.tables["strata"]
_CAMPAIGNS = Campaign.metadata.tables["campaigns"]
# Built once: the statements every form runs, as plain Core on the tables.
_AGENCY_AND_STRATA = (
    sa.select(_AGENCIES.c.id, _STRATA.c.id, _STRATA.c.sector_id)
    .select_from(
        _AGENCIES.outerjoin(
            _STRATA,
            sa.and_(
                _STRATA.c.agency_id == _AGENCIES.c.id,
                _STRATA.c.campaign_id == sa.bindparam("campaign_id"),
            ),
        )
    )
    .where(_AGENCIES.c.code == sa.bindparam("code"))
)
_CAMPAIGN_ROW = sa.select(_CAMPAIGNS.c.state, _CAMPAIGNS.c.questionnaire_id).where(
    _CAMPAIGNS.c.id == sa.bindparam("campaign_id")
)


@dataclass(slots=True)
class WriteContext:
    """What every form of one request is checked against, loaded once per request.

    A batch of a thousand forms costs a handful of queries for the campaign's scope and the
    caller's rights, plus one per distinct code it names. An agency's strata in the campaign
    come with its code lookup, so a single form pays no query of its own for them."""

    session: AsyncSession
    settings: Settings
    principal: Principal
    campaign: OpenCampaign
    instrument: instrument.Questionnaire
    scope: frozenset[uuid.UUID]
    visible: set[uuid.UUID] | None
    surveyor_agencies: set[uuid.UUID] | None
    sectors: frozenset[uuid.UUID]
    strata: dict[tuple[uuid.UUID, uuid.UUID | None], uuid.UUID] = field(default_factory=dict)
    strata_known: set[uuid.UUID] = field(default_factory=set)  # agencies whose strata are in
    agencies: dict[str, uuid.UUID | None] = field(default_factory=dict)
    procedures: dict[str, tuple[uuid.UUID, uuid.UUID] | None] = field(default_factory=dict)
    sector_codes: dict[str, uuid.UUID | None] = field(default_factory=dict)

    async def agency(self, code: str) -> uuid.UUID | None:
        """The agency with this code, its strata in the campaign read in the same query."""
        if code not in self.agencies:
            rows = (
                await self.session.execute(
                    _AGENCY_AND_STRATA, {"code": code, "campaign_id": self.campaign.id}
                )
            ).all()
            agency_id = rows[0][0] if rows else None
            self.agencies[code] = agency_id
            if agency_id is not None:
                self._know_strata(agency_id, [(i, s) for _, i, s in rows if i is not None])
        return self.agencies[code]

    def _know_strata(
        self, agency_id: uuid.UUID, rows: Sequence[tuple[uuid.UUID, uuid.UUID | None]]
    ) -> None:
        for stratum_id, sector_id in rows:
            self.strata[(agency_id, sector_id)] = stratum_id
        self.strata_known.add(agency_id)

    async def procedure(self, code: str) -> tuple[uuid.UUID, uuid.UUID] | None:
        """The procedure's id and its sector's."""
        if code not in self.procedures:
            row = (
                await self.session.execute(
                    sa.select(col(Procedure.id), col(Procedure.sector_id)).where(
                        col(Procedure.code) == code
                    )
                )
            ).first()
            self.procedures[code] = (row[0], row[1]) if row else None
        return self.procedures[code]

    async def sector(self, code: str) -> uuid.UUID | None:
        if code not in self.sector_codes:
            self.sector_codes[code] = await self.session.scalar(
                sa.select(col(Sector.id)).where(col(Sector.code) == code)
            )
        return self.sector_codes[code]

    async def procedure_sector(self, procedure_id: uuid.UUID) -> uuid.UUID | None:
        for known in self.procedures.values():
            if known is not None and known[0] == procedure_id:
                return known[1]
        return await self.session.scalar(
            sa.select(col(Procedure.sector_id)).where(col(Procedure.id) == procedure_id)
        )

    async def stratum(self, agency_id: uuid.UUID, sector_id: uuid.UUID | None) -> uuid.UUID | None:
        if agency_id not in self.strata_known:  # an agency that came without a code lookup
            rows = (
                await self.session.execute(
                    sa.select(col(Stratum.id), col(Stratum.sector_id)).where(
                        col(Stratum.campaign_id) == self.campaign.id,
                        col(Stratum.agency_id) == agency_id,
                    )
                )
            ).all()
            self._know_strata(agency_id, [(i, s) for i, s in rows])
        return self.strata.get((agency_id, sector_id)) or self.strata.get((agency_id, None))


def _subtree_of_all(roots: sa.Select[uuid.UUID]) -> sa.Select[uuid.UUID]:
    agencies = Agency.metadata.tables["agencies"]
    tree = sa.select(agencies.c.id).where(agencies.c.id.in_(roots)).cte("tree", recursive=True)
    tree = tree.union(sa.select(agencies.c.id).join(tree, agencies.c.parent_id == tree.c.id))
    return sa.select(tree.c.id)


# A campaign's scope (agencies and sectors) can change only while it is a draft; once opened it
# is fixed for good, so each process reads it once per campaign.
_SCOPES: dict[uuid.UUID, tuple[frozenset[uuid.UUID], frozenset[uuid.UUID]]] = {}


async def _fixed_scope(
    session: AsyncSession, campaign: OpenCampaign
) -> tuple[frozenset[uuid.UUID], frozenset[uuid.UUID]]:
    cached = _SCOPES.get(campaign.id)
    if cached is not None:
        return cached
    roots = sa.select(col(CampaignAgency.agency_id)).where(
        col(CampaignAgency.campaign_id) == campaign.id
    )
    agencies = frozenset((await session.scalars(_subtree_of_all(roots))).all())
    sectors = frozenset(
        (
            await session.scalars(
                sa.select(col(CampaignSector.sector_id)).where(
                    col(CampaignSector.campaign_id) == campaign.id
                )
            )
        ).all()
    )
    if campaign.state != CampaignState.draft:
        _SCOPES[campaign.id] = (agencies, sectors)
    return agencies, sectors


async def open_for_writing(
    session: AsyncSession, settings: Settings, principal: Principal, campaign_id: uuid.UUID
) -> WriteContext:
    """The campaign, if the caller may write to it and it is open, with what forms need."""
    if principal.campaign_id not in (None, campaign_id):
        raise NotFound("campaign")
    found = (await session.execute(_CAMPAIGN_ROW, {"campaign_id": campaign_id})).first()
    if found is None:
        raise NotFound("campaign")
    campaign = OpenCampaign(campaign_id, found[0], found[1])
    surveyor_agencies: set[uuid.UUID] | None = None
    if principal.role == Role.surveyor:
        assigned = (
            await session.scalars(
                sa.select(col(CampaignSurveyor.agency_id)).where(
                    col(CampaignSurveyor.campaign_id) == campaign_id,
                    col(CampaignSurveyor.user_id) == principal.id,
                )
            )
        ).all()
        if not assigned:
            raise NotFound("campaign")
        # An assignment without an agency covers the whole campaign.
        if all(a is not None for a in assigned):
            surveyor_agencies = {a for a in assigned if a is not None}
    if campaign.state != CampaignState.open:
        raise AppError(
            "campaign_not_open",
            f"The campaign is {campaign.state}: forms are taken only while it is open.",
            409,
        )
    parsed = _INSTRUMENTS.get(campaign.questionnaire_id)
    if parsed is None:
        questionnaire = await session.get(Questionnaire, campaign.questionnaire_id)
        if questionnaire is None:  # pragma: no cover - a foreign key guarantees it
            raise NotFound("questionnaire")
        parsed = instrument_of(questionnaire)
    scope, sectors = await _fixed_scope(session, campaign)
    visible = None
    if principal.agency_scoped and principal.agency_id is not None:
        visible = set((await session.scalars(subtree_ids(principal.agency_id))).all())
    return WriteContext(
        session, settings, principal, campaign, parsed, scope, visible, surveyor_agencies, sectors
    )


async def prepare(ctx: WriteContext, data: SubmissionIn, key: uuid.UUID, base: str) -> Prepared:
    """Check one form against the questionnaire, the campaign's scope and the caller's rights.

    Writes nothing (an invitation is only locked). Raises Invalid listing every problem, with
    pointers under `base` (e.g. /body)."""
    session, campaign, principal = ctx.session, ctx.campaign, ctx.principal
    errors = instrument.validate_answers(
        ctx.instrument, data.answers, pointer_prefix=f"{base}/answers"
    )

    def problem(field: str, detail: str, code: str) -> None:
        errors.append(FieldError(f"{base}/{field}", detail, code))

    invitation_id = None
    agency_id: uuid.UUID | None = None
    procedure_id: uuid.UUID | None = None
    sector_id: uuid.UUID | None = None
    if data.invitation:
        invitation = await dossiers.claim_invitation(
            session, ctx.settings, data.invitation, campaign.id
        )
        invitation_id = invitation.id
        agency_id, procedure_id = invitation.agency_id, invitation.procedure_id
        sector_id = await ctx.procedure_sector(procedure_id)
    else:
        if data.agency_code is None:
            problem("agency_code", "required without an invitation", "missing")
        else:
            agency_id = await ctx.agency(data.agency_code)
            if agency_id is None:
                problem("agency_code", "no agency has this code", "unknown")
        if data.procedure_code is not None:
            found = await ctx.procedure(data.procedure_code)
            if found is None:
                problem("procedure_code", "no procedure has this code", "unknown")
            else:
                procedure_id, sector_id = found
        if data.sector_code is not None:
            named = await ctx.sector(data.sector_code)
            if named is None:
                problem("sector_code", "no sector has this code", "unknown")
            elif sector_id is not None and named != sector_id:
                problem("sector_code", "not the procedure's sector", "mismatch")
            else:
                sector_id = named
    if agency_id is not None:
        if agency_id not in ctx.scope:
            problem("agency_code", "the agency is outside the campaign's scope", "out_of_scope")
        elif ctx.visible is not None and agency_id not in ctx.visible:
            problem("agency_code", "the agency is outside your scope", "out_of_scope")
        elif ctx.surveyor_agencies is not None and agency_id not in ctx.surveyor_agencies:
            problem("agency_code", "you are not assigned to this agency", "out_of_scope")
    if sector_id is not None and ctx.sectors and sector_id not in ctx.sectors:
        problem("sector_code", "the sector is outside the campaign's scope", "out_of_scope")
    frame_unit_id = None
    if data.dossier_code is not None:
        frame_unit_id = await session.scalar(
            sa.select(col(FrameUnit.id)).where(
                col(FrameUnit.campaign_id) == campaign.id,
                col(FrameUnit.dossier_code) == data.dossier_code,
            )
        )
        if frame_unit_id is None:
            problem("dossier_code", "not in this campaign's frame", "unknown")
    if errors or agency_id is None:
        raise Invalid("The form is not valid; see errors.", errors)

    body_hash, answers_json = _canonical(data)
    values: dict[str, Any] = {
        "campaign_id": campaign.id,
        "client_submission_id": key,
        "request_hash": body_hash,
        "agency_id": agency_id,
        "sector_id": sector_id,
        "procedure_id": procedure_id,
        "stratum_id": await ctx.stratum(agency_id, sector_id),
        "frame_unit_id": frame_unit_id,
        "respondent_type": data.respondent_type,
        "channel": data.channel.value,
        "client_id": principal.id if principal.kind == "client" else None,
        "surveyor_id": principal.id if principal.role == Role.surveyor else None,
        "device_id": data.device_id,
        "answers": answers_json,
        "received_at": data.received_at or datetime.now(UTC),
    }
    return Prepared(key, body_hash, values, invitation_id)


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


def _conflict(pointer: str) -> AppError:
    return AppError(
        "idempotency_conflict",
        "This submission id was already used for a different form.",
        409,
        errors=[FieldError(pointer, "already used with another body", "conflict")],
    )


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
    ("answers", "text[]"),
    ("received_at", "timestamptz[]"),
)
# Built once from the constant column list above; every value is a bound array.
_INSERT_ROWS = (
    "INSERT INTO submissions ("  # noqa: S608
    + ", ".join(name for name, _ in _COLUMNS)
    + ") SELECT "
    + ", ".join("answers::jsonb" if name == "answers" else name for name, _ in _COLUMNS)
    + " FROM unnest("
    + ", ".join(f"CAST(:{name} AS {kind})" for name, kind in _COLUMNS)
    + ") AS u("
    + ", ".join(name for name, _ in _COLUMNS)
    + ") ON CONFLICT ON CONSTRAINT uq_submissions_client_submission DO NOTHING"
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


async def _use_invitations(
    session: AsyncSession, prepared: Sequence[Prepared], created: dict[uuid.UUID, uuid.UUID]
) -> None:
    used = [p for p in prepared if p.invitation_id is not None and p.key in created]
    now = datetime.now(UTC)
    told = []
    for p in used:
        dossier = await session.execute(
            sa.update(Invitation)
            .where(col(Invitation.id) == p.invitation_id)
            .values(used_at=now, submission_id=created[p.key])
            .returning(col(Invitation.dossier_id))
        )
        told.append(
            events.invitation_used(p.values, p.invitation_id, created[p.key], dossier.scalar(), now)
        )
    await events.emit_many(session, told)


async def _insert(
    session: AsyncSession, prepared: Sequence[Prepared]
) -> dict[uuid.UUID, uuid.UUID]:
    """One statement for all the forms (INSERT ... SELECT FROM unnest of one array per column);
    returns the id of each form that was new, by its key."""
    if not prepared:
        return {}
    result = await session.execute(_INSERT, _arrays(prepared))
    created: dict[uuid.UUID, uuid.UUID] = {key: row_id for key, row_id in result.all()}  # noqa: C416
    await _use_invitations(session, prepared, created)
    return created


async def _insert_one(
    session: AsyncSession, prepared: Prepared, event: dict[str, Any]
) -> SubmissionPublic | None:
    """The form and its audit event `event` in one round trip; None when its key was stored."""
    params = {**_arrays([prepared]), **audit.row_params(event)}
    row = (await session.execute(_INSERT_AUDITED, params)).first()
    if row is None:
        return None
    values = row._mapping
    await _use_invitations(session, [prepared], {prepared.key: values["id"]})
    return _public_of(values)


def _public_of(values: sa.RowMapping) -> SubmissionPublic:
    fields = {name: values[name] for name in _PUBLIC if name != "client_submission_id"}
    return SubmissionPublic(**fields, submission_id=values["client_submission_id"])


async def submit_one(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    campaign_id: uuid.UUID,
    data: SubmissionIn,
    idempotency_key: str | None,
) -> Outcome:
    """A retry of a stored form answers its first answer: found by the insert doing nothing
    (ON CONFLICT), so a new form pays no look-up for it."""
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
    ctx = await open_for_writing(session, settings, principal, campaign_id)
    campaign = ctx.campaign
    if data.invitation:
        # Claiming refuses a used invitation, so the retry of a stored form is looked for first.
        replay = await _replay(session, campaign.id, key, request_hash(data))
        if replay is not None:
            return replay
    try:
        prepared = await prepare(ctx, data, key, "/body")
    except AppError:
        # A stored form's retry still answers its first answer (and its key reused with another
        # body is a conflict) when the form would not pass today, or when a concurrent twin used
        # its invitation first.
        replay = await _replay(session, campaign.id, key, request_hash(data))
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
        },
    )
    created = await _insert_one(session, prepared, event)
    if created is None:
        replay = await _replay(session, campaign.id, key, prepared.hash)
        if replay is None:  # pragma: no cover - the conflicting row exists by construction
            raise _conflict("/body/submission_id")
        return replay
    return Outcome("created", created)


async def _replay(
    session: AsyncSession, campaign_id: uuid.UUID, key: uuid.UUID, body_hash: str
) -> Outcome | None:
    existing = (await _existing(session, campaign_id, [key])).get(key)
    if existing is None:
        return None
    if existing.request_hash != body_hash:
        raise _conflict("/body/submission_id")
    return Outcome("duplicate", public(existing))


async def submit_batch(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    campaign_id: uuid.UUID,
    items: list[dict[str, Any]],
) -> SubmissionBatchResult:
    """Every item gets a result; the valid ones are written in one multi-row statement."""
    ctx = await open_for_writing(session, settings, principal, campaign_id)
    campaign = ctx.campaign
    results: dict[int, BatchItemResult] = {}
    parsed: dict[int, SubmissionIn] = {}
    for i, raw in enumerate(items):
        try:
            data = SubmissionIn.model_validate(raw)
        except ValidationError as exc:
            problems = [
                FieldError(f"/submissions/{i}" + pointer_from_loc(e["loc"]), e["msg"], e["type"])
                for e in exc.errors()
            ]
            results[i] = _error_result(i, raw, problems)
            continue
        if data.submission_id is None:
            problem = FieldError(
                f"/submissions/{i}/submission_id", "required in a batch", "missing"
            )
            results[i] = _error_result(i, raw, [problem])
            continue
        parsed[i] = data

    # No look-up first: a retry of a stored form is found by the INSERT doing nothing for its
    # key (or, when the form would not pass today, among the keys that failed), so a batch of
    # new forms pays no extra statement.
    prepared: dict[int, Prepared] = {}
    refused: dict[int, list[FieldError]] = {}
    first: dict[uuid.UUID, int] = {}  # where each key first appears in this batch
    repeats: list[int] = []
    for i, data in parsed.items():
        key = data.submission_id
        if key is None:  # pragma: no cover - filtered above
            continue
        if key in first:
            repeats.append(i)
            continue
        first[key] = i
        try:
            prepared[i] = await prepare(ctx, data, key, f"/submissions/{i}")
        except AppError as error:
            problems = list(error.errors) or [
                FieldError(f"/submissions/{i}", error.detail, error.code)
            ]
            refused[i] = [_rebase(e, i) for e in problems]

    created = await _insert(session, list(prepared.values()))
    # Keys this batch did not create: stored before (a retry, or a concurrent request with the
    # same key that committed first), or refused above.
    stored = await _stored(session, campaign.id, [k for k in first if k not in created])
    for i, p in prepared.items():
        if p.key in created:
            results[i] = BatchItemResult(
                index=i, submission_id=p.key, status="created", id=created[p.key]
            )
        else:
            results[i] = _replay_result(i, p.key, stored.get(p.key), p.hash, items[i])
    for i, problems in refused.items():
        key = parsed[i].submission_id
        if key is not None and key in stored:  # a retry answers its first answer
            results[i] = _replay_result(i, key, stored[key], request_hash(parsed[i]), items[i])
        else:
            results[i] = _error_result(i, items[i], problems)
    for i in repeats:
        key = parsed[i].submission_id
        if key is None:  # pragma: no cover - filtered above
            continue
        row_id = created.get(key)
        # A repeat of a form this batch created is answered from its hash, not looked up.
        earlier = _Stored(row_id, prepared[first[key]].hash) if row_id else stored.get(key)
        results[i] = _replay_result(i, key, earlier, request_hash(parsed[i]), items[i])

    if created:
        await audit.record(
            session,
            principal,
            "submission.batch",
            object_type="campaign",
            object_id=campaign.id,
            summary={"created": len(created), "ids": sorted(str(v) for v in created.values())},
        )
    ordered = [results[i] for i in sorted(results)]
    return SubmissionBatchResult(
        results=ordered,
        created=sum(r.status == "created" for r in ordered),
        duplicates=sum(r.status == "duplicate" for r in ordered),
        errors=sum(r.status == "error" for r in ordered),
    )


def _replay_result(
    index: int, key: uuid.UUID, row: _Stored | None, body_hash: str, raw: Any
) -> BatchItemResult:
    if row is not None and row.request_hash == body_hash:
        return BatchItemResult(index=index, submission_id=key, status="duplicate", id=row.id)
    detail = (
        "already used with another body" if row is not None else "refused earlier in this batch"
    )
    return _error_result(
        index, raw, [FieldError(f"/submissions/{index}/submission_id", detail, "conflict")]
    )


def _rebase(error: FieldError, index: int) -> FieldError:
    pointer = error.pointer
    if pointer.startswith("/body"):
        pointer = f"/submissions/{index}" + pointer[len("/body") :]
    return FieldError(pointer, error.detail, error.code)


def _error_result(index: int, raw: Any, errors: list[FieldError]) -> BatchItemResult:
    key = raw.get("submission_id") if isinstance(raw, dict) else None
    try:
        parsed_key = uuid.UUID(str(key)) if key is not None else None
    except ValueError:
        parsed_key = None
    return BatchItemResult(
        index=index, submission_id=parsed_key, status="error", errors=[e.as_dict() for e in errors]
    )


# ---- reading -----------------------------------------------------------------------------------


def _visible(principal: Principal) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = []
    if principal.agency_scoped and principal.agency_id is not None:
        clauses.append(col(Submission.agency_id).in_(subtree_ids(principal.agency_id)))
    if principal.campaign_id is not None:
        clauses.append(col(Submission.campaign_id) == principal.campaign_id)
    return clauses


async def get_submission(
    session: AsyncSession, principal: Principal, submission_id: uuid.UUID, *, lock: bool = False
) -> Submission:
    query = sa.select(Submission).where(col(Submission.id) == submission_id, *_visible(principal))
    if principal.role == Role.surveyor:
        query = query.where(col(Submission.surveyor_id) == principal.id)
    if lock:
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        raise NotFound("submission")
    return row


@dataclass(frozen=True, slots=True)
class Filters:
    campaign_id: uuid.UUID | None = None
    agency_id: uuid.UUID | None = None
    channel: str | None = None
    state: SubmissionState | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(principal: Principal, f: Filters) -> sa.Select[Submission]:
    query = sa.select(Submission).where(*_visible(principal))
    if f.campaign_id is not None:
        query = query.where(col(Submission.campaign_id) == f.campaign_id)
    if f.agency_id is not None:
        query = query.where(col(Submission.agency_id).in_(subtree_ids(f.agency_id)))
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
    rows = list((await session.scalars(query)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
    if rows:
        # Always hand back a cursor: a caller polling for new forms resumes from the last row.
        next_cursor = encode_cursor({"tx": rows[-1].tx_id, "id": str(rows[-1].id)})
    return SubmissionPage(items=[public(r) for r in rows], next_cursor=next_cursor)


async def export_rows(session: AsyncSession, principal: Principal, f: Filters) -> list[Submission]:
    query = _filtered(principal, f).order_by(col(Submission.received_at), col(Submission.id))
    return list((await session.scalars(query)).all())


# ---- review and corrections --------------------------------------------------------------------

REVIEWABLE = {
    SubmissionState.received: {
        SubmissionState.valid,
        SubmissionState.flagged,
        SubmissionState.rejected,
    },
    SubmissionState.flagged: {SubmissionState.valid, SubmissionState.rejected},
    SubmissionState.valid: {SubmissionState.flagged, SubmissionState.rejected},
    SubmissionState.rejected: {SubmissionState.valid, SubmissionState.flagged},
}


async def review(
    session: AsyncSession, actor: Principal, submission_id: uuid.UUID, data: ReviewIn
) -> Submission:
    row = await get_submission(session, actor, submission_id, lock=True)
    current = SubmissionState(row.state)
    if data.state not in REVIEWABLE.get(current, set()):
        raise AppError(
            "review_not_allowed", f"A {current.value} form cannot become {data.state.value}.", 409
        )
    if data.state in (SubmissionState.rejected, SubmissionState.flagged) and not data.reason:
        raise Invalid(
            "Say why.", [FieldError("/body/reason", "required to flag or reject", "missing")]
        )
    campaign = await session.get(Campaign, row.campaign_id)
    if campaign is not None and campaign.state in (CampaignState.published, CampaignState.archived):
        raise AppError("campaign_locked", "The campaign is published: its forms are final.", 409)
    row.state = data.state
    row.review_reason = data.reason
    row.updated_at = datetime.now(UTC)
    await session.flush()
    await events.submission_reviewed(session, row, current.value)
    await audit.record(
        session,
        actor,
        "submission.review",
        object_type="submission",
        object_id=row.id,
        summary={"from": current.value, "to": data.state.value, "reason": data.reason},
    )
    return row


async def correct(
    session: AsyncSession,
    settings: Settings,
    actor: Principal,
    submission_id: uuid.UUID,
    data: CorrectionIn,
) -> Submission:
    """A surveyor fixes their own entry before review; the previous version is kept."""
    row = await get_submission(session, actor, submission_id, lock=True)
    if row.surveyor_id != actor.id:
        raise PermissionDenied("Only the surveyor who entered a form may correct it.")
    if row.state != SubmissionState.received:
        raise AppError(
            "already_reviewed", "The form has been reviewed: it can no longer be corrected.", 409
        )
    ctx = await open_for_writing(session, settings, actor, row.campaign_id)
    replacement = SubmissionIn(
        submission_id=row.client_submission_id,
        agency_code=data.agency_code
        or await session.scalar(sa.select(col(Agency.code)).where(col(Agency.id) == row.agency_id)),
        sector_code=data.sector_code,
        procedure_code=data.procedure_code,
        # the table's check constraint holds a stored value to the same two
        respondent_type=data.respondent_type
        if data.respondent_type is not None
        else cast(RespondentType | None, row.respondent_type),
        channel=row.channel,
        device_id=row.device_id,
        received_at=row.received_at,
        answers=data.answers,
    )
    prepared = await prepare(ctx, replacement, row.client_submission_id, "/body")
    session.add(
        SubmissionVersion(
            submission_id=row.id,
            version=row.version,
            answers=row.answers,
            agency_id=row.agency_id,
            sector_id=row.sector_id,
            procedure_id=row.procedure_id,
            respondent_type=row.respondent_type,
            replaced_by=actor.id,
        )
    )
    before = {"answers": row.answers, "agency_id": row.agency_id, "version": row.version}
    row.answers = replacement.answers  # prepared.values holds them as JSON text
    for name in ("agency_id", "sector_id", "procedure_id", "stratum_id", "respondent_type"):
        setattr(row, name, prepared.values[name])
    row.version += 1
    row.updated_at = datetime.now(UTC)
    await session.flush()
    await audit.record(
        session,
        actor,
        "submission.correct",
        object_type="submission",
        object_id=row.id,
        summary=audit.diff(
            before, {"answers": row.answers, "agency_id": row.agency_id, "version": row.version}
        ),
    )
    return row


async def versions(
    session: AsyncSession, principal: Principal, submission_id: uuid.UUID
) -> list[SubmissionVersionPublic]:
    row = await get_submission(session, principal, submission_id)
    history = (
        await session.scalars(
            sa.select(SubmissionVersion)
            .where(col(SubmissionVersion.submission_id) == row.id)
            .order_by(col(SubmissionVersion.version))
        )
    ).all()
    return [SubmissionVersionPublic.model_validate(v, from_attributes=True) for v in history]


async def recheck_sample(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID, share: float, seed: str
) -> list[Submission]:
    """The re-check (phúc tra) list: a repeatable random share of the campaign's forms.

    Each form's place comes from a hash of the seed and its id, so the same seed always picks
    the same forms and a larger share only adds to a smaller one's list."""
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None or principal.campaign_id not in (None, campaign_id):
        raise NotFound("campaign")
    total = (
        await session.scalar(
            sa.select(sa.func.count())
            .select_from(Submission)
            .where(col(Submission.campaign_id) == campaign_id, *_visible(principal))
        )
        or 0
    )
    size = int(-(-total * share // 1)) if total else 0  # ceil
    order = sa.func.md5(sa.literal(seed) + sa.cast(col(Submission.id), sa.Text))
    query = (
        sa.select(Submission)
        .where(col(Submission.campaign_id) == campaign_id, *_visible(principal))
        .order_by(order)
        .limit(size)
    )
    return list((await session.scalars(query)).all())
