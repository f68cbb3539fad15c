"""Checking a form before it is written: what it is checked against, and the checks.

Rules:
- With an invitation, the agency and procedure come from the invited dossier, never from the
  client, and the invitation is used up in the same transaction as the form. One invitation
  makes at most one form: claiming locks its row (a batch locks all of its invitations first,
  in id order), an invitation claimed earlier in the same batch is refused, and the unique
  key on `submissions.invitation_id` (the INSERT's ON CONFLICT, see `writes`) makes it certain
  whatever races.
- A form says its agency and respondent type once (`_one_source`): a field left out is taken
  from its answer (S.AGENCY, R.TYPE), an answer left out from its field, and the two must agree.
- A new form's `received_at` lies within the configured window around now; the server's own
  receipt time is stored beside it (`server_received_at`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast, get_args

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app import cache as caches
from app.cache import Cache
from app.config import Settings
from app.errors import ConflictError, FieldError, Invalid, NotFound
from app.models.agency import Agency
from app.models.campaign import (
    Campaign,
    CampaignAgency,
    CampaignSector,
    CampaignState,
    FrameUnit,
    Stratum,
)
from app.models.catalogue import Procedure, Sector
from app.models.identity import Role
from app.models.quality import QualityConfig
from app.models.questionnaire import Questionnaire
from app.models.submission import RespondentType, SubmissionIn, SubmissionState
from app.models.timestamps import window_problem
from app.services import access, dossiers, instrument
from app.services.instrument import AnswerValidator
from app.services.principal import Principal
from app.services.quality import screening
from app.services.submissions.common import _canonical, plain_json, sorted_json


@dataclass(slots=True)
class Prepared:
    """A form that passed every check, ready to insert."""

    key: uuid.UUID
    hash: str
    values: dict[str, Any]  # the row's columns; "answers" as JSON text
    invitation_id: uuid.UUID | None


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
# An agency with its strata in the campaign (none: one row with null strata columns).
_AGENCIES_WITH_STRATA = _AGENCIES.outerjoin(
    _STRATA,
    sa.and_(
        _STRATA.c.agency_id == _AGENCIES.c.id,
        _STRATA.c.campaign_id == sa.bindparam("campaign_id"),
    ),
)
_AGENCY_AND_STRATA = (
    sa.select(_AGENCIES.c.id, _STRATA.c.id, _STRATA.c.sector_id)
    .select_from(_AGENCIES_WITH_STRATA)
    .where(_AGENCIES.c.code == sa.bindparam("code"))
)
# The same for every code a batch names, in one statement.
_AGENCIES_AND_STRATA = (
    sa.select(_AGENCIES.c.code, _AGENCIES.c.id, _STRATA.c.id, _STRATA.c.sector_id)
    .select_from(_AGENCIES_WITH_STRATA)
    .where(_AGENCIES.c.code == sa.func.any(sa.bindparam("codes", type_=ARRAY(sa.Text))))
)
_QUESTIONNAIRES = Questionnaire.metadata.tables["questionnaires"]
# The questionnaire's frozen_at comes along so that its cached parse is found without its row.
_CAMPAIGN_ROW = (
    sa.select(
        _CAMPAIGNS.c.state,
        _CAMPAIGNS.c.questionnaire_id,
        _CAMPAIGNS.c.quality,
        _QUESTIONNAIRES.c.frozen_at,
    )
    .join(_QUESTIONNAIRES, _QUESTIONNAIRES.c.id == _CAMPAIGNS.c.questionnaire_id)
    .where(_CAMPAIGNS.c.id == sa.bindparam("campaign_id"))
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
    validate: AnswerValidator  # the questionnaire's answer checks
    screen: screening.Screener  # the campaign's per-form screening rules
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

    async def prefetch_agencies(self, codes: Iterable[str]) -> None:
        """The agencies of all these codes (and their strata in the campaign) in one query, as
        `agency` would find them one code at a time: a batch names a few agencies many times."""
        # A code PostgreSQL cannot hold (NUL) is left to `agency`, so it fails only its form.
        wanted = sorted({c for c in codes if c not in self.agencies and "\x00" not in c})
        if not wanted:
            return
        found: dict[str, list[tuple[uuid.UUID, uuid.UUID | None]]] = {}
        ids: dict[str, uuid.UUID] = {}
        rows = await self.session.execute(
            _AGENCIES_AND_STRATA, {"codes": wanted, "campaign_id": self.campaign.id}
        )
        for code, agency_id, stratum_id, sector_id in rows.all():
            ids[code] = agency_id
            strata = found.setdefault(code, [])
            if stratum_id is not None:
                strata.append((stratum_id, sector_id))
        for code in wanted:
            agency_id = ids.get(code)
            self.agencies[code] = agency_id
            if agency_id is not None:
                self._know_strata(agency_id, found[code])

    def know_agency(self, code: str, rows: Sequence[Sequence[str | None]] | None) -> None:
        """The agency with this code and its strata, as read with the campaign (rows of
        [agency id, stratum id, sector id] as JSON text; None when no agency has the code)."""
        if not rows:
            self.agencies[code] = None
            return
        agency_id = uuid.UUID(str(rows[0][0]))
        self.agencies[code] = agency_id
        self._know_strata(
            agency_id,
            [
                (uuid.UUID(stratum), uuid.UUID(sector) if sector else None)
                for _, stratum, sector in rows
                if stratum is not None
            ],
        )

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


Scope = tuple[frozenset[uuid.UUID], frozenset[uuid.UUID]]  # agencies, sectors


def _weigh_scope(scope: Scope) -> int:
    """About what a scope holds: some 100 bytes per id kept in a frozenset."""
    return 100 * (len(scope[0]) + len(scope[1]) + 1)


# A campaign's scope (agencies and sectors) can change only while it is a draft; once opened it
# is fixed for good, so each process reads it once per campaign.
_SCOPES: Cache[uuid.UUID, Scope] = caches.named("submissions.scopes", _weigh_scope)


async def _fixed_scope(session: AsyncSession, campaign: OpenCampaign) -> Scope:
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
        _SCOPES.put(campaign.id, (agencies, sectors))
    return agencies, sectors


# The campaign's row with the agency one form names and its strata in the campaign, as
# `WriteContext.agency` reads them: a single form's look-ups in one round trip.
_CAMPAIGN_ROW_AND_AGENCY = _CAMPAIGN_ROW.add_columns(
    sa.select(
        sa.func.jsonb_agg(
            sa.func.jsonb_build_array(_AGENCIES.c.id, _STRATA.c.id, _STRATA.c.sector_id)
        )
    )
    .select_from(_AGENCIES_WITH_STRATA)
    .where(_AGENCIES.c.code == sa.bindparam("code"))
    .scalar_subquery()
)


async def open_for_writing(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    campaign_id: uuid.UUID,
    agency_code: str | None = None,
) -> WriteContext:
    """The campaign, if the caller may write to it and it is open, with what forms need; with
    `agency_code` (a single form's), that agency too, read in the same statement."""
    if not access.may_use_campaign(principal, campaign_id):
        raise NotFound("campaign")
    if agency_code is not None and "\x00" in agency_code:
        agency_code = None  # PostgreSQL cannot hold it: left to `agency`, which refuses it
    if agency_code is None:
        found = (await session.execute(_CAMPAIGN_ROW, {"campaign_id": campaign_id})).first()
    else:
        found = (
            await session.execute(
                _CAMPAIGN_ROW_AND_AGENCY, {"campaign_id": campaign_id, "code": agency_code}
            )
        ).first()
    if found is None:
        raise NotFound("campaign")
    campaign = OpenCampaign(campaign_id, found[0], found[1], screening.config_of(found[2]))
    surveyor_agencies = await access.surveyor_agencies(session, principal, campaign_id)
    if campaign.state != CampaignState.open:
        raise ConflictError(
            "campaign_not_open",
            f"The campaign is {campaign.state}: forms are taken only while it is open.",
        )
    parsed = instrument.parsed_frozen(campaign.questionnaire_id, found[3])
    if parsed is None:
        questionnaire = await session.get(Questionnaire, campaign.questionnaire_id)
        if questionnaire is None:  # pragma: no cover - a foreign key guarantees it
            raise NotFound("questionnaire")
        parsed = instrument.parsed(questionnaire)
    scope, sectors = await _fixed_scope(session, campaign)
    visible = await access.writable_agency_ids(session, principal)
    ctx = WriteContext(
        session,
        settings,
        principal,
        campaign,
        parsed,
        scope,
        visible,
        surveyor_agencies,
        sectors,
        instrument.answer_validator(parsed),
        screening.screener(parsed, campaign.quality),
    )
    ctx.answer_items = _answer_items(parsed)
    if agency_code is not None:
        ctx.know_agency(agency_code, cast(Any, found)[4])  # the column _AND_AGENCY adds
    return ctx


def _answer_items(parsed: instrument.Questionnaire) -> frozenset[str]:
    return instrument.item_ids(parsed)


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


@dataclass(slots=True)
class _Problems:
    """The problems found in one form, each located under `base` (e.g. /body)."""

    base: str
    errors: list[FieldError] = field(default_factory=list)

    def add(self, name: str, detail: str, code: str) -> None:
        self.errors.append(FieldError(f"{self.base}/{name}", detail, code))


@dataclass(slots=True)
class _Origin:
    """Where a form comes from: its agency, procedure and sector, and the invitation (with the
    invited agency's code, when the questionnaire also asks for it) that named them."""

    agency_id: uuid.UUID | None = None
    procedure_id: uuid.UUID | None = None
    sector_id: uuid.UUID | None = None
    invitation_id: uuid.UUID | None = None
    invited_agency: str | None = None


async def prepare(
    ctx: WriteContext, data: SubmissionIn, key: uuid.UUID, base: str, *, fresh: bool = True
) -> Prepared:
    """Check one form against the questionnaire, the campaign's scope and the caller's rights.

    Writes nothing (an invitation is only locked). Raises Invalid listing every problem, with
    pointers under `base` (e.g. /body). A `fresh` form (not a correction of a stored one) must
    also have been received within the configured window around now."""
    sent = data
    problems = _Problems(base)
    origin = await _invited(ctx, data, base) if data.invitation else _Origin()
    data, contradictions = _one_source(ctx, data, base, origin.invited_agency)
    problems.errors += contradictions
    problems.errors += ctx.validate(data.answers, f"{base}/answers")
    # Where the agency was said: its field, or the answer it was taken from.
    agency_field = (
        "agency_code"
        if data.invitation or sent.agency_code is not None
        else f"answers/{AGENCY_ITEM}"
    )
    if not data.invitation:
        await _named_by_codes(ctx, data, origin, agency_field, problems)
    _check_scope(ctx, origin, agency_field, problems)
    frame_unit_id, dossier_agency_id = (
        await _frame_unit(ctx, data, problems) if data.dossier_code is not None else (None, None)
    )
    now = datetime.now(UTC)
    if fresh and data.received_at is not None:
        _check_window(ctx, data.received_at, now, problems)
    agency_id = origin.agency_id
    if problems.errors or agency_id is None:
        raise Invalid("The form is not valid; see errors.", problems.errors)

    # The hash is of the body as sent (a retry sends the same); the answers stored are the
    # form's, with what was taken from its fields filled in.
    body_hash, answers_json = _canonical(sent)
    if data.answers is not sent.answers:
        answers_json = sorted_json(data.answers)
    received_at = data.received_at or now
    flags = ctx.screen(
        data.answers,
        channel=data.channel.value,
        received_at=received_at,
        started_at=data.started_at,
        agency_id=agency_id,
        dossier_agency_id=dossier_agency_id,
    )
    auto_valid = ctx.campaign.quality.review_policy == "auto" and not flags
    principal = ctx.principal
    values: dict[str, Any] = {
        "campaign_id": ctx.campaign.id,
        "client_submission_id": key,
        "request_hash": body_hash,
        "agency_id": agency_id,
        "sector_id": origin.sector_id,
        "procedure_id": origin.procedure_id,
        "stratum_id": await ctx.stratum(agency_id, origin.sector_id),
        "frame_unit_id": frame_unit_id,
        "respondent_type": data.respondent_type,
        "channel": data.channel.value,
        "client_id": principal.id if principal.kind == "client" else None,
        "surveyor_id": principal.id if principal.role == Role.surveyor else None,
        "device_id": data.device_id,
        "invitation_id": origin.invitation_id,
        "answers": answers_json,
        "received_at": received_at,
        "flags": plain_json(flags) if flags else "{}",
        "state": SubmissionState.valid.value if auto_valid else SubmissionState.received.value,
    }
    if origin.invitation_id is not None:
        ctx.claimed.add(origin.invitation_id)
    return Prepared(key, body_hash, values, origin.invitation_id)


async def _invited(ctx: WriteContext, data: SubmissionIn, base: str) -> _Origin:
    """With an invitation, the form's origin is the invited dossier's: the invitation is
    claimed (its row locked), and refused when used, or used by an earlier form of this batch."""
    if not data.invitation:
        return _Origin()
    invitation = await dossiers.claim_invitation(
        ctx.session, ctx.settings, data.invitation, ctx.campaign.id
    )
    if invitation.id in ctx.claimed:  # an earlier form of this batch used it
        raise dossiers.invitation_used(f"{base}/invitation")
    origin = _Origin(
        agency_id=invitation.agency_id,
        procedure_id=invitation.procedure_id,
        sector_id=await ctx.procedure_sector(invitation.procedure_id),
        invitation_id=invitation.id,
    )
    if AGENCY_ITEM in ctx.answer_items:
        origin.invited_agency = await ctx.agency_code(invitation.agency_id)
    return origin


async def _named_by_codes(
    ctx: WriteContext, data: SubmissionIn, origin: _Origin, agency_field: str, problems: _Problems
) -> None:
    """Without an invitation: the agency, procedure and sector the form names by their codes.
    A sector named beside a procedure must be the procedure's."""
    if data.agency_code is None:
        problems.add("agency_code", "required without an invitation", "missing")
    else:
        origin.agency_id = await ctx.agency(data.agency_code)
        if origin.agency_id is None:
            problems.add(agency_field, "no agency has this code", "unknown")
    if data.procedure_code is not None:
        found = await ctx.procedure(data.procedure_code)
        if found is None:
            problems.add("procedure_code", "no procedure has this code", "unknown")
        else:
            origin.procedure_id, origin.sector_id = found
    if data.sector_code is not None:
        named = await ctx.sector(data.sector_code)
        if named is None:
            problems.add("sector_code", "no sector has this code", "unknown")
        elif origin.sector_id is not None and named != origin.sector_id:
            problems.add("sector_code", "not the procedure's sector", "mismatch")
        else:
            origin.sector_id = named


def _check_scope(
    ctx: WriteContext, origin: _Origin, agency_field: str, problems: _Problems
) -> None:
    """The agency within the campaign's scope, the caller's and (for a surveyor) their
    assignments; the sector within the campaign's sectors, when it names any."""
    agency_id = origin.agency_id
    if agency_id is not None:
        if agency_id not in ctx.scope:
            problems.add(agency_field, "the agency is outside the campaign's scope", "out_of_scope")
        elif ctx.visible is not None and agency_id not in ctx.visible:
            problems.add(agency_field, "the agency is outside your scope", "out_of_scope")
        elif ctx.surveyor_agencies is not None and agency_id not in ctx.surveyor_agencies:
            problems.add(agency_field, "you are not assigned to this agency", "out_of_scope")
    sector_id = origin.sector_id
    if sector_id is not None and ctx.sectors and sector_id not in ctx.sectors:
        problems.add("sector_code", "the sector is outside the campaign's scope", "out_of_scope")


async def _frame_unit(
    ctx: WriteContext, data: SubmissionIn, problems: _Problems
) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """The frame unit of the dossier the form names, and that dossier's agency."""
    if data.dossier_code is None:
        return None, None
    unit = (
        await ctx.session.execute(
            sa.select(col(FrameUnit.id), col(FrameUnit.agency_id)).where(
                col(FrameUnit.campaign_id) == ctx.campaign.id,
                col(FrameUnit.dossier_code) == data.dossier_code,
            )
        )
    ).first()
    if unit is None:
        problems.add("dossier_code", "not in this campaign's frame", "unknown")
        return None, None
    return unit[0], unit[1]


def _check_window(
    ctx: WriteContext, received_at: datetime, now: datetime, problems: _Problems
) -> None:
    """A new form's received_at lies within the configured window around now."""
    too_far = window_problem(
        received_at,
        now,
        max_age=timedelta(days=ctx.settings.received_at_max_age_days),
        max_ahead=timedelta(seconds=ctx.settings.client_clock_skew_seconds),
    )
    if too_far is not None:
        problems.add("received_at", too_far, "out_of_window")


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
