"""Plain typed factories that write rows straight through the session."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models.agency import Agency, AgencyKind
from app.models.campaign import Campaign, CampaignAgency, CampaignState
from app.models.catalogue import Procedure, Sector
from app.models.dossier import Dossier, Invitation
from app.models.identity import Client, Role, Scope, User
from app.models.questionnaire import Questionnaire
from app.models.submission import Submission
from app.security import (
    hash_password,
    hash_secret,
    issue_token,
    new_client_id,
    new_client_secret,
    sign_invitation,
)
from app.services.instrument import builtin_definition, parse_questionnaire
from app.services.text import fold

PASSWORD = "correct horse battery staple"
_seq = itertools.count(1)


@lru_cache
def _password_hash() -> str:
    return hash_password(PASSWORD)  # Argon2 is slow on purpose: hash once per test session


def unique(prefix: str) -> str:
    return f"{prefix}{next(_seq)}-{uuid.uuid4().hex[:6]}"


async def make_agency(
    session: AsyncSession,
    *,
    code: str | None = None,
    name: str | None = None,
    parent: Agency | None = None,
    level: str = "department",
    kind: AgencyKind = AgencyKind.department,
    valid_from: date = date(2008, 1, 1),
    valid_to: date | None = None,
    is_measured: bool = True,
) -> Agency:
    name = name or f"Sở thử nghiệm {next(_seq):06d}"  # padded: names sort as they are made
    agency = Agency(
        code=code or unique("T.").upper(),
        name=name,
        search_name=fold(name),
        kind=kind,
        level=level,
        parent_id=parent.id if parent else None,
        valid_from=valid_from,
        valid_to=valid_to,
        is_measured=is_measured,
    )
    session.add(agency)
    await session.flush()
    return agency


async def make_user(
    session: AsyncSession,
    role: Role = Role.admin,
    *,
    agency: Agency | None = None,
    username: str | None = None,
    is_active: bool = True,
) -> User:
    user = User(
        username=username or unique("user"),
        display_name="Nguyễn Văn Thử",
        role=role,
        agency_id=agency.id if agency else None,
        password_hash=_password_hash(),
        is_active=is_active,
    )
    session.add(user)
    await session.flush()
    return user


async def make_client(
    session: AsyncSession,
    scopes: list[Scope],
    *,
    agency: Agency | None = None,
) -> tuple[Client, str]:
    secret = new_client_secret()
    client = Client(
        name="Kiosk thử nghiệm",
        scopes=list(scopes),
        agency_id=agency.id if agency else None,
        client_id=new_client_id(),
        secret_hash=hash_secret(secret),
    )
    session.add(client)
    await session.flush()
    return client, secret


def bearer(settings: Settings, subject: User | Client) -> dict[str, str]:
    """Authorization headers for a real signed token, as the token endpoint would issue it."""
    kind = "user" if isinstance(subject, User) else "client"
    scopes = [s.value for s in Scope]
    token, _ = issue_token(
        kind=kind,
        subject_id=subject.id,
        version=subject.token_version,
        scopes=scopes,
        secret=settings.secret_key.get_secret_value(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        lifetime=timedelta(minutes=5),
    )
    return {"Authorization": f"Bearer {token}"}


async def role_headers(
    session: AsyncSession, settings: Settings, role: Role = Role.admin, agency: Agency | None = None
) -> dict[str, str]:
    """The bearer headers of a new user of `role` (an admin unless said)."""
    return bearer(settings, await make_user(session, role, agency=agency))


async def make_sector(
    session: AsyncSession, *, code: str | None = None, name_vi: str | None = None
) -> Sector:
    name_vi = name_vi or f"Lĩnh vực thử {next(_seq)}"
    sector = Sector(code=code or unique("sec-"), name_vi=name_vi, search_name=fold(name_vi))
    session.add(sector)
    await session.flush()
    return sector


async def make_procedure(
    session: AsyncSession,
    sector: Sector,
    *,
    code: str | None = None,
    name: str | None = None,
    level: str = "commune",
) -> Procedure:
    name = name or f"Thủ tục thử {next(_seq)}"
    procedure = Procedure(
        code=code or unique("9."),
        name=name,
        search_name=fold(name),
        sector_id=sector.id,
        level=level,
    )
    session.add(procedure)
    await session.flush()
    return procedure


# ---- questionnaires and campaigns (added with the campaigns issue) ------------------------------


def _choice(*codes: str) -> list[dict[str, str]]:
    return [{"code": c, "label_vi": f"Lựa chọn {c}"} for c in codes]


# A small but complete instrument: criteria in two elements, a perception, an expectation,
# a required respondent fact and a comment. Valid for app.services.instrument.
TEST_DEFINITION: dict[str, Any] = {
    "code": "test-form",
    "version": 1,
    "method": "test",
    "title_vi": "Phiếu thử nghiệm",
    "sections": [
        {
            "id": "S1",
            "title_vi": "Đánh giá",
            "items": [
                {
                    "id": "E1.C1",
                    "type": "satisfaction5",
                    "role": "criterion",
                    "label_vi": "Chỗ ngồi chờ",
                    "element": "E1",
                },
                {
                    "id": "E1.C2",
                    "type": "satisfaction5",
                    "role": "criterion",
                    "label_vi": "Trang thiết bị đầy đủ",
                    "element": "E1",
                },
                {
                    "id": "E2.C1",
                    "type": "satisfaction5",
                    "role": "criterion",
                    "label_vi": "Giao tiếp lịch sự",
                    "element": "E2",
                },
                {
                    "id": "P.TRIPS",
                    "type": "single_choice",
                    "role": "perception",
                    "label_vi": "Số lần đi lại",
                    "options": _choice("1", "2", "3", "gt3"),
                    "positive_set": ["1"],
                },
                {
                    "id": "X.IMPROVE",
                    "type": "multiple_choice",
                    "role": "expectation",
                    "label_vi": "Cần cải thiện trước",
                    "max_choices": 2,
                    "options": _choice("a", "b", "c"),
                },
                {
                    "id": "R.GENDER",
                    "type": "single_choice",
                    "role": "respondent",
                    "label_vi": "Giới tính",
                    "required": True,
                    "allow_no_answer": False,
                    "options": _choice("nam", "nu"),
                },
                {
                    "id": "C.NOTE",
                    "type": "free_text",
                    "role": "comment",
                    "label_vi": "Ý kiến khác",
                    "max_length": 200,
                },
            ],
        }
    ],
    "elements": [
        {"id": "E1", "label_vi": "Tiếp cận dịch vụ", "weight": 0.5},
        {"id": "E2", "label_vi": "Công chức trực tiếp giải quyết", "weight": 0.5},
    ],
}
MINIMAL_DEFINITION = TEST_DEFINITION


async def make_questionnaire(session: AsyncSession, code: str | None = None) -> Questionnaire:
    code = code or unique("q-")
    definition = {**TEST_DEFINITION, "code": code}
    parse_questionnaire(definition)  # the factory only makes valid instruments
    q = Questionnaire(
        code=code,
        version=1,
        method="test",
        title_vi="Phiếu thử nghiệm",
        definition=definition,
    )
    session.add(q)
    await session.flush()
    return q


async def make_builtin_questionnaire(session: AsyncSession, builtin: str) -> Questionnaire:
    """A stored copy of a built-in instrument under a fresh code (its items as shipped)."""
    code = unique(f"{builtin}-")
    q = Questionnaire(
        code=code,
        version=1,
        method="QĐ 2640/QĐ-BNV",
        title_vi=f"Phiếu {builtin}",
        definition={**builtin_definition(builtin), "code": code},
    )
    session.add(q)
    await session.flush()
    return q


async def make_campaign(
    session: AsyncSession,
    *,
    agencies: list[Agency],
    state: CampaignState = CampaignState.draft,
    questionnaire: Questionnaire | None = None,
) -> Campaign:
    q = questionnaire or await make_questionnaire(session)
    campaign = Campaign(
        code=unique("C-"),
        name="Chiến dịch thử nghiệm",
        year=2020,
        questionnaire_id=q.id,
        state=state,
        period_start=date(2020, 1, 1),
        period_end=date(2020, 10, 31),
        fieldwork_start=date(2020, 11, 1),
        fieldwork_end=date(2020, 12, 15),
        map_date=date(2020, 10, 31),
    )
    session.add(campaign)
    await session.flush()
    for agency in agencies:
        session.add(CampaignAgency(campaign_id=campaign.id, agency_id=agency.id))
    await session.flush()
    return campaign


async def make_invitation(
    session: AsyncSession,
    campaign: Campaign,
    agency: Agency,
    procedure: Procedure,
    *,
    expires_at: datetime | None = None,
    used_at: datetime | None = None,
) -> Invitation:
    """A reported dossier and its invitation to rate it in `campaign`."""
    dossier = Dossier(
        code=unique("HS-"),
        procedure_id=procedure.id,
        agency_id=agency.id,
        returned_at=datetime.now(UTC),
        request_hash="h",
    )
    session.add(dossier)
    await session.flush()
    invitation = Invitation(
        dossier_id=dossier.id,
        campaign_id=campaign.id,
        agency_id=agency.id,
        procedure_id=procedure.id,
        expires_at=expires_at or datetime.now(UTC) + timedelta(days=3),
        used_at=used_at,
    )
    session.add(invitation)
    await session.flush()
    return invitation


def invitation_token(settings: Settings, invitation: Invitation) -> str:
    return sign_invitation(invitation.id, settings.secret_key.get_secret_value())


async def stored_form(session: AsyncSession, form_id: str | uuid.UUID) -> Submission | None:
    """A form as stored now, by its id alone (its key is (id, campaign_id): the partitions)."""
    wanted = form_id if isinstance(form_id, uuid.UUID) else uuid.UUID(form_id)
    found: Submission | None = await session.scalar(
        sa.select(Submission)
        .where(Submission.id == wanted)  # type: ignore[arg-type]
        .execution_options(populate_existing=True)
    )
    return found
