"""Taking forms from every channel: validation, idempotency, provenance, review, corrections.

Rules:
- A form is keyed by its client-made id (or the Idempotency-Key header) within its campaign.
  The same key with the same body answers the first answer again; with another body, 409. The
  unique key and INSERT ... ON CONFLICT DO NOTHING make two concurrent identical requests
  produce one row: the second waits for the first and then replays it.
- With an invitation, the agency and procedure come from the invited dossier, never from the
  client, and the invitation is used up in the same transaction as the form. One invitation
  makes at most one form: claiming locks its row (a batch locks all of its invitations first,
  in id order), an invitation claimed earlier in the same batch is refused, and the unique
  key on `submissions.invitation_id` (the INSERT's ON CONFLICT) makes it certain whatever races.
- A form says its agency and respondent type once (`_one_source`): a field left out is taken
  from its answer (S.AGENCY, R.TYPE), an answer left out from its field, and the two must agree.
- A new form's `received_at` lies within the configured window around now; the server's own
  receipt time is stored beside it (`server_received_at`).
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
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast, get_args

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.errors import (
    AppError,
    FieldError,
    Invalid,
    Language,
    NotFound,
    PermissionDenied,
    field_errors,
)
from app.models.agency import Agency
from app.models.base import FieldProblem
from app.models.campaign import (
    Campaign,
    CampaignAgency,
    CampaignSector,
    CampaignState,
    FrameUnit,
    Stratum,
)
from app.models.catalogue import Procedure, Sector
from app.models.dossier import Invitation
from app.models.identity import Role
from app.models.quality import WINDOW_RULES, QualityConfig
from app.models.questionnaire import Questionnaire
from app.models.submission import (
    BatchItemResult,
    CorrectionIn,
    RespondentType,
    ReviewIn,
    Submission,
    SubmissionBatchResult,
    SubmissionDraft,
    SubmissionIn,
    SubmissionPage,
    SubmissionPublic,
    SubmissionState,
    SubmissionVersion,
    SubmissionVersionPublic,
)
from app.models.timestamps import window_problem
from app.services import access, audit, dossiers, events, instrument
from app.services.paging import cursor_int, cursor_str, decode_cursor, encode_cursor
from app.services.principal import Principal
from app.services.quality import screening

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
    # started_at came later: left out of the hash when not sent, so stored hashes still match.
    skipped = {"submission_id", "answers", "agency_code"}
    if data.started_at is None:
        skipped.add("started_at")
    rest = data.model_dump(mode="json", exclude=skipped)
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
    quality: QualityConfig = field(default_factory=QualityConfig)


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
_CAMPAIGN_ROW = sa.select(
    _CAMPAIGNS.c.state, _CAMPAIGNS.c.questionnaire_id, _CAMPAIGNS.c.quality
).where(_CAMPAIGNS.c.id == sa.bindparam("campaign_id"))


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
    answer_items: frozenset[str] = frozenset()  # the questionnaire's item ids
    claimed: set[uuid.UUID] = field(default_factory=set)  # invitations used by this request
    agency_codes: dict[uuid.UUID, str | None] = field(default_factory=dict)

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

    async def agency_code(self, agency_id: uuid.UUID) -> str | None:
        if agency_id not in self.agency_codes:
            self.agency_codes[agency_id] = await self.session.scalar(
                sa.select(col(Agency.code)).where(col(Agency.id) == agency_id)
            )
        return self.agency_codes[agency_id]

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
    agencies = frozenset((await session.scalars(access.subtrees(roots))).all())
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
    if not access.may_use_campaign(principal, campaign_id):
        raise NotFound("campaign")
    found = (await session.execute(_CAMPAIGN_ROW, {"campaign_id": campaign_id})).first()
    if found is None:
        raise NotFound("campaign")
    campaign = OpenCampaign(campaign_id, found[0], found[1], screening.config_of(found[2]))
    surveyor_agencies = await access.surveyor_agencies(session, principal, campaign_id)
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
    visible = await access.writable_agency_ids(session, principal)
    ctx = WriteContext(
        session, settings, principal, campaign, parsed, scope, visible, surveyor_agencies, sectors
    )
    ctx.answer_items = _answer_items(parsed)
    return ctx


def _answer_items(parsed: instrument.Questionnaire) -> frozenset[str]:
    return frozenset(item.id for _, item in instrument.iter_items(parsed))


# The answers that repeat a form's own fields: the agency rated and the respondent's type.
AGENCY_ITEM = "S.AGENCY"
RESPONDENT_TYPE_ITEM = "R.TYPE"
_RESPONDENT_TYPES: frozenset[object] = frozenset(get_args(RespondentType))


def _one_source(
    ctx: WriteContext, data: SubmissionIn, base: str, invited_agency: str | None
) -> tuple[SubmissionIn, list[FieldError]]:
    """The form with its agency and respondent type said once: a field the client left out is
    taken from its answer, an answer left out (or null) from the field, and a field and answer
    that disagree are both named as errors. With an invitation, the invited dossier's agency
    stands for agency_code."""
    errors: list[FieldError] = []
    fields: dict[str, Any] = {}
    answers: dict[str, Any] | None = None

    def fill(item: str, value: Any) -> None:
        nonlocal answers
        answers = answers if answers is not None else dict(data.answers)
        answers[item] = value

    if AGENCY_ITEM in ctx.answer_items:
        said = data.answers.get(AGENCY_ITEM)
        field_code, field_pointer = (
            (invited_agency, f"{base}/invitation")
            if data.invitation
            else (data.agency_code, f"{base}/agency_code")
        )
        if isinstance(said, str) and field_code is not None and said != field_code:
            errors += [
                FieldError(field_pointer, f"names another agency than {AGENCY_ITEM}", "mismatch"),
                FieldError(
                    f"{base}/answers/{AGENCY_ITEM}",
                    "names another agency than "
                    + ("the invitation" if data.invitation else "agency_code"),
                    "mismatch",
                ),
            ]
        elif said is None and field_code is not None:
            fill(AGENCY_ITEM, field_code)
        elif isinstance(said, str) and field_code is None and not data.invitation:
            fields["agency_code"] = said
    if RESPONDENT_TYPE_ITEM in ctx.answer_items:
        said = data.answers.get(RESPONDENT_TYPE_ITEM)
        given = data.respondent_type
        if said is not None and given is not None and said != given:
            errors += [
                FieldError(
                    f"{base}/respondent_type",
                    f"disagrees with the answer {RESPONDENT_TYPE_ITEM}",
                    "mismatch",
                ),
                FieldError(
                    f"{base}/answers/{RESPONDENT_TYPE_ITEM}",
                    "disagrees with respondent_type",
                    "mismatch",
                ),
            ]
        elif said is None and given is not None:
            fill(RESPONDENT_TYPE_ITEM, given)
        elif given is None and isinstance(said, str) and said in _RESPONDENT_TYPES:
            fields["respondent_type"] = said
    if answers is not None:
        fields["answers"] = answers
    return (data.model_copy(update=fields) if fields else data), errors


async def prepare(
    ctx: WriteContext, data: SubmissionIn, key: uuid.UUID, base: str, *, fresh: bool = True
) -> Prepared:
    """Check one form against the questionnaire, the campaign's scope and the caller's rights.

    Writes nothing (an invitation is only locked). Raises Invalid listing every problem, with
    pointers under `base` (e.g. /body). A `fresh` form (not a correction of a stored one) must
    also have been received within the configured window around now."""
    session, campaign, principal = ctx.session, ctx.campaign, ctx.principal
    sent = data
    errors: list[FieldError] = []

    def problem(field: str, detail: str, code: str) -> None:
        errors.append(FieldError(f"{base}/{field}", detail, code))

    invitation_id = None
    agency_id: uuid.UUID | None = None
    procedure_id: uuid.UUID | None = None
    sector_id: uuid.UUID | None = None
    invited_agency: str | None = None
    if data.invitation:
        invitation = await dossiers.claim_invitation(
            session, ctx.settings, data.invitation, campaign.id
        )
        if invitation.id in ctx.claimed:  # an earlier form of this batch used it
            raise dossiers.invitation_used(f"{base}/invitation")
        invitation_id = invitation.id
        agency_id, procedure_id = invitation.agency_id, invitation.procedure_id
        sector_id = await ctx.procedure_sector(procedure_id)
        if AGENCY_ITEM in ctx.answer_items:
            invited_agency = await ctx.agency_code(agency_id)
    data, contradictions = _one_source(ctx, data, base, invited_agency)
    errors += contradictions
    errors += instrument.validate_answers(
        ctx.instrument, data.answers, pointer_prefix=f"{base}/answers"
    )
    # Where the agency was said: its field, or the answer it was taken from.
    agency_field = (
        "agency_code"
        if data.invitation or sent.agency_code is not None
        else f"answers/{AGENCY_ITEM}"
    )
    if not data.invitation:
        if data.agency_code is None:
            problem("agency_code", "required without an invitation", "missing")
        else:
            agency_id = await ctx.agency(data.agency_code)
            if agency_id is None:
                problem(agency_field, "no agency has this code", "unknown")
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
            problem(agency_field, "the agency is outside the campaign's scope", "out_of_scope")
        elif ctx.visible is not None and agency_id not in ctx.visible:
            problem(agency_field, "the agency is outside your scope", "out_of_scope")
        elif ctx.surveyor_agencies is not None and agency_id not in ctx.surveyor_agencies:
            problem(agency_field, "you are not assigned to this agency", "out_of_scope")
    if sector_id is not None and ctx.sectors and sector_id not in ctx.sectors:
        problem("sector_code", "the sector is outside the campaign's scope", "out_of_scope")
    frame_unit_id = None
    dossier_agency_id = None
    if data.dossier_code is not None:
        unit = (
            await session.execute(
                sa.select(col(FrameUnit.id), col(FrameUnit.agency_id)).where(
                    col(FrameUnit.campaign_id) == campaign.id,
                    col(FrameUnit.dossier_code) == data.dossier_code,
                )
            )
        ).first()
        if unit is None:
            problem("dossier_code", "not in this campaign's frame", "unknown")
        else:
            frame_unit_id, dossier_agency_id = unit[0], unit[1]
    now = datetime.now(UTC)
    if fresh and data.received_at is not None:
        too_far = window_problem(
            data.received_at,
            now,
            max_age=timedelta(days=ctx.settings.received_at_max_age_days),
            max_ahead=timedelta(seconds=ctx.settings.client_clock_skew_seconds),
        )
        if too_far is not None:
            problem("received_at", too_far, "out_of_window")
    if errors or agency_id is None:
        raise Invalid("The form is not valid; see errors.", errors)

    # The hash is of the body as sent (a retry sends the same); the answers stored are the
    # form's, with what was taken from its fields filled in.
    body_hash, answers_json = _canonical(sent)
    if data.answers is not sent.answers:
        answers_json = json.dumps(data.answers, sort_keys=True, ensure_ascii=False)
    received_at = data.received_at or now
    flags = screening.screen(
        ctx.instrument,
        campaign.quality,
        data.answers,
        channel=data.channel.value,
        received_at=received_at,
        started_at=data.started_at,
        agency_id=agency_id,
        dossier_agency_id=dossier_agency_id,
    )
    auto_valid = campaign.quality.review_policy == "auto" and not flags
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
        "invitation_id": invitation_id,
        "answers": answers_json,
        "received_at": received_at,
        "flags": json.dumps(flags, ensure_ascii=False) if flags else "{}",
        "state": SubmissionState.valid.value if auto_valid else SubmissionState.received.value,
    }
    if invitation_id is not None:
        ctx.claimed.add(invitation_id)
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
    session: AsyncSession, prepared: Sequence[Prepared], config: QualityConfig
) -> dict[uuid.UUID, uuid.UUID]:
    """One statement for all the forms (INSERT ... SELECT FROM unnest of one array per column);
    returns the id of each form that was new, by its key."""
    if not prepared:
        return {}
    result = await session.execute(_INSERT, _arrays(prepared))
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


def form_errors(
    q: instrument.Questionnaire, raw: Any, type_errors: Sequence[FieldError], base: str
) -> list[FieldError]:
    """A form's type errors (the schema's) and answer errors (the questionnaire's) together.

    Pointers run from the request body's root in single and batch calls alike: `/body/...`
    for one form, `/body/submissions/<i>/...` for item i of a batch (`base` is that prefix).
    The answers are checked whenever they are an object, whatever else is wrong."""
    errors = list(type_errors)
    answers = raw.get("answers") if isinstance(raw, dict) else None
    if isinstance(answers, dict):
        errors.extend(instrument.validate_answers(q, answers, pointer_prefix=f"{base}/answers"))
    return errors


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
            **(
                {"invitation_id": str(prepared.invitation_id)}
                if prepared.invitation_id is not None
                else {}
            ),
        },
    )
    created = await _insert_one(session, prepared, event, campaign.quality)
    if created is None:
        replay = await _replay(session, campaign.id, key, prepared.hash)
        if replay is None:
            # Not its key: its invitation made a form already. The lock taken when claiming it
            # makes this rare; the unique key on submissions.invitation_id makes it certain.
            if prepared.invitation_id is not None:
                raise dossiers.invitation_used("/body/invitation")
            raise _conflict("/body/submission_id")  # pragma: no cover - by construction
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
    language: Language | None = None,
) -> SubmissionBatchResult:
    """Every item gets a result; the valid ones are written in one multi-row statement.

    An item's errors point from the request body's root (`/body/submissions/<i>/...`), its
    type errors and answer errors together (`form_errors`), worded in `language`."""
    ctx = await open_for_writing(session, settings, principal, campaign_id)
    campaign = ctx.campaign
    results: dict[int, BatchItemResult] = {}
    parsed: dict[int, SubmissionIn] = {}
    for i, raw in enumerate(items):
        try:
            data = SubmissionIn.model_validate(raw)
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

    # Every invitation the batch names is locked first, in one order, so that two batches
    # naming the same ones never wait for each other crosswise.
    invited = [d.invitation for d in parsed.values() if d.invitation]
    if invited:
        await dossiers.lock_invitations(session, settings, invited)

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
            prepared[i] = await prepare(ctx, data, key, f"/body/submissions/{i}")
        except AppError as error:
            problems = list(error.errors) or [
                FieldError(f"/body/submissions/{i}", error.detail, error.code)
            ]
            refused[i] = [_rebase(e, i) for e in problems]

    created = await _insert(session, list(prepared.values()), campaign.quality)
    # Keys this batch did not create: stored before (a retry, or a concurrent request with the
    # same key that committed first), or refused above.
    stored = await _stored(session, campaign.id, [k for k in first if k not in created])
    for i, p in prepared.items():
        if p.key in created:
            results[i] = BatchItemResult(
                index=i, submission_id=p.key, status="created", id=created[p.key]
            )
        elif p.invitation_id is not None and p.key not in stored:
            # Not stored under its key: the database refused a second form for its invitation.
            used = dossiers.invitation_used(f"/submissions/{i}/invitation")
            results[i] = _error_result(i, items[i], list(used.errors))
        else:
            results[i] = _replay_result(i, p.key, stored.get(p.key), p.hash, items[i], language)
    for i, problems in refused.items():
        key = parsed[i].submission_id
        if key is not None and key in stored:  # a retry answers its first answer
            results[i] = _replay_result(
                i, key, stored[key], request_hash(parsed[i]), items[i], language
            )
        else:
            results[i] = _error_result(i, items[i], problems, language)
    for i in repeats:
        key = parsed[i].submission_id
        if key is None:  # pragma: no cover - filtered above
            continue
        row_id = created.get(key)
        # A repeat of a form this batch created is answered from its hash, not looked up.
        earlier = _Stored(row_id, prepared[first[key]].hash) if row_id else stored.get(key)
        results[i] = _replay_result(i, key, earlier, request_hash(parsed[i]), items[i], language)

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
    index: int,
    key: uuid.UUID,
    row: _Stored | None,
    body_hash: str,
    raw: Any,
    language: Language | None,
) -> BatchItemResult:
    if row is not None and row.request_hash == body_hash:
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


# ---- reading -----------------------------------------------------------------------------------


async def get_submission(
    session: AsyncSession, principal: Principal, submission_id: uuid.UUID, *, lock: bool = False
) -> Submission:
    query = access.readable_submissions(principal).where(col(Submission.id) == submission_id)
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
    data: CorrectionIn | SubmissionDraft,
) -> Submission:
    """A surveyor fixes their own entry before review; the previous version is kept. A body
    that failed the schema is refused with its answers' errors too (`form_errors`)."""
    row = await get_submission(session, actor, submission_id, lock=True)
    if not access.may_correct(actor, row):
        raise PermissionDenied("Only the surveyor who entered a form may correct it.")
    if row.state != SubmissionState.received:
        raise AppError(
            "already_reviewed", "The form has been reviewed: it can no longer be corrected.", 409
        )
    ctx = await open_for_writing(session, settings, actor, row.campaign_id)
    if isinstance(data, SubmissionDraft):
        type_errors = field_errors(data.errors, ("body",))
        raise Invalid(
            "The request is not valid; see errors.",
            form_errors(ctx.instrument, data.raw, type_errors, "/body"),
            code="validation_failed",
        )
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
    prepared = await prepare(ctx, replacement, row.client_submission_id, "/body", fresh=False)
    session.add(
        SubmissionVersion(
            campaign_id=row.campaign_id,
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
    row.answers = json.loads(prepared.values["answers"])  # with what _one_source filled in
    # Screened again: the per-form flags are the new answers'; the window ones stay.
    kept = {k: v for k, v in (row.flags or {}).items() if k in WINDOW_RULES}
    row.flags = {**kept, **json.loads(prepared.values["flags"])}
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
    await access.require_campaign(session, principal, campaign_id)
    readable = access.readable_submissions(principal).where(
        col(Submission.campaign_id) == campaign_id
    )
    counted = readable.with_only_columns(sa.func.count(), maintain_column_froms=True)
    total = await session.scalar(counted) or 0
    size = int(-(-total * share // 1)) if total else 0  # ceil
    order = sa.func.md5(sa.literal(seed) + sa.cast(col(Submission.id), sa.Text))
    query = readable.order_by(order).limit(size)
    return list((await session.scalars(query)).all())
