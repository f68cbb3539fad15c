"""Plain typed factories that write rows straight through the session."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, timedelta
from functools import lru_cache

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models.agency import Agency, AgencyKind
from app.models.campaign import Campaign, CampaignAgency, CampaignState
from app.models.catalogue import Procedure, Sector
from app.models.identity import Client, Role, Scope, User
from app.models.questionnaire import Questionnaire
from app.security import hash_password, hash_secret, issue_token, new_client_id, new_client_secret
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
    name = name or f"Sở thử nghiệm {next(_seq)}"
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

MINIMAL_DEFINITION: dict[str, object] = {
    "elements": [{"id": "E1", "label_vi": "Tiếp cận dịch vụ", "weight": 1}],
    "items": [
        {"id": "E1.C1", "type": "satisfaction5", "element": "E1", "label_vi": "Chỗ ngồi chờ"}
    ],
}


async def make_questionnaire(session: AsyncSession, code: str | None = None) -> Questionnaire:
    q = Questionnaire(
        code=code or unique("q-"),
        version=1,
        method="test",
        title_vi="Phiếu thử nghiệm",
        definition=MINIMAL_DEFINITION,
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
